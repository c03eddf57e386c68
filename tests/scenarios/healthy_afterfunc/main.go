// healthy_afterfunc: a blocking read on a fake connection is made cancelable by registering "close the conn"
// to run when the context ends (context.AfterFunc on go1.21+, the equivalent watcher goroutine before).
// Even requests get data in time and stop the registration; odd ones time out (15 ms) and the callback
// unblocks the read. Either way the context is cancelled by its deferred cancel or its deadline.
//
// ctxagent must report nothing (a stopped AfterFunc is finished, not a lost cancel).
package main

import (
	"context"
	"sync"
	"time"

	"example.com/scenarios/internal/harness"
)

type conn struct {
	data   chan int
	closed chan struct{}
	once   sync.Once
}

func newConn() *conn { return &conn{data: make(chan int, 1), closed: make(chan struct{})} }

func (c *conn) Close() { c.once.Do(func() { close(c.closed) }) }

func (c *conn) Read() (int, bool) {
	select {
	case v := <-c.data:
		return v, true
	case <-c.closed:
		return 0, false
	}
}

func request(parent context.Context, id int) {
	ctx, cancel := context.WithTimeout(parent, 15*time.Millisecond)
	defer cancel()
	c := newConn()
	stop := onDone(ctx, c.Close) // afterfunc_go121.go / afterfunc_old.go
	defer stop()
	if id%2 == 0 {
		c.data <- id // data arrives before the deadline
	}
	c.Read()
}

func main() {
	o := harness.Parse()
	root, stopRoot := context.WithCancel(context.Background())
	defer stopRoot()
	var wg sync.WaitGroup
	harness.Run(o, nil, func(i int) {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			request(root, id)
		}(i)
	})
	wg.Wait()
}
