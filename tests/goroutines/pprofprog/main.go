// pprofprog: goroutines parked in many ways, some made before the agent attaches and some after
// (on SIGUSR1), and net/http/pprof on loopback, so that a test can compare what ctxagent reads from
// memory with the runtime's own goroutine?debug=2 dump.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"
)

var (
	never    = make(chan int)
	full     = make(chan int)
	mu       sync.Mutex
	wg       sync.WaitGroup
	cond     = sync.NewCond(&sync.Mutex{})
	rw       sync.RWMutex
	sessions []context.CancelFunc
)

func receiver()      { <-never }
func sender()        { full <- 1 }
func selector()      { select { case <-never: case full <- 2: } }
func sleeper()       { time.Sleep(time.Hour) }
func locker()        { mu.Lock() }
func waiter()        { wg.Wait() }
func condWaiter()    { cond.L.Lock(); cond.Wait() }
func reader()        { rw.RLock() }
func forever()       { select {} }
func watch(ctx context.Context) { <-ctx.Done() }

func spawn(n int) {
	for i := 0; i < n; i++ {
		go receiver()
		go sender()
		go selector()
		go sleeper()
		go locker()
		go waiter()
		go condWaiter()
		go reader()
		ctx, cancel := context.WithCancel(context.Background())
		sessions = append(sessions, cancel)
		go watch(ctx)
	}
	go forever()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "where net/http/pprof listens")
	flag.Parse()
	mu.Lock()
	wg.Add(1)
	rw.Lock()
	spawn(3)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go http.Serve(ln, nil)
	more := make(chan os.Signal, 1)
	signal.Notify(more, syscall.SIGUSR1)
	go func() {
		for range more {
			spawn(2)
			fmt.Println("spawned")
		}
	}()
	time.Sleep(50 * time.Millisecond)
	// A GC records when it saw goroutines parked: the time the previous one ended (so two).
	runtime.GC()
	runtime.GC()
	fmt.Printf("listening addr=%s\nready pid=%d\n", ln.Addr(), os.Getpid())
	select {}
}
