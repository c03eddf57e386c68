// timer_buildup: a cache gives every entry a one-hour timeout context and appends it to a slice, but never
// evicts entries nor calls their cancel funcs. Live timers with far deadlines accumulate at -rate per second
// (each also sits in the root context's children map).
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
	key    int
	ctx    context.Context
	cancel context.CancelFunc
}

type cache struct{ entries []entry }

func (c *cache) add(parent context.Context, key int) {
	ctx, cancel := context.WithTimeout(parent, 1*time.Hour) // want: timer_buildup
	// BUG: entries are never evicted and cancel is never called.
	c.entries = append(c.entries, entry{key: key, ctx: ctx, cancel: cancel})
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
