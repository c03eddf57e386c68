// preattach_leak: leaks before the agent attaches, then nothing new: 40 sessions whose watchers wait
// on ctx.Done() with the cancel func dropped, and 20 goroutines blocked on a channel nobody sends on,
// all made before "ready"; afterwards only healthy request-scoped timeouts.
//
// No context finding: contexts made before the attach have no creation site or creator the agent
// could know, so no context finding's conditions can be established soundly (docs/internals.md).
// The watchers are leaked as the runtime sees it (nothing live holds their Done channels): main's
// frame still holds the dropped slice in a dead slot, which the heap mark's precise stack scan
// (stack maps) ignores, so all 40 are a proven goroutine_leak where they block. Built with go1.26
// they are found in some runs only (the runtime's own goroutineleak profile calls all 40 leaked):
// some marks reach their contexts; not yet explained.
// The stuck goroutines wait on a global channel: reachable, not leaked.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type session struct{ cancel context.CancelFunc }

func (s *session) watch(ctx context.Context) { <-ctx.Done() } // want: goroutine_leak (not go1.19, go1.26: sometimes missed)

var never = make(chan int)

func stuck() { <-never }

func main() {
	o := harness.Parse()
	sessions := make([]*session, 0, 40)
	for i := 0; i < 40; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		s := &session{cancel: cancel}
		go s.watch(ctx)
		sessions = append(sessions, s)
	}
	sessions = nil // BUG: the sessions are dropped uncancelled
	for i := 0; i < 20; i++ {
		go stuck()
	}
	root, stop := context.WithCancel(context.Background())
	defer stop()
	harness.Run(o, nil, func(i int) {
		ctx, cancel := context.WithTimeout(root, 10*time.Millisecond)
		defer cancel()
		<-ctx.Done()
	})
}
