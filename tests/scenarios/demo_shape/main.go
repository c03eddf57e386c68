// demo_shape: the shape of demo/leakysvc, an HTTP service on loopback driven by its own client:
// /order starts an audit rooted at Background (a broken chain), /session opens a session whose
// watcher waits on ctx.Done() and drops the cancel func (an orphaned Done channel). The session
// contexts are freed by the GC while their watchers wait, and connection contexts reuse their
// memory: a connection's cancel must never be taken for a session's (no ignored_cancel here).
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"example.com/scenarios/internal/harness"
)

func audit(orderID int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // want: broken_chain
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
	ctx, cancel := context.WithCancel(context.Background()) // want: orphaned_done
	s := &session{cancel: cancel}
	go s.watch(ctx)
	fmt.Fprintln(w, "session opened")
}

func main() {
	o := harness.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/order", handleOrder)
	mux.HandleFunc("/session", handleSession)
	go http.Serve(ln, mux)
	client := &http.Client{Timeout: time.Second}
	harness.Run(o, nil, func(i int) {
		path := "/order"
		if i%4 == 0 {
			path = "/session"
		}
		resp, err := client.Get("http://" + ln.Addr().String() + path)
		if err == nil {
			resp.Body.Close()
		}
	})
}
