//go:build go1.21

package main

import "context"

// detach keeps ctx's values and drops its cancellation.
func detach(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
