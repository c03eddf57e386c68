// loadsvc: the target of bench/overhead.sh. An HTTP service on 127.0.0.1 (port 0; the chosen
// address is printed on stdout) whose every request follows the healthy request-scoped pattern:
//
//	net/http's own per-request context (WithCancel, cancelled when the request ends)
//	  -> the handler's context.WithTimeout child (defer cancel)
//	       -> -children extra context.WithCancel children (each cancelled)   [default 0]
//	  a goroutine bound to the WithTimeout context computes the answer; the handler waits for it
//	  or for ctx.Done(), then cancels.
//
// So each request makes 2 + children cancelable contexts in this process (net/http's per-connection
// context is made once per keep-alive connection), and 2 goroutines: the handler's and net/http's
// background reader (started per request for bodiless requests).
//
// -leak_per_sec N leaks N contexts a second like an orphaned Done channel: a short-lived goroutine
// makes WithCancel(Background()), starts a watcher blocked on ctx.Done(), drops the cancel func and
// exits. Nothing can ever cancel the context; the watcher never wakes. -leak_delay / -leak_for
// bound the leaking window.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

var (
	children = flag.Int("children", 0, "extra WithCancel children per request (each cancelled)")
	timeout  = flag.Duration("timeout", 2*time.Second, "per-request WithTimeout")
	leakRate = flag.Float64("leak_per_sec", 0, "contexts leaked per second (orphaned Done channel)")
	leakWait = flag.Duration("leak_delay", 0, "start leaking after this long")
	leakFor  = flag.Duration("leak_for", 0, "stop leaking after this long (0: never)")

	requests atomic.Int64
	leaked   atomic.Int64
)

type session struct{ cancel context.CancelFunc }

var sink atomic.Int64

func watch(ctx context.Context) { <-ctx.Done() }

//go:noinline
func openSession() {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{cancel: cancel}
	go watch(ctx)
	// BUG (on purpose): nothing keeps s, nothing will call s.cancel.
	_ = s
}

func leakLoop() {
	if *leakRate <= 0 {
		return
	}
	time.Sleep(*leakWait)
	start := time.Now()
	var n int64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		el := now.Sub(start)
		if *leakFor > 0 && el > *leakFor {
			return
		}
		due := int64(el.Seconds() * *leakRate)
		for ; n < due; n++ {
			go openSession() // the creator goroutine exits right away
			leaked.Add(1)
		}
	}
}

func compute(ctx context.Context, n int64) int64 {
	if ctx.Err() != nil {
		return -1
	}
	return n*2654435761 + 1
}

func handle(w http.ResponseWriter, r *http.Request) {
	n := requests.Add(1)
	ctx, cancel := context.WithTimeout(r.Context(), *timeout)
	defer cancel()
	for i := 0; i < *children; i++ {
		c, cc := context.WithCancel(ctx)
		if c.Err() != nil {
			sink.Add(1)
		}
		cc()
	}
	res := make(chan int64, 1)
	go func() { res <- compute(ctx, n) }()
	var v int64
	select {
	case v = <-res:
	case <-ctx.Done():
		http.Error(w, "timeout", http.StatusGatewayTimeout)
		return
	}
	w.Header().Set("Content-Length", "20")
	fmt.Fprintf(w, "%020d", uint64(v)%1e19)
}

func stats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"pid":%d,"requests":%d,"leaked":%d}`+"\n", os.Getpid(), requests.Load(), leaked.Load())
}

func main() {
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/work", handle)
	mux.HandleFunc("/stats", stats)
	go leakLoop()
	fmt.Printf("loadsvc listening on %s pid=%s\n", ln.Addr(), strconv.Itoa(os.Getpid()))
	srv := &http.Server{Handler: mux, IdleTimeout: time.Minute}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
