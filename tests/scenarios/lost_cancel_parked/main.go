// lost_cancel_parked: each connection derives its context from the server's long-lived root, keeps
// the cancel func in a struct and starts a goroutine that waits on ctx.Done(); the struct is then
// dropped. Nothing but shutdown (the root's cancel) will ever release the waiters: a goroutine blocked
// on <-ctx.Done() cannot be the one that calls cancel. go vet misses it (the cancel func is stored),
// a GC-based leak check too (the root's children map keeps everything reachable).
//
// ctxagent must report one "lost cancel" at the WithCancel line in open, counting the goroutines parked
// on the contexts' Done channels (read from the target's memory).
package main

import (
	"context"

	"example.com/scenarios/internal/harness"
)

type conn struct {
	id     int
	cancel context.CancelFunc
}

func (c *conn) wait(ctx context.Context) { <-ctx.Done() }

// open runs in its own short-lived goroutine, one per connection.
func open(root context.Context, id int) {
	ctx, cancel := context.WithCancel(root) // want: lost_cancel
	c := &conn{id: id, cancel: cancel}
	go c.wait(ctx)
	// BUG: c is dropped without c.cancel being called.
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background()) // the server's root: cancelled at shutdown only
	defer stop()
	harness.Run(o, nil, func(i int) {
		go open(root, i)
	})
}
