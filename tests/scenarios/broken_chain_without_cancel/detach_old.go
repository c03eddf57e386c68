//go:build !go1.21

package main

import "context"

// detach is the pre-go1.21 stand-in for context.WithoutCancel: the request's value over a fresh
// Background.
func detach(ctx context.Context) context.Context {
	return context.WithValue(context.Background(), requestKey{}, ctx.Value(requestKey{}))
}
