//go:build !go1.21

// Before go1.21 there is no context.AfterFunc: a healthy program, no finding.
package main

import (
	"context"

	"example.com/scenarios/internal/harness"
)

// Per event, a context cancelled at once (an agent attaches only where contexts are in use).
func main() {
	harness.Run(harness.Parse(), nil, func(int) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_ = ctx.Err()
	})
}
