// broken_chain_without_cancel: request handlers hand work to goroutines through
// context.WithoutCancel (detach, go1.21+; WithValue over Background before), meant for a short
// follow-up that must outlive the request. Even requests hand the detached context itself to an
// audit loop; odd ones start a flusher that derives a 1 h timeout from it. Neither loop ends: the
// request's cancellation cannot cross the WithoutCancel link.
//
// ctxagent must report two "broken chain" findings: at the audit loop's `go` statement (handed an
// uncancelable context) and at the flusher's WithTimeout (a new root below WithoutCancel).
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type requestKey struct{}

func audit(ctx context.Context) {
	for ctx.Err() == nil { // never true: nothing can cancel ctx
		_ = ctx.Value(requestKey{})
		time.Sleep(200 * time.Millisecond)
	}
}

func handle(root context.Context, id int) {
	req, cancel := context.WithCancel(context.WithValue(root, requestKey{}, id)) // want-spawner: broken_chain
	defer cancel()
	if id%2 == 0 {
		go audit(detach(req)) // want: broken_chain
	} else {
		go func() {
			ctx, stop := context.WithTimeout(detach(req), time.Hour) // want: broken_chain
			defer stop()
			for ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	harness.Run(o, nil, func(i int) {
		go handle(root, i)
	})
}
