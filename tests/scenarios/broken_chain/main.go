// broken_chain: a request handler, working under a cancelable request context, starts a background goroutine
// that roots its own context at Background instead of deriving it from the request context. The request ends
// and its context is cancelled, but the cancellation cannot reach the background goroutine, which keeps
// running for an hour.
//
// ctxagent must report one "broken chain" finding: spawner site (the `go func` line in handle) -> goroutine ->
// new root site (the WithTimeout(context.Background(), ...) line). Not also a timer build-up, an ignored
// cancellation or an orphaned Done channel.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

// handle serves one request under reqCtx.
func handle(reqCtx context.Context, id int) {
	go func() { // want-spawner: broken_chain
		// BUG: should derive from reqCtx; this context outlives the request.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // want: broken_chain
		defer cancel()
		<-ctx.Done() // e.g. flush request id's audit record at the deadline
		_ = id
	}()
	select { // the request's own work
	case <-time.After(10 * time.Millisecond):
	case <-reqCtx.Done():
	}
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	harness.Run(o, nil, func(i int) {
		reqCtx, cancel := context.WithCancel(root) // the request context; cancelled when handle returns
		go func(id int) {
			defer cancel()
			handle(reqCtx, id)
		}(i)
	})
}
