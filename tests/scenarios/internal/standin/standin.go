// Package standin is the whole program of a scenario built with a toolchain that lacks what the
// scenario is about (a go1.21 constructor, with go1.19): per event, a context cancelled at once
// (an agent attaches only where contexts are in use). Nothing to report.
package standin

import (
	"context"

	"example.com/scenarios/internal/harness"
)

// Main runs the stand-in until -duration ends or it is killed.
func Main() {
	harness.Run(harness.Parse(), nil, func(int) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_ = ctx.Err()
	})
}
