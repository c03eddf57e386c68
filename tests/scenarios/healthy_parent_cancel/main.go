// healthy_parent_cancel: hedged requests. A handler makes a request context and sends the same query to three
// replicas, each under its own 10 s timeout context derived from it (with the deferred cancel go vet requires).
// The first answer wins and the handler cancels the request context: the two slower calls are ended by their
// parent, long before their own deadline; only then do their deferred cancels run (no-ops by then).
//
// ctxagent must report nothing (cancel attribution: the slow children were cancelled by their parent).
package main

import (
	"context"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

func replica(parent context.Context, delay time.Duration, out chan<- time.Duration) {
	ctx, cancel := context.WithTimeout(parent, 10*time.Second)
	defer cancel()
	select {
	case <-time.After(delay):
		out <- delay
	case <-ctx.Done(): // the request context was cancelled: another replica won
		out <- 0
	}
}

func handle(parent context.Context) {
	reqCtx, cancel := context.WithCancel(parent)
	defer cancel()
	out := make(chan time.Duration, 3)
	for r := 1; r <= 3; r++ {
		go replica(reqCtx, time.Duration(r)*20*time.Millisecond, out)
	}
	<-out    // first answer wins
	cancel() // stop the others through their parent
	<-out
	<-out
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	harness.Run(o, nil, func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(root)
		}()
	})
	wg.Wait()
}
