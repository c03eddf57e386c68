// healthy_fanout: a request fans out to several goroutines under one cancelable context; the first
// error cancels the rest, which return on Done; the request waits for all of them.
package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

func part(ctx context.Context, n int, fail bool) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(5+n*10) * time.Millisecond):
		if fail {
			return errors.New("part failed")
		}
		return nil
	}
}

func request(root context.Context, id int) {
	ctx, cancel := context.WithCancel(root)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	for n := 0; n < 5; n++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			if err := part(ctx, n, n == 1 && id%2 == 0); err != nil {
				once.Do(cancel) // first error cancels the others
			}
		}(n)
	}
	wg.Wait()
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()
	harness.Run(o, nil, func(i int) {
		go request(root, i)
	})
}
