// healthy_withvalue: a request context passes through WithValue layers (request id, user) before a child
// timeout context is derived from it; a worker waits on the child. The handler cancels the request context:
// cancellation propagates through the value layers to the child, and the worker returns. The child's own
// cancel func is deferred as go vet requires.
//
// ctxagent must report nothing (and must find the child's cancelable ancestor through the WithValue layers).
package main

import (
	"context"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

type reqIDKey struct{}
type userKey struct{}

func worker(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	<-ctx.Done()
}

func query(ctx context.Context) {
	child, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	done := make(chan struct{})
	go worker(child, done)
	time.Sleep(3 * time.Millisecond)
	<-done // returns once the handler cancels the request context
}

func handle(parent context.Context, id int) {
	reqCtx, cancel := context.WithCancel(parent)
	defer cancel()
	ctx := context.WithValue(reqCtx, reqIDKey{}, id)
	ctx = context.WithValue(ctx, userKey{}, "alice")
	go func() {
		time.Sleep(5 * time.Millisecond)
		cancel() // the request is over
	}()
	query(ctx)
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
			handle(root, id)
		}(i)
	})
	wg.Wait()
}
