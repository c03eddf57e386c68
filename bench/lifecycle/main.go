// lifecycle: the target of bench/lifecycle.sh. One goroutine, locked to its thread, runs
//
//	_, cancel := context.WithCancel(parent); cancel()
//
// in a tight loop, where parent is a cancelable context made once: propagateCancel registers each
// child in parent's children set and cancel removes it, as under a request context in a service.
//
// The process starts, warms up for one round, prints {"ready":true,...} and waits. Each SIGUSR1
// starts a phase of -rounds rounds of -round each; every round prints one JSON line with its ns/op,
// and the phase ends with a {"done":true,...} line. Phases are triggered from outside so that the
// script can attach or detach the agent between them. SIGINT or SIGTERM ends the process.
// GOMAXPROCS comes from the environment.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// Lifecycles between clock reads: reading the clock every op would cost as much as the op.
const batch = 1000

type roundResult struct {
	Phase   int     `json:"phase"`
	Round   int     `json:"round"`
	Ops     int64   `json:"ops"`
	Ns      int64   `json:"ns"`
	NsPerOp float64 `json:"ns_per_op"`
}

type phaseDone struct {
	Phase int   `json:"phase"`
	Done  bool  `json:"done"`
	Ops   int64 `json:"ops"`
}

//go:noinline
func lifecycle(parent context.Context) {
	_, cancel := context.WithCancel(parent)
	cancel()
}

func round(parent context.Context, d time.Duration) (ops int64, elapsed time.Duration) {
	start := time.Now()
	for {
		for i := 0; i < batch; i++ {
			lifecycle(parent)
		}
		ops += batch
		if elapsed = time.Since(start); elapsed >= d {
			return ops, elapsed
		}
	}
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds per phase")
	roundDur := flag.Duration("round", time.Second, "duration of one round")
	flag.Parse()
	runtime.LockOSThread()

	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()

	start := make(chan os.Signal, 1)
	signal.Notify(start, syscall.SIGUSR1)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	out := json.NewEncoder(os.Stdout)
	round(parent, *roundDur)
	out.Encode(map[string]interface{}{"ready": true, "pid": os.Getpid(), "gomaxprocs": runtime.GOMAXPROCS(0)})
	for phase := 1; ; phase++ {
		select {
		case <-stop:
			return
		case <-start:
		}
		var total int64
		for r := 1; r <= *rounds; r++ {
			ops, el := round(parent, *roundDur)
			total += ops
			out.Encode(roundResult{phase, r, ops, el.Nanoseconds(), float64(el.Nanoseconds()) / float64(ops)})
		}
		out.Encode(phaseDone{phase, true, total})
	}
}
