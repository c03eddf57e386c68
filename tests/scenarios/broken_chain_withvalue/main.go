// broken_chain_withvalue: a request handler working under its request context starts a worker with
// context.WithValue(context.Background(), ...) where context.WithValue(req, ...) was meant. No
// cancelable context is created on the worker's path, so the request's cancellation cannot reach it:
// it runs on long after the request ended.
//
// ctxagent must report one "broken chain" at the `go` statement, naming the request context's site.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type traceKey struct{}

func worker(ctx context.Context) {
	for ctx.Err() == nil { // never true: nothing can cancel ctx
		_ = ctx.Value(traceKey{})
		time.Sleep(200 * time.Millisecond)
	}
}

func handle(root context.Context, id int) {
	req, cancel := context.WithCancel(root) // want-spawner: broken_chain
	defer cancel()
	// BUG: the trace value should be added to req, not to Background.
	wctx := context.WithValue(context.Background(), traceKey{}, id)
	go worker(wctx) // want: broken_chain
	time.Sleep(5 * time.Millisecond)
	_ = req.Err()
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	harness.Run(o, nil, func(i int) {
		go handle(root, i)
	})
}
