// ignored_cancel_held_job: like ignored_cancel_chan_worker, but a worker never has the request's
// context itself in a variable: it receives a *job whose ctx field is a WithValue layer over the
// request's context, and keeps only the job pointer while it works. main cancels each request
// 200 ms after handing its job over; the workers never look at Done.
//
// ctxagent must report one "ignored cancellation" at the requests' WithCancel line: the heap marks
// follow each worker's job pointer, then the WithValue layer, to the cancelled context.
package main

import (
	"context"
	"time"

	"example.com/scenarios/internal/harness"
)

type traceKey struct{}

type job struct {
	id  int
	ctx context.Context // WithValue over the request's context
}

var logged int

// process works on its job until it is done. BUG: it never checks j.ctx.Done().
func process(j *job) {
	for step := 0; step < 1<<40; step++ {
		time.Sleep(20 * time.Millisecond)
		if j.ctx.Value(traceKey{}) != nil {
			logged += step
		}
	}
}

func worker(jobs <-chan *job) {
	for j := range jobs {
		process(j)
	}
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	jobs := make(chan *job)
	for w := 0; w < 100; w++ {
		go worker(jobs) // want-spawner: ignored_cancel
	}
	harness.Run(o, nil, func(i int) {
		ctx, cancel := context.WithCancel(root) // want: ignored_cancel
		jobs <- &job{i, context.WithValue(ctx, traceKey{}, i)}
		time.AfterFunc(200*time.Millisecond, cancel)
	})
}
