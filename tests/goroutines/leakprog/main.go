// leakprog: goroutines leaked in every way the Go runtime's goroutineleak profile (Go 1.26+) can
// prove, beside healthy goroutines parked on things that can still wake them, and net/http/pprof
// on loopback: a test compares the goroutines ctxagent proves leaked with the runtime's own
// profile of the same process. Functions named leak* leak; healthy* must never be reported.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"sync"
	"time"
)

// What healthy goroutines wait on stays reachable from these globals.
var (
	jobs      = make(chan int)
	longPolls = map[int]chan string{}
	pollMu    sync.Mutex
	cond      = sync.NewCond(&sync.Mutex{})
	held      sync.Mutex
	keep      []any
)

func leakSend() {
	ch := make(chan int)
	go func() { ch <- 1 }()
}

func leakReceive() {
	ch := make(chan int)
	go func() { <-ch }()
}

func leakSelect() {
	a, b := make(chan int), make(chan string)
	go func() {
		select {
		case <-a:
		case b <- "x":
		}
	}()
}

func leakNilChannel() {
	var ch chan int
	go func() { <-ch }()
}

func leakSelectForever() {
	go func() { select {} }()
}

// The first goroutine waits on a channel nothing else holds and holds the only reference to the
// second's channel: both leak.
func leakChain() {
	first, second := make(chan int), make(chan int)
	go func() { <-second }()
	go func() {
		<-first
		second <- 1
	}()
}

// The classic early return: the caller gives up when its context is cancelled, and the workers'
// results have nowhere to go.
func leakAfterCancel(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	results := make(chan int)
	for i := 0; i < 2; i++ {
		go func(i int) { results <- work(ctx, i) }(i)
	}
	cancel()
	select {
	case <-results:
	case <-ctx.Done():
	}
}

func work(ctx context.Context, i int) int { return i }

func leakMutex() {
	mu := &sync.Mutex{}
	mu.Lock()
	go func() { mu.Lock() }()
}

func leakRWMutex() {
	rw := &sync.RWMutex{}
	rw.Lock()
	go func() { rw.RLock() }()
}

func leakWaitGroup() {
	wg := &sync.WaitGroup{}
	wg.Add(1)
	go func() { wg.Wait() }()
}

func leakCond() {
	c := sync.NewCond(&sync.Mutex{})
	go func() {
		c.L.Lock()
		c.Wait()
	}()
}

func healthyWorker() {
	for j := range jobs {
		_ = j
	}
}

func healthyLongPoll(id int) {
	ch := make(chan string)
	pollMu.Lock()
	longPolls[id] = ch
	pollMu.Unlock()
	<-ch
}

func healthyCondWaiter() {
	cond.L.Lock()
	cond.Wait()
	cond.L.Unlock()
}

func healthyTimer() { <-time.After(time.Hour) }

func healthyLocked() { held.Lock() }

// healthyHolder holds `held` and will unlock it: it sleeps, so it can run.
func healthyHolder() {
	held.Lock()
	time.Sleep(time.Hour)
	held.Unlock()
}

func spawn(n int) {
	for i := 0; i < n; i++ {
		leakSend()
		leakReceive()
		leakSelect()
		leakNilChannel()
		leakSelectForever()
		leakChain()
		leakAfterCancel(context.Background())
		leakMutex()
		leakRWMutex()
		leakWaitGroup()
		leakCond()
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "where net/http/pprof listens")
	n := flag.Int("n", 3, "goroutines leaked per pattern")
	flag.Parse()
	go healthyHolder()
	time.Sleep(10 * time.Millisecond)
	for i := 0; i < 3; i++ {
		go healthyWorker()
		go healthyLongPoll(i)
		go healthyCondWaiter()
		go healthyTimer()
		go healthyLocked()
	}
	spawn(*n)
	// Garbage between the leaks, so that the heap has spans to walk.
	for i := 0; i < 1000; i++ {
		keep = append(keep, make([]byte, 100), &struct{ p *int }{new(int)})
	}
	keep = nil
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go http.Serve(ln, nil)
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	fmt.Printf("listening addr=%s\nready pid=%d\n", ln.Addr(), os.Getpid())
	select {}
}
