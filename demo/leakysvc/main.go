// leakysvc: a small HTTP service with two real context leaks, driven by its own load loop on
// loopback, for `ctxagent attach` to find.
//
//   - /order starts a background audit with context.Background() instead of the request context:
//     when the request ends, the audit keeps waiting for a cancellation that can never reach it
//     (a broken chain).
//   - /session opens a session whose watcher waits on ctx.Done(), and drops the cancel func
//     (an orphaned Done channel: the watcher goroutines pile up).
//
// Everything else is healthy: per-request timeouts with defer cancel, a client with timeouts.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func audit(orderID int) {
	// BUG: should derive from the request context.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	<-ctx.Done()
	_ = orderID
}

func handleOrder(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	go audit(len(r.URL.Path))
	select {
	case <-time.After(time.Millisecond):
		fmt.Fprintln(w, "ok")
	case <-ctx.Done():
		http.Error(w, "timeout", http.StatusGatewayTimeout)
	}
}

type session struct{ cancel context.CancelFunc }

func (s *session) watch(ctx context.Context) { <-ctx.Done() }

func handleSession(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{cancel: cancel}
	go s.watch(ctx)
	// BUG: the session is never closed: nothing will call s.cancel.
	fmt.Fprintln(w, "session opened")
}

func main() {
	rate := flag.Int("rate", 20, "requests per second the built-in load loop sends")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/order", handleOrder)
	mux.HandleFunc("/session", handleSession)
	go http.Serve(ln, mux)
	fmt.Printf("leakysvc listening on %s pid=%d\n", ln.Addr(), os.Getpid())

	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	for i := 0; ; i++ {
		<-tick.C
		path := "/order"
		if i%4 == 0 {
			path = "/session"
		}
		resp, err := client.Get("http://" + ln.Addr().String() + path)
		if err == nil {
			resp.Body.Close()
		}
	}
}
