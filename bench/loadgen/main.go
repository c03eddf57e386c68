// loadgen: drives a target request rate at an HTTP/1.1 server on loopback over keep-alive
// connections for a bounded time, and prints one JSON object: achieved throughput and latency
// percentiles.
//
// It speaks HTTP/1.1 itself over net.Conn (no net/http client: fewer goroutines, contexts and
// allocations per request, so more of the 2 cores are left to the target). Each of -conns workers
// owns one connection and sends one request at a time on a fixed schedule (rate/conns per worker,
// staggered); a worker that falls behind sends immediately without skipping, so when the target
// saturates the achieved rate falls below the target rate. Latency is measured from the moment
// the request is written to the end of the response body; late_p99_us is measured from the
// scheduled send time instead (it includes queueing behind a late response: coordinated omission).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type result struct {
	TargetRPS   float64 `json:"target_rps"`
	AchievedRPS float64 `json:"achieved_rps"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Duration    float64 `json:"duration_s"`
	Conns       int     `json:"conns"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	MaxUs       float64 `json:"max_us"`
	LateP99us   float64 `json:"late_p99_us"`
}

func readResponse(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[9:12]) != "200" {
		return fmt.Errorf("status %q", strings.TrimSpace(string(line)))
	}
	clen := -1
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 15 && strings.EqualFold(string(h[:15]), "content-length:") {
			clen, _ = strconv.Atoi(strings.TrimSpace(string(h[15:])))
		}
	}
	if clen < 0 {
		return errors.New("no Content-Length")
	}
	_, err = r.Discard(clen)
	return err
}

func main() {
	addr := flag.String("addr", "", "host:port of the server")
	path := flag.String("path", "/work", "request path")
	rate := flag.Float64("rate", 1000, "target requests per second (total)")
	dur := flag.Duration("duration", 10*time.Second, "how long to send")
	conns := flag.Int("conns", 16, "keep-alive connections (one request in flight on each)")
	flag.Parse()
	if *addr == "" || *rate <= 0 || *conns <= 0 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -addr host:port [-rate R] [-duration D] [-conns N]")
		os.Exit(2)
	}
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *addr + "\r\nUser-Agent: loadgen\r\n\r\n")
	interval := time.Duration(float64(time.Second) * float64(*conns) / *rate)
	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(*dur)

	var mu sync.Mutex
	var lat, late []time.Duration
	var nerr int64
	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			my := make([]time.Duration, 0, int(float64(*dur)/float64(interval))+16)
			myLate := make([]time.Duration, 0, cap(my))
			var errs int64
			var c net.Conn
			var br *bufio.Reader
			next := start.Add(time.Duration(int64(interval) * int64(w) / int64(*conns)))
			for ; next.Before(end); next = next.Add(interval) {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", *addr); err != nil {
						errs++
						c = nil
						continue
					}
					br = bufio.NewReaderSize(c, 4096)
				}
				t0 := time.Now()
				_, err := c.Write(req)
				if err == nil {
					err = readResponse(br)
				}
				t1 := time.Now()
				if err != nil {
					if errs == 0 && !errors.Is(err, io.EOF) {
						fmt.Fprintln(os.Stderr, "loadgen:", err)
					}
					errs++
					c.Close()
					c = nil
					continue
				}
				my = append(my, t1.Sub(t0))
				myLate = append(myLate, t1.Sub(next))
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			lat = append(lat, my...)
			late = append(late, myLate...)
			nerr += errs
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	pct := func(v []time.Duration, p float64) float64 {
		if len(v) == 0 {
			return 0
		}
		i := int(p * float64(len(v)-1))
		return float64(v[i]) / 1e3
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	r := result{
		TargetRPS: *rate, Requests: int64(len(lat)), Errors: nerr, Duration: elapsed.Seconds(), Conns: *conns,
		AchievedRPS: float64(len(lat)) / elapsed.Seconds(),
		P50us:       pct(lat, 0.50), P90us: pct(lat, 0.90), P99us: pct(lat, 0.99), P999us: pct(lat, 0.999),
		MaxUs: pct(lat, 1), LateP99us: pct(late, 0.99),
	}
	json.NewEncoder(os.Stdout).Encode(r)
}
