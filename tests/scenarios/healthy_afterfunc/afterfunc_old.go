//go:build !go1.21

package main

import "context"

// onDone is the pre-go1.21 idiom for context.AfterFunc: a goroutine waiting on ctx.Done() or on stop.
func onDone(ctx context.Context, f func()) (stop func() bool) {
	stopc := make(chan struct{})
	ran := make(chan bool, 1)
	go func() {
		select {
		case <-ctx.Done():
			f()
			ran <- true
		case <-stopc:
			ran <- false
		}
	}()
	return func() bool {
		close(stopc)
		return !<-ran
	}
}
