// lost_cancel_live_creator: every event opens a long-lived "connection" whose goroutine derives its
// context from the server's root; even connections keep the cancel func (to close the connection
// later), odd ones drop it at once (recorded: harness.Dropped). The goroutines live on (they poll
// their contexts on a ticker), so no creator ever exits and each creator holds one context per
// site. Nothing can cancel the odd ones' contexts but the root's end: the root's children map grows
// by one per such connection.
//
// ctxagent must report one "lost cancel" at the WithCancel line, made of dropped contexts only: the
// heap marks find the contexts reachable and no cancel func of theirs (a rule over the creators'
// history sees nothing to blame).
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type conn struct {
	id     int
	ctx    context.Context // set by serve, read only by it
	cancel context.CancelFunc
	polls  int
}

var conns []*conn // the server's connection table: every connection stays in it

func (c *conn) serve(root context.Context) {
	ctx, cancel := context.WithCancel(root) // want: lost_cancel
	c.ctx = ctx
	if c.id%2 == 0 {
		c.cancel = cancel // kept: the server may close this connection
	} else {
		harness.Dropped(ctx)
	}
	harness.Poll(c.ctx, 200*time.Millisecond, func() { c.polls++ })
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background()) // lives as long as the process: not a finding
	defer stop()
	harness.Run(o, nil, func(i int) {
		c := &conn{id: i}
		conns = append(conns, c)
		go c.serve(root)
	})
}
