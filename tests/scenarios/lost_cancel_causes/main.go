//go:build go1.21

// lost_cancel_causes: the constructors with a cause (go1.20/1.21), each dropping its cancel func.
//   - connections: each long-lived connection goroutine derives its context with WithCancelCause
//     and drops the CancelCauseFunc, then lives on polling the context (no creator exits);
//   - a cache gives entries a WithTimeoutCause (1 h) or a WithDeadlineCause (1 h) context and drops
//     the cancel funcs: far timers that nothing can cancel.
//
// ctxagent must report one "lost cancel" at the WithCancelCause line and one "timer build-up" at
// each of the two timer lines: the heap marks find the contexts and none of their cancel funcs.
// (before go1.21: old.go, a healthy stand-in)
package main

import (
	"context"
	"errors"
	"time"

	"example.com/scenarios/internal/harness"
)

var errStale = errors.New("entry is stale")

type conn struct {
	ctx   context.Context
	polls int
}

func (c *conn) serve(root context.Context) {
	c.ctx, _ = context.WithCancelCause(root) // want: lost_cancel (not go1.19: no WithCancelCause)
	harness.Dropped(c.ctx)
	harness.Poll(c.ctx, 200*time.Millisecond, func() { c.polls++ })
}

type cache struct{ entries []context.Context }

func (c *cache) add(parent context.Context, key int) {
	var ctx context.Context
	if key%2 == 0 {
		ctx, _ = context.WithTimeoutCause(parent, time.Hour, errStale) // want: timer_buildup (not go1.19: no WithTimeoutCause)
	} else {
		ctx, _ = context.WithDeadlineCause(parent, time.Now().Add(time.Hour), errStale) // want: timer_buildup (not go1.19: no WithDeadlineCause)
	}
	harness.Dropped(ctx)
	c.entries = append(c.entries, ctx)
}

var conns []*conn // the server's connection table: every connection stays in it

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background()) // lives as long as the process
	defer stop()
	entries := &cache{}
	harness.Run(o, nil, func(i int) {
		c := &conn{}
		conns = append(conns, c)
		go c.serve(root)
		entries.add(root, i)
	})
}
