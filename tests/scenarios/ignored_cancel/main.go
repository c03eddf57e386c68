// ignored_cancel: a supervisor restarts a poller on every tick: it cancels the previous poller's context and
// starts a new `go worker(ctx)`. The worker loops on time.Sleep and never looks at ctx.Done(), so every
// cancelled worker keeps running forever.
//
// ctxagent must report one "ignored cancellation" finding at the WithCancel line (the cancelled context),
// naming the worker goroutines started at the `go worker(ctx, i)` line, still running after cancellation.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type key struct{}

func worker(ctx context.Context, id int) {
	for {
		// BUG: no `case <-ctx.Done(): return` anywhere.
		time.Sleep(time.Second)
		_ = ctx.Value(key{}) // uses ctx, never its Done channel
		_ = id
	}
}

func main() {
	o := harness.Parse()
	root, stopRoot := context.WithCancel(context.Background())
	defer stopRoot()
	var stop context.CancelFunc
	harness.Run(o, nil, func(i int) {
		if stop != nil {
			stop() // cancel the previous poller
		}
		var ctx context.Context
		ctx, stop = context.WithCancel(root) // want: ignored_cancel
		go worker(ctx, i)                    // want-spawner: ignored_cancel
	})
}
