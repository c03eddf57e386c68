// healthy_conn_heartbeat: long-lived connections (held 15-25 s by their live handlers) each with a
// heartbeat goroutine that honours the connection context's Done. The handler cancels when it ends.
// Nothing to report: the contexts are old and waited on, but their creators are alive and cancel them.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

func heartbeat(ctx context.Context, beats *int) {
	harness.Poll(ctx, 100*time.Millisecond, func() { *beats++ })
}

func serve(root context.Context, id int) {
	ctx, cancel := context.WithCancel(root)
	defer cancel()
	beats := 0
	go heartbeat(ctx, &beats)
	time.Sleep(time.Duration(15+id%11) * time.Second) // the connection's life
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	harness.Run(o, nil, func(i int) {
		go serve(root, i)
	})
}
