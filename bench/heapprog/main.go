// heapprog: a live heap of -mb MiB of pointer-bearing 64-byte nodes (a shuffled linked graph, as a
// service's caches and maps look to a mark), plus a few leaked goroutines, for bench/heap_mark.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"time"
)

type node struct {
	next, other *node
	payload     [6]uint64
}

var roots []*node

// A request whose result nobody receives: the worker leaks (and ctxagent, like any agent, traces
// the binary only if it uses context).
func leak() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan int)
	go func() {
		<-ctx.Done()
		ch <- 1
	}()
}

func main() {
	mb := flag.Int("mb", 10, "live heap in MiB")
	flag.Parse()
	n := *mb << 20 / 64
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = &node{}
	}
	rand.Shuffle(n, func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	for i := 0; i+1 < n; i++ {
		nodes[i].next = nodes[i+1]
		nodes[i].other = nodes[rand.Intn(n)]
	}
	roots = []*node{nodes[0]}
	nodes = nil
	for i := 0; i < 10; i++ {
		leak()
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("ready pid=%d heap_alloc=%d\n", os.Getpid(), ms.HeapAlloc)
	for { // asleep, not deadlocked: the runtime would end a program whose goroutines all block
		time.Sleep(time.Hour)
	}
}
