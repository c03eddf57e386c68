// lost_cancel_custom_context: every connection wraps the server's root in its own Context type
// (a struct embedding context.Context, with the user's name: a common way to carry request data),
// derives its context from that wrapper and drops the cancel func (recorded: harness.Dropped),
// then lives on polling it. The wrapper delegates Done to the root, so package context hangs each
// child in the root's children map, where it stays until the root ends.
//
// ctxagent must report one "lost cancel" at the WithCancel line: the parent chain is read through
// the custom Context to the root (its parent Context at +0), and the heap marks find no cancel
// func of the children.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

// session is the application's own Context: the root's cancellation and values, plus a user.
type session struct {
	context.Context
	user string
}

func (s *session) Value(key any) any {
	if key == "user" {
		return s.user
	}
	return s.Context.Value(key)
}

type conn struct{ ctx context.Context }

var conns []*conn // the server's connection table: every connection stays in it

func (c *conn) serve(root context.Context, user string) {
	ctx, _ := context.WithCancel(&session{root, user}) // want: lost_cancel
	harness.Dropped(ctx)
	c.ctx = ctx
	harness.Poll(c.ctx, 200*time.Millisecond, func() { _ = c.ctx.Value("user") })
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background()) // lives as long as the process
	defer stop()
	harness.Run(o, nil, func(i int) {
		c := &conn{}
		conns = append(conns, c)
		go c.serve(root, "user")
	})
}
