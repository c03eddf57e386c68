// healthy_held_cancels: contexts whose cancel funcs are held, made by goroutines that exit at once.
//   - a bounded registry of subscriptions (at most 12): each keeps its cancel func, and subscribing
//     past the bound unsubscribes (cancels) the oldest;
//   - deferred cleanup: each job's cancel func is queued and called 3 s later by main.
//
// Nothing to report: the contexts outlive their creators and their counts grow to a bound, which a
// rule over history calls a lost cancel, but every cancel func is reachable until it is called.
package main

import (
	"context"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

type subscription struct {
	ctx    context.Context
	cancel context.CancelFunc
}

type registry struct {
	mu   sync.Mutex
	subs []subscription
}

func (r *registry) subscribe(root context.Context) {
	ctx, cancel := context.WithCancel(root)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = append(r.subs, subscription{ctx, cancel})
	if len(r.subs) > 12 {
		r.subs[0].cancel()
		r.subs = r.subs[1:]
	}
}

type pending struct {
	due    time.Time
	cancel context.CancelFunc
}

type cleanup struct {
	mu    sync.Mutex
	queue []pending
}

func (c *cleanup) job(root context.Context) {
	ctx, cancel := context.WithCancel(root)
	_ = ctx.Err() // the job's work
	c.mu.Lock()
	c.queue = append(c.queue, pending{time.Now().Add(3 * time.Second), cancel})
	c.mu.Unlock()
}

// run cancels what is due; main calls it on every event.
func (c *cleanup) run(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && now.After(c.queue[0].due) {
		c.queue[0].cancel()
		c.queue = c.queue[1:]
	}
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	reg, jobs := &registry{}, &cleanup{}
	harness.Run(o, nil, func(i int) {
		go reg.subscribe(root)
		go jobs.job(root)
		jobs.run(time.Now())
	})
}
