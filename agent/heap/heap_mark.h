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
// Heap objects and stacks are scanned conservatively (every aligned word that points into an
// allocated object), globals precisely. Conservative scanning can only keep more alive: a leak may
// be missed, never invented. The target runs on while it is read: verdicts are per mark, and
// heap/leak_tracker.h keeps only those two marks agree on.
//
// Everything read is input from a process that may have corrupted its own runtime: sizes and
// counts are checked, and what one mark may read and hold is capped (MarkLimits); past a cap the
// mark fails with ResourceExhausted and concludes nothing.
#ifndef CTXAGENT_AGENT_HEAP_HEAP_MARK_H_
#define CTXAGENT_AGENT_HEAP_HEAP_MARK_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/lineage/goroutine_state.h"
#include "agent/trace/process.h"
#include "symbols/buildinfo.h"
#include "symbols/go_binary.h"
#include "symbols/go_offsets.h"

namespace ctxagent::heap {

// The target's memory (Process in the agent; a fake in tests).
class RemoteMemory {
 public:
  virtual ~RemoteMemory() = default;
  // Reads every region; one that cannot be read whole fails alone (ok = false).
  virtual void ReadMany(std::vector<Process::ReadRequest>& requests) = 0;
};

class ProcessMemory : public RemoteMemory {
 public:
  explicit ProcessMemory(const Process& process) : process_(process) {}
  void ReadMany(std::vector<Process::ReadRequest>& requests) override {
    process_.ReadMany(requests);
  }

 private:
  const Process& process_;
};

// Where the heap and the globals are, in the target's address space (load bias applied).
struct HeapFacts {
  uint64_t mheap = 0;       // &runtime.mheap_
  uint64_t moduledata = 0;  // &runtime.firstmoduledata
  symbols::GoOffsets offsets;
  bool span_index_u16 = false;   // GoRuntimeFacts::mspan_index_u16
  bool sync_waits_on_g = false;  // GoRuntimeFacts::sync_waits_on_g (else heap/sema.h)
  uint64_t semtable = 0;         // &runtime.semtable (0: not found)
  symbols::GoVersion version;    // its wait reasons
};

// Where `bin`, loaded at `bias`, keeps its heap and globals (zero where not located).
HeapFacts HeapFactsFor(const symbols::GoBinary& bin, uint64_t bias);

// What one mark may read from the target and hold in the agent.
struct MarkLimits {
  uint64_t max_memory = uint64_t{256} << 20;  // span table, bitmaps, work lists
  uint64_t max_read = uint64_t{16} << 30;     // bytes read from the target
  uint64_t max_spans = uint64_t{8} << 20;     // allspans entries
};

struct MarkResult {
  // Indexes into the goroutines given to Mark, in order: parked where nothing that can run can
  // reach what they wait on.
  std::vector<size_t> leaked;
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
// ResourceExhausted past a limit.
absl::StatusOr<MarkResult> Mark(RemoteMemory& memory, const HeapFacts& facts,
                                const std::vector<GoroutineState>& goroutines,
                                const MarkLimits& limits);

// How a parked goroutine takes part in the mark, from its wait reason (exposed for tests).
enum class WaitClass {
  kRoot,     // can run, or waits on something the mark does not model (sleep, IO, GC, ...)
  kChannel,  // chan send / chan receive / select: wakes when a channel it waits on is reachable
  kSync,     // a sync primitive (sync_object known): wakes when the primitive is reachable
  kForever,  // a nil channel or `select {}`: nothing can wake it
};
WaitClass ClassifyWait(const symbols::GoVersion& version, const GoroutineState& g);

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_HEAP_MARK_H_
