// What a goroutine is doing, as the target's runtime records it in its g: plain data that
// agent/trace/goroutines.h reads from memory and the lineage's findings and views use.
#ifndef CTXAGENT_AGENT_LINEAGE_GOROUTINE_STATE_H_
#define CTXAGENT_AGENT_LINEAGE_GOROUTINE_STATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/lineage/events.h"

namespace ctxagent {

// What a heap mark (agent/heap/heap_mark.h) read about a tracked context, as bits.
enum ContextFact : uint8_t {
  kContextReached = 1,  // an allocated heap object that something able to run reaches
  kCancelHeld = 2,      // a cancel func of it is reached, or lies on a stack
};

struct GoroutineState {
  uint64_t goid = 0;  // the runtime's
  uint64_t g = 0;     // its runtime.g
  // False when the reads raced with the program (the g was reused for another goid, died, or its
  // sudog list changed under the read): nothing below may be used.
  bool known = false;
  bool waiting = false;  // parked (_Gwaiting), with `state` its wait reason
  bool system = false;   // a runtime goroutine the traceback hides (GC workers, sweeper, ...)
  // As the runtime's traceback (pprof goroutine?debug=2) prints it between the brackets:
  // "chan receive", "select", "sleep", "IO wait", "sync.Mutex.Lock", ... while waiting, else
  // "running", "runnable", "syscall".
  std::string state;
  // When it started waiting, where the runtime records it (a GC saw it blocked); else InfinitePast.
  absl::Time waiting_since = absl::InfinitePast();
  uint64_t parent_goid = 0;    // Go 1.21+ (0 before)
  SiteId go_site = kNoSite;    // the `go` statement (gopc)
  uint64_t gopc = 0;           // its return address, as the runtime's "created by" line prints it
  std::string start_function;  // startpc
  // Channels (runtime.hchan addresses) it is parked on: one for a channel operation, one per case
  // for a select. Empty when not parked on a channel.
  std::vector<uint64_t> channels;
  bool in_select = false;
  // What the mark (agent/heap) and the unwinder need: the raw status (without the scan bit) and
  // wait reason, the stack's bounds, where the goroutine resumes (g.sched), its sudogs on
  // g.waiting and, parked on a sync primitive (Go 1.26+), the primitive (the first sudog's elem).
  uint32_t status = 0;
  uint8_t wait_reason = 0;
  uint64_t stack_lo = 0, stack_hi = 0;
  uint64_t sched_sp = 0, sched_pc = 0, sched_bp = 0, sched_ctxt = 0;
  std::vector<uint64_t> sudogs;
  uint64_t sync_object = 0;
};

// The agent's memory `s` holds: what a target's goroutines cost is capped (a corrupt goroutine list
// must not grow the agent), in GoroutineReader and in the heap mark.
inline uint64_t HeldBytes(const GoroutineState& s) {
  auto heap = [](const std::string& str) { return str.capacity() > 15 ? str.capacity() + 1 : 0; };
  return sizeof(GoroutineState) + heap(s.state) + heap(s.start_function) +
         8 * (s.channels.capacity() + s.sudogs.capacity());
}

// Reads goroutine state from the target (agent/trace/goroutines.h; tests fake it).
class GoroutineStateReader {
 public:
  struct Query {
    uint64_t goid;
    uint64_t g;
  };
  virtual ~GoroutineStateReader() = default;
  // One state per query, in order; `known` is false where the g no longer holds that goroutine.
  virtual std::vector<GoroutineState> Read(const std::vector<Query>& queries) = 0;
  // Every live goroutine of the process (runtime.allgs), system goroutines included, in goid order
  // (the lineage sorts what is not).
  virtual std::vector<GoroutineState> ReadAll() = 0;
  struct ContextQuery {
    uint64_t addr;
    ContextKind kind;
  };
  // The Done channel of each context (the *hchan its done atomic.Value holds), 0 while Done was
  // never called or unreadable.
  virtual std::vector<uint64_t> DoneChannels(const std::vector<ContextQuery>& queries) = 0;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_LINEAGE_GOROUTINE_STATE_H_
