// healthy_http: a real net/http server on 127.0.0.1 (random port, printed as "listening addr=...") and a client
// in the same process calling it at -rate requests per second, each with a 1 s context timeout and defer
// cancel. Every 5th request goes to /slow, whose handler waits on r.Context(); the client gives up after 50 ms,
// the connection closes, the server cancels the request context and the handler returns.
// Exercises the standard library's own contexts (per connection, per request, dials) and `go srv.Serve(ln)`
// from main, which roots server contexts at Background under a root that is never cancelled.
//
// ctxagent must report nothing.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"example.com/scenarios/internal/harness"
)

func work(w http.ResponseWriter, r *http.Request) {
	select {
	case <-time.After(2 * time.Millisecond):
		fmt.Fprintln(w, "ok")
	case <-r.Context().Done():
	}
}

func slow(w http.ResponseWriter, r *http.Request) {
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-t.C:
		fmt.Fprintln(w, "late")
	case <-r.Context().Done(): // the client went away
	}
}

func call(root context.Context, client *http.Client, url string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(root, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return // /slow: deadline exceeded, expected
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func main() {
	o := harness.Parse()
	root, stop := context.WithCancel(context.Background())
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("/work", work)
	mux.HandleFunc("/slow", slow)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	base := "http://" + ln.Addr().String()
	fmt.Printf("listening addr=%s\n", ln.Addr())

	client := &http.Client{Timeout: 5 * time.Second}
	harness.Run(o, nil, func(i int) {
		if i%5 == 4 {
			call(root, client, base+"/slow", 50*time.Millisecond)
		} else {
			call(root, client, base+"/work", time.Second)
		}
	})

	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	<-served
	client.CloseIdleConnections()
	stop()
}
