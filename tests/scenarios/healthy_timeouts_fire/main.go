// healthy_timeouts_fire: calls to a slow backend under short deadlines (WithTimeout 20 ms, WithDeadline 30 ms)
// that fire before the backend answers; the caller waits on ctx.Done(), then runs its deferred cancel. The
// backend goroutine (not bound to the context) finishes on its own 80 ms later. Timers end by themselves.
//
// ctxagent must report nothing.
package main

import (
	"context"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

func backend() <-chan int {
	out := make(chan int, 1)
	go func() {
		time.Sleep(80 * time.Millisecond)
		out <- 42
	}()
	return out
}

func callWithTimeout(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, 20*time.Millisecond)
	defer cancel()
	select {
	case <-backend():
	case <-ctx.Done(): // fires first
	}
}

func callWithDeadline(parent context.Context) {
	ctx, cancel := context.WithDeadline(parent, time.Now().Add(30*time.Millisecond))
	defer cancel()
	res := backend()
	<-ctx.Done()
	select {
	case <-res:
	default:
	}
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	harness.Run(o, nil, func(i int) {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			if id%2 == 0 {
				callWithTimeout(root)
			} else {
				callWithDeadline(root)
			}
		}(i)
	})
	wg.Wait()
}
