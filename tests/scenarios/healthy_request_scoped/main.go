// healthy_request_scoped: every request gets a context with a timeout, derived from the process root, cancelled
// by its handler (defer cancel) when the request is done; a helper goroutine bound to it exits with it.
//
// ctxagent must report nothing.
package main

import (
	"context"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

func lookup(ctx context.Context, id int, out chan<- int) {
	select {
	case <-time.After(5 * time.Millisecond):
		out <- id
	case <-ctx.Done():
	}
}

func serve(parent context.Context, id int) {
	ctx, cancel := context.WithTimeout(parent, 2*time.Second)
	defer cancel()
	result := make(chan int, 1)
	go lookup(ctx, id, result)
	select {
	case <-result:
	case <-ctx.Done():
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
			serve(root, id)
		}(i)
	})
	stop()
	wg.Wait()
}
