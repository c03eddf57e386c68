// The target's memory as a graph, marked from outside with the Go runtime's goroutine-leak
// semantics (runtime/mgc.go, Go 1.26+ `goroutineleak` profile), on every Go release tabled in
// symbols/go_facts:
//  - objects are the slots of in-use heap spans (runtime.mheap_.allspans), allocated per the span's
//    allocation bits and free index; pointer-free spans (no-scan size classes) are never read;
//  - roots are the globals (data/bss with their pointer bitmaps from moduledata) and the stacks of
//    goroutines that can run: running, runnable, in a syscall, asleep, parked in netpoll, ...;
//  - a goroutine parked on channels (`chan send`/`chan receive`/`select`) or on a sync primitive
//    (named on g.waiting from Go 1.26; before, found in the semaphore table or a Cond's notify
//    list: heap/sema.h) becomes a root once an object it waits on is marked (or lies outside the
//    heap);
//    parked on a nil channel or `select {}`, never;
//  - the goroutines left are leaked: nothing that can run can ever wake them.
// The runtime hides the sudogs' channel and primitive pointers during its leak mark; here every g
// and sudog is marked but never scanned, which cuts the same edges (a channel's wait queue -> its
// waiters' sudogs -> their goroutines) without writing to the target.
//
// Heap objects are scanned conservatively (every aligned word that points into an allocated
// object), globals precisely, and the stacks of goroutines stopped in g.sched precisely by their
// frames' stack maps (heap/stack_scan.h: a dead slot keeps nothing alive), else conservatively.
// Conservative scanning can only keep more alive: a leak may be missed, never invented. The target
// runs on while it is read: verdicts are per mark, and heap/leak_tracker.h keeps only those two
// marks agree on.
//
// Everything read is input from a process that may have corrupted its own runtime: sizes and
// counts are checked, and what one mark may read and hold is capped (MarkLimits); past a cap the
// mark fails with ResourceExhausted and concludes nothing.
#ifndef CTXAGENT_AGENT_HEAP_HEAP_MARK_H_
#define CTXAGENT_AGENT_HEAP_HEAP_MARK_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/heap/context_facts.h"
#include "agent/heap/heap_facts.h"
#include "agent/lineage/goroutine_state.h"

namespace ctxagent::heap {

// What one mark may read from the target and hold in the agent.
struct MarkLimits {
  // The goroutines' states, span table, bitmaps, work lists.
  uint64_t max_memory = uint64_t{256} << 20;
  uint64_t max_read = uint64_t{16} << 30;  // bytes read from the target
  uint64_t max_spans = uint64_t{8} << 20;  // allspans entries
};

struct MarkResult {
  // Indexes into the goroutines given to Mark, in order: parked where nothing that can run can
  // reach what they wait on.
  std::vector<size_t> leaked;
  // Per address of Mark's `contexts`: its ContextFact bits (a cancel func is one of
  // HeapFacts::cancel_funcs holding the context's address).
  std::vector<uint8_t> contexts;
  // (goid, index in Mark's `contexts`): the contexts a goroutine that can run holds from the live
  // slots of its stack, directly or through small objects (stacks scanned precisely only:
  // heap/context_facts.h), sorted.
  std::vector<std::pair<uint64_t, uint32_t>> holds;
  // What the mark saw and did.
  uint64_t spans = 0;           // in-use heap spans
  uint64_t heap_bytes = 0;      // their size
  uint64_t objects_marked = 0;  // heap objects found reachable
  uint64_t bytes_read = 0;      // from the target, globals, stacks and objects
  uint64_t unreadable = 0;      // regions that could not be read (skipped)
  uint64_t roots = 0;           // goroutines whose stacks were scanned
  uint64_t candidates = 0;      // goroutines parked on channels or sync primitives
  uint64_t memory = 0;          // the agent's peak bytes held for the mark
  double cpu_seconds = 0;       // the agent's CPU for it (set by its caller)
};

// Marks the target's heap. `goroutines` are every goroutine as GoroutineReader::ReadEvery read
// them (a torn one, known = false, is scanned as a root). FailedPrecondition when the release's
// heap layout is not tabled; DataLoss when the runtime's structures make no sense;
// ResourceExhausted past a limit. `contexts` (sorted addresses of contexts the caller tracks) are
// the contexts whose facts the result gives.
// `without_cancel`: whether a word is WithoutCancel's itab (Decoder::IsWithoutCancelItab), so that
// what a goroutine holds does not cross that link.
absl::StatusOr<MarkResult> Mark(
    RemoteMemory& memory, const HeapFacts& facts, const std::vector<GoroutineState>& goroutines,
    const MarkLimits& limits, absl::Span<const uint64_t> contexts = {},
    ContextFacts::WithoutCancelItab without_cancel = [](uint64_t) { return false; });

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_HEAP_MARK_H_
