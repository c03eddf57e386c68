// ignored_cancel_chan_worker: a pool of long-lived workers, started by main before any request,
// receive jobs by value over a channel, each carrying its request's context (one request per event,
// each taken by an idle worker: 100 workers last 20 s at the default rate). main cancels each request 200 ms
// after handing its job over (the client went away), but the workers never look at the context's
// Done: they log with its values and sleep on. The workers were not started with these contexts
// (a rule over who spawned whom sees them under main's root, which is never cancelled).
//
// ctxagent must report one "ignored cancellation" at the requests' WithCancel line: the heap marks
// find each worker holding a cancelled request context in a live stack slot.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type traceKey struct{}

type job struct {
	ctx context.Context
	id  int
}

var logged int

// trace logs with the request's values: it uses the context, never its Done.
func trace(ctx context.Context, step int) {
	if ctx.Value(traceKey{}) != nil {
		logged += step
	}
}

// process works on its job until it is done. BUG: it never checks j.ctx.Done().
func process(j job) {
	for step := 0; step < 1<<40; step++ {
		time.Sleep(20 * time.Millisecond)
		trace(j.ctx, step)
	}
}

func worker(jobs <-chan job) {
	for j := range jobs {
		process(j)
	}
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	jobs := make(chan job)
	for w := 0; w < 100; w++ {
		go worker(jobs) // want-spawner: ignored_cancel
	}
	harness.Run(o, nil, func(i int) {
		ctx, cancel := context.WithCancel(context.WithValue(root, traceKey{}, i)) // want: ignored_cancel
		jobs <- job{ctx, i}
		time.AfterFunc(200*time.Millisecond, cancel)
	})
}
