// What the heap mark needs to know about a target, apart from the mark itself: how to read its
// memory, where its heap, globals and stack maps are, and how each parked goroutine takes part.
#ifndef CTXAGENT_AGENT_HEAP_HEAP_FACTS_H_
#define CTXAGENT_AGENT_HEAP_HEAP_FACTS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "agent/heap/stack_scan.h"
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
  // Where small objects' pointer bits are (symbols::GoRuntimeFacts::heap_bits_in_span): objects
  // with them are scanned precisely, the rest conservatively.
  enum class HeapBits { kNone, kSpanEnd, kBeforeInlineMarks };
  HeapBits heap_bits = HeapBits::kNone;
  bool gc_mask_on_demand = false;  // GoRuntimeFacts::gc_mask_on_demand
  FrameLookup frames;              // stack maps by PC (empty: every stack scanned conservatively)
  // Entry PCs of the closures package context returns as a context's own cancel func (and
  // AfterFunc's stop), sorted (symbols/context_api.h).
  std::vector<uint64_t> cancel_funcs;
};

// The heap bits of a release built with `settings` (its build info: GOEXPERIMENT may turn the
// allocation headers off in 1.22, the Green Tea GC on in 1.25 or off from 1.26).
HeapFacts::HeapBits HeapBitsLayout(
    const symbols::GoVersion& version,
    const std::vector<std::pair<std::string, std::string>>& settings);

// Where `bin`, loaded at `bias`, keeps its heap and globals (zero where not located), and its
// stack maps; `bin` must outlive the facts.
HeapFacts HeapFactsFor(const symbols::GoBinary& bin, uint64_t bias);

// How a parked goroutine takes part in the mark, from its wait reason (exposed for tests).
enum class WaitClass {
  kRoot,     // can run, or waits on something the mark does not model (sleep, IO, GC, ...)
  kChannel,  // chan send / chan receive / select: wakes when a channel it waits on is reachable
  kSync,     // a sync primitive (sync_object known): wakes when the primitive is reachable
  kForever,  // a nil channel or `select {}`: nothing can wake it
};
WaitClass ClassifyWait(const symbols::GoVersion& version, const GoroutineState& g);

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_HEAP_FACTS_H_
