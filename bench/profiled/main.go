// profiled: -n goroutines parked (chan receive, select, sleep) and net/http/pprof, plus /pauses:
// the runtime's own count and time of its non-GC stop-the-world pauses
// (/sched/pauses/total/other:seconds), to compare what a goroutine profile costs the process when
// the runtime dumps itself and when ctxagent reads it from outside (bench/profile.sh).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime/metrics"
	"time"
)

func pauses(w http.ResponseWriter, _ *http.Request) {
	s := []metrics.Sample{{Name: "/sched/pauses/total/other:seconds"}}
	metrics.Read(s)
	h := s[0].Value.Float64Histogram()
	var n uint64
	var total, longest float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		// Each pause counted at its bucket's upper bound: an upper estimate.
		hi := h.Buckets[i+1]
		n += c
		total += float64(c) * hi
		longest = hi
	}
	fmt.Fprintf(w, "%d %g %g\n", n, total, longest)
}

func main() {
	n := flag.Int("n", 1000, "goroutines to park")
	flag.Parse()
	never := make(chan int)
	for i := 0; i < *n; i++ {
		switch i % 3 {
		case 0:
			go func() { <-never }()
		case 1:
			go func() {
				select {
				case <-never:
				case <-time.After(time.Hour):
				}
			}()
		default:
			go func() { time.Sleep(time.Hour) }()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.HandleFunc("/pauses", pauses)
	go http.Serve(ln, nil)
	fmt.Printf("ready pid=%d addr=%s\n", os.Getpid(), ln.Addr())
	select {}
}
