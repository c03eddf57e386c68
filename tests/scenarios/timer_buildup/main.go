// timer_buildup: a cache gives every entry a one-hour timeout context and appends it to a slice, but drops
// the cancel funcs (an entry has no field for them) and never evicts entries. Live timers with far deadlines
// that nothing can cancel accumulate at -rate per second (each also sits in the root context's children map).
// (A cache that kept the cancel funcs could still cancel its entries: no timer build-up, however large.)
//
// ctxagent must report one "timer build-up" finding at the WithTimeout line, count growing. The root context
// held by main for the process lifetime is not a finding.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type entry struct {
	key int
	ctx context.Context
}

type cache struct{ entries []entry }

func (c *cache) add(parent context.Context, key int) {
	// BUG: the cancel func is dropped, and entries are never evicted.
	ctx, cancel := context.WithTimeout(parent, 1*time.Hour) // want: timer_buildup
	_ = cancel
	harness.Dropped(ctx)
	c.entries = append(c.entries, entry{key: key, ctx: ctx})
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	c := &cache{}
	harness.Run(o, nil, func(i int) {
		c.add(root, i)
	})
}
