// parked: -n goroutines parked for the goroutine-state bench (bench/goroutines.sh): a third on their
// own context's Done channel, a third in a select with a ticker, a third in time.Sleep.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 10000, "goroutines to park")
	flag.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	cancels := make([]context.CancelFunc, 0, *n)
	tick := time.NewTicker(time.Hour)
	for i := 0; i < *n; i++ {
		ctx, cancel := context.WithCancel(root)
		cancels = append(cancels, cancel)
		switch i % 3 {
		case 0:
			go func() { <-ctx.Done() }()
		case 1:
			go func() {
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}()
		default:
			go func() { time.Sleep(time.Hour); _ = ctx }()
		}
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())
	select {}
}
