// hostileprog: a Go program that corrupts its own runtime, as a hostile or broken target may, to
// prove that ctxagent stays bounded reading it. After -delay it overwrites one structure the agent
// reads (-mode):
//
//	allglen  runtime.allglen just under a million, past allgs' capacity
//	allgs    runtime.allgs pointed at a million garbage entries: pointers outside every mapping,
//	         into random bytes, and the real goroutines listed over and over
//	sudog    the sudog list of a goroutine parked in a select on three channels made cyclic
//	spans    mheap_.allspans' length and capacity set to 2^40
//	span     every mheap_.allspans entry pointed at bytes that read as a nonsensical in-use span
//
// then prints "corrupted" and sleeps without allocating or starting goroutines, so that its
// runtime never touches what it broke. Addresses come from its own symbol table, field offsets
// from its DWARF: build it unstripped.
package main

import (
	"context"
	"debug/dwarf"
	"debug/elf"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"runtime/debug"
	"time"
	"unsafe"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hostileprog: "+format+"\n", args...)
	os.Exit(1)
}

// Symbol addresses and struct field offsets of this binary (not PIE: addresses are as linked).
type layout struct {
	symbols map[string]uintptr
	fields  map[string]uintptr // "runtime.g.waiting"
}

func readLayout() layout {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	l := layout{symbols: map[string]uintptr{}, fields: map[string]uintptr{}}
	syms, err := f.Symbols()
	if err != nil {
		fail("no symbol table (build unstripped): %v", err)
	}
	for _, s := range syms {
		l.symbols[s.Name] = uintptr(s.Value)
	}
	d, err := f.DWARF()
	if err != nil {
		fail("no DWARF (build unstripped): %v", err)
	}
	want := map[string]bool{"runtime.g": true, "runtime.sudog": true, "runtime.mheap": true}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if e.Tag != dwarf.TagStructType || !want[name] {
			continue
		}
		for {
			m, err := r.Next()
			if err != nil || m == nil || m.Tag == 0 {
				break
			}
			if m.Tag != dwarf.TagMember {
				continue
			}
			field, _ := m.Val(dwarf.AttrName).(string)
			if off, ok := m.Val(dwarf.AttrDataMemberLoc).(int64); ok {
				l.fields[name+"."+field] = uintptr(off)
			}
		}
	}
	return l
}

func (l layout) symbol(name string) uintptr {
	a, ok := l.symbols[name]
	if !ok {
		fail("no symbol %s", name)
	}
	return a
}

func (l layout) field(name string) uintptr {
	o, ok := l.fields[name]
	if !ok {
		fail("no field %s in DWARF", name)
	}
	return o
}

func word(addr uintptr) *uintptr { return (*uintptr)(unsafe.Pointer(addr)) }

// What the corruption points at stays reachable from here (the GC is off anyway).
var keep []any

// The real goroutines' g pointers (runtime.allgs' array).
func allGs(l layout) []uintptr {
	allgs := l.symbol("runtime.allgs")
	n := *word(l.symbol("runtime.allglen"))
	out := make([]uintptr, n)
	for i := range out {
		out[i] = *word(*word(allgs) + uintptr(i)*8)
	}
	return out
}

func corruptAllgs(l layout) {
	real := allGs(l)
	const n = 1<<20 - 1
	garbage := make([]uintptr, n)
	noise := make([]byte, 1<<20)
	rand.Read(noise)
	for i := range garbage {
		switch i % 4 {
		case 0:
			garbage[i] = uintptr(rand.Uint64()) // mostly outside every mapping
		case 1:
			garbage[i] = uintptr(unsafe.Pointer(&noise[0])) + uintptr(rand.Intn(len(noise)-4096))&^7
		default:
			garbage[i] = real[i%len(real)]
		}
	}
	keep = append(keep, garbage, noise)
	allgs := l.symbol("runtime.allgs")
	*word(allgs) = uintptr(unsafe.Pointer(&garbage[0]))
	*word(allgs + 8) = n
	*word(allgs + 16) = n
	*word(l.symbol("runtime.allglen")) = n
}

// selectForever parks in a select on three channels that nobody will ever use.
func selectForever(ctx context.Context, a, b, c chan int) {
	select {
	case <-a:
	case <-b:
	case <-c:
	case <-ctx.Done():
	}
}

func corruptSudogs(l layout) {
	waiting, waitlink := l.field("runtime.g.waiting"), l.field("runtime.sudog.waitlink")
	for _, g := range allGs(l) {
		var chain []uintptr
		for s := *word(g + waiting); s != 0 && len(chain) < 8; s = *word(s + waitlink) {
			chain = append(chain, s)
		}
		if len(chain) == 4 { // selectForever's: three channels and the context's
			*word(chain[3] + waitlink) = chain[0]
			return
		}
	}
	fail("no goroutine parked in a four-case select")
}

func corruptSpans(l layout, everyEntry bool) {
	allspans := l.symbol("runtime.mheap_") + l.field("runtime.mheap.allspans")
	if !everyEntry {
		*word(allspans + 8) = 1 << 40
		*word(allspans + 16) = 1 << 40
		return
	}
	ones := make([]byte, 1<<16)
	for i := range ones {
		ones[i] = 1 // state 1 (in use), and sizes that make no sense
	}
	keep = append(keep, ones)
	n := *word(allspans + 8)
	for i := uintptr(0); i < n; i++ {
		*word(*word(allspans) + i*8) = uintptr(unsafe.Pointer(&ones[0])) + (i%64)*512
	}
}

func main() {
	mode := flag.String("mode", "allgs", "allglen, allgs, sudog, spans or span")
	delay := flag.Duration("delay", 2*time.Second, "how long the runtime stays sound")
	flag.Parse()
	debug.SetGCPercent(-1)
	l := readLayout()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go selectForever(ctx, make(chan int), make(chan int), make(chan int))
	fmt.Printf("ready pid=%d\n", os.Getpid())
	time.Sleep(*delay)
	runtime.Gosched()
	switch *mode {
	case "allglen":
		*word(l.symbol("runtime.allglen")) = 1<<20 - 1
	case "allgs":
		corruptAllgs(l)
	case "sudog":
		corruptSudogs(l)
	case "spans":
		corruptSpans(l, false)
	case "span":
		corruptSpans(l, true)
	default:
		fail("unknown mode %q", *mode)
	}
	fmt.Printf("corrupted mode=%s\n", *mode)
	for {
		time.Sleep(time.Hour)
	}
}
