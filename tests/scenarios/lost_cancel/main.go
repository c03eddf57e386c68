// lost_cancel: each request goroutine derives a job context from the long-lived root context, stores the cancel
// func in a struct and drops the struct without calling it. Nobody waits on the job context, but the root keeps
// it in its children map, so contexts (and memory) accumulate until the root ends, i.e. forever. go vet does not
// see it (the cancel func is stored) and a GC-based check does not either (the root keeps it reachable).
//
// ctxagent must report one "lost cancel" finding at the WithCancel line in handle, its count growing over time.
// The root context made by main and held for the process lifetime is not a finding.
package main

import (
	"context"

	"example.com/scenarios/internal/harness"
)

type job struct {
	id     int
	ctx    context.Context
	cancel context.CancelFunc
}

func (j *job) run() bool {
	return j.ctx.Err() == nil // a quick check, no waiting
}

// handle runs in its own short-lived goroutine, one per request.
func handle(parent context.Context, id int) {
	j := &job{id: id}
	j.ctx, j.cancel = context.WithCancel(parent) // want: lost_cancel
	j.run()
	// BUG: j.cancel is never called; j is dropped but parent's children map keeps j.ctx alive.
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background()) // lives as long as the process: not a finding
	defer stop()
	harness.Run(o, nil, func(i int) {
		go handle(root, i)
	})
}
