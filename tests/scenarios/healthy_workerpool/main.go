// healthy_workerpool: each batch runs a pool of workers in an errgroup-like group (a WaitGroup plus a context
// cancelled on the first error and by Wait). Every third batch has a failing job: the group cancels its
// context, the other workers see ctx.Done() and return, Wait returns. Cancellation reaches every goroutine.
//
// ctxagent must report nothing.
package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

// group is a minimal golang.org/x/sync/errgroup.
type group struct {
	wg     sync.WaitGroup
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

func withContext(parent context.Context) (*group, context.Context) {
	ctx, cancel := context.WithCancel(parent)
	return &group{cancel: cancel}, ctx
}

func (g *group) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.once.Do(func() {
				g.err = err
				g.cancel()
			})
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}

var errBadJob = errors.New("bad job")

func worker(ctx context.Context, jobs <-chan int, batch int) error {
	for j := range jobs {
		if batch%3 == 2 && j == 5 {
			return errBadJob
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func runBatch(parent context.Context, batch int) error {
	g, ctx := withContext(parent)
	jobs := make(chan int)
	for w := 0; w < 4; w++ {
		g.Go(func() error { return worker(ctx, jobs, batch) })
	}
	g.Go(func() error {
		defer close(jobs)
		for j := 0; j < 12; j++ {
			select {
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	return g.Wait()
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	harness.Run(o, nil, func(i int) {
		runBatch(root, i)
	})
}
