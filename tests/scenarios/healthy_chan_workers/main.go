// healthy_chan_workers: a pool of long-lived workers receives jobs, each carrying its request's
// context, over a channel and honours it: a job whose context ends is abandoned. Requests cancel
// their contexts when done.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type job struct {
	ctx  context.Context
	cost time.Duration
	done chan error
}

func worker(jobs <-chan job) {
	for j := range jobs {
		select {
		case <-j.ctx.Done():
			j.done <- j.ctx.Err()
		case <-time.After(j.cost):
			j.done <- nil
		}
	}
}

func request(root context.Context, jobs chan<- job, id int) {
	ctx, cancel := context.WithTimeout(root, 30*time.Millisecond)
	defer cancel()
	j := job{ctx: ctx, cost: time.Duration(id%5) * 15 * time.Millisecond, done: make(chan error, 1)}
	jobs <- j
	<-j.done
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	jobs := make(chan job)
	for w := 0; w < 4; w++ {
		go worker(jobs)
	}
	harness.Run(o, nil, func(i int) {
		go request(root, jobs, i)
	})
}
