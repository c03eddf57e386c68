// healthy_root_lifetime: main makes the process's root contexts once (a signal context and a 24-hour session
// deadline), holds them for the whole process lifetime, and a long-lived heartbeat goroutine waits on them.
// One long-lived context, never cancelled while the process runs, whose creator (main) is alive, is not a leak.
//
// ctxagent must report nothing.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"example.com/scenarios/internal/harness"
)

type key struct{}

func heartbeat(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func main() {
	o := harness.Parse()
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, 24*time.Hour)
	defer cancel()
	done := make(chan struct{})
	go heartbeat(ctx, done)
	n := 0
	harness.Run(o, ctx.Done(), func(i int) {
		if ctx.Value(key{}) == nil && ctx.Err() == nil { // per-event work reads the root, creates nothing
			n += i
		}
	})
	cancel()
	<-done
}
