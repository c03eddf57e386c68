//go:build go1.21

package main

import "context"

// onDone runs f when ctx is done, unless the returned stop is called first.
func onDone(ctx context.Context, f func()) (stop func() bool) {
	return context.AfterFunc(ctx, f)
}
