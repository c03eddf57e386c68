// Package harness holds what every scenario shares: flags, the "ready" line, the event loop, a
// polling loop and the record of dropped cancel funcs. It creates no contexts: every context in a
// scenario is made in that scenario's main.go (internal/standin excepted).
package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Opts are the command-line options common to every scenario.
type Opts struct {
	Rate     float64       // events per second
	Duration time.Duration // 0: run until killed
	Debug    bool          // print goroutine count and live heap to stderr every second
}

// seconds is a duration flag that also accepts a bare number of seconds ("2" == "2s").
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return "0"
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	*s.d = d
	return nil
}

// Parse parses the common flags (scenarios may define their own before calling it).
func Parse() Opts {
	o := Opts{}
	flag.Float64Var(&o.Rate, "rate", 5, "events per second")
	flag.Var(seconds{&o.Duration}, "duration", "run time (e.g. 2s, or 2 = seconds); 0 = until killed")
	flag.BoolVar(&o.Debug, "debug", false, "print runtime.NumGoroutine() and the live heap (after a GC) to stderr every second")
	recordPath := flag.String("record", "", "append a line per dropped cancel func to this file (Dropped)")
	flag.Parse()
	if *recordPath != "" {
		f, err := os.OpenFile(*recordPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		record.f = f
	}
	if o.Rate <= 0 {
		fmt.Fprintln(os.Stderr, "-rate must be > 0")
		os.Exit(2)
	}
	return o
}

// Run prints "ready pid=<pid>", then calls event(0), event(1), ... on the calling goroutine at o.Rate per
// second, until o.Duration has passed (if non-zero) or stop is closed (if non-nil).
func Run(o Opts, stop <-chan struct{}, event func(i int)) {
	if o.Debug {
		go debugLoop()
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
	defer tick.Stop()
	var end <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		end = t.C
	}
	for i := 0; ; i++ {
		event(i)
		select {
		case <-tick.C:
		case <-end:
			return
		case <-stop:
			return
		}
	}
}

// Poll calls f every `every` until ctx is done.
func Poll(ctx context.Context, every time.Duration, f func()) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

var record struct {
	sync.Mutex
	f *os.File
}

// Dropped records, with -record, that the program dropped the cancel func of ctx: "dropped <its
// address>". The end-to-end test checks each lost cancel and timer build-up the agent reports
// against these lines.
func Dropped(ctx any) {
	record.Lock()
	defer record.Unlock()
	if record.f != nil {
		fmt.Fprintf(record.f, "dropped %p\n", ctx)
	}
}

func debugLoop() {
	var ms runtime.MemStats
	for range time.Tick(time.Second) {
		runtime.GC() // so that heap_kb counts live objects only: leaked contexts, not garbage
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(os.Stderr, "goroutines=%d heap_kb=%d\n", runtime.NumGoroutine(), ms.HeapAlloc/1024)
	}
}
