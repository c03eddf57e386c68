// healthy_detached_short: the legitimate cousin of broken_chain. A handler working under a cancelable request
// context starts a goroutine that deliberately detaches (roots a short 200 ms timeout context at Background)
// to flush an audit record after the request ends. The request context is cancelled while the flush may still
// be running, but the flush takes 20 ms and the goroutine exits well within any grace period.
//
// ctxagent must report nothing.
package main

import (
	"context"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

func flushAudit(ctx context.Context, id int) {
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
	}
}

func handle(reqCtx context.Context, id int, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond) // outlives the request, briefly
		defer cancel()
		flushAudit(ctx, id)
	}()
	select {
	case <-time.After(2 * time.Millisecond):
	case <-reqCtx.Done():
	}
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	harness.Run(o, nil, func(i int) {
		reqCtx, cancel := context.WithCancel(root)
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			defer cancel()
			handle(reqCtx, id, &wg)
		}(i)
	})
	wg.Wait()
}
