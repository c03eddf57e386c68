// idlesvc: an idle Go service for the daemon's fixed costs (bench/idle.sh). It holds -hold live
// cancelable contexts (each with a goroutine waiting on it, as a server's sessions would), and
// makes -per_sec short-lived contexts a second: WithTimeout, a goroutine bound to it, cancel.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	hold := flag.Int("hold", 0, "live contexts held (each waited on by a goroutine)")
	perSec := flag.Float64("per_sec", 1, "short-lived contexts per second")
	holdAfter := flag.Duration("hold_after", 2*time.Second, "create the held contexts after this long (once the daemon traces the process)")
	flag.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	time.Sleep(*holdAfter)
	for i := 0; i < *hold; i++ {
		ctx, cancel := context.WithCancel(root)
		_ = cancel // cancelled with root
		go func() { <-ctx.Done() }()
	}
	fmt.Println("idlesvc ready", os.Getpid())
	tick := time.NewTicker(time.Duration(float64(time.Second) / *perSec))
	for range tick.C {
		ctx, cancel := context.WithTimeout(root, time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			select {
			case <-ctx.Done():
			case <-time.After(time.Millisecond):
			}
		}()
		<-done
		cancel()
	}
}
