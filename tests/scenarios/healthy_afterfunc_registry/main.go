//go:build go1.21

// healthy_afterfunc_registry: a bounded set of watches (at most 16), each registered with
// context.AfterFunc on the server's root by a goroutine that exits at once; the registry keeps
// every stop func, replacing a watch stops the oldest, and main stops them all at the end.
//
// Nothing to report: the registrations outlive their creators and their count grows to the bound,
// but every stop func is reachable until it is called. (before go1.21: old.go, the same program
// without AfterFunc)
package main

import (
	"context"
	"sync"

	"example.com/scenarios/internal/harness"
)

type registry struct {
	mu    sync.Mutex
	stops []func() bool
	fired int
}

func (r *registry) watch(root context.Context) {
	stop := context.AfterFunc(root, func() {
		r.mu.Lock()
		r.fired++
		r.mu.Unlock()
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stops = append(r.stops, stop)
	if len(r.stops) > 16 {
		r.stops[0]()
		r.stops = r.stops[1:]
	}
}

func (r *registry) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, stop := range r.stops {
		stop()
	}
	r.stops = nil
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	reg := &registry{}
	defer reg.stopAll()
	harness.Run(o, nil, func(i int) {
		go reg.watch(root)
	})
}
