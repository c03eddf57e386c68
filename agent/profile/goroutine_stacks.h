// Every goroutine's stack, read from a running Go process without stopping it: the states from
// runtime.allgs, each parked goroutine unwound from its g.sched, then every g read again. A
// goroutine whose g changed between the two reads (it ran, exited or was reused) is counted and
// left out: its stack may be torn, and a profile never guesses. So is a stack whose frame-pointer
// chain does not reach runtime.goexit (before Go 1.21 a goroutine in a syscall keeps no frame
// pointer in g.sched).
#ifndef CTXAGENT_AGENT_PROFILE_GOROUTINE_STACKS_H_
#define CTXAGENT_AGENT_PROFILE_GOROUTINE_STACKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/heap/heap_mark.h"
#include "agent/lineage/goroutine_state.h"
#include "agent/profile/stack_symbolizer.h"
#include "agent/trace/goroutines.h"

namespace ctxagent::profile {

// The runtime's traceback prints at most 100 frames of a goroutine.
inline constexpr size_t kMaxFrames = 100;

struct GoroutineStack {
  GoroutineState state;
  // Return addresses in the target's address space, innermost first (g.sched.pc first); empty
  // for a goroutine running on a CPU, whose stack cannot be read without stopping it.
  std::vector<uint64_t> pcs;
  // Leak profile only: why it is listed (a finding kind) and the site that finding names.
  std::string kind;
  std::string site;
  // Where the context it is parked on (else one its function captured) was created, when a
  // session's lineage knows (LabelContexts).
  std::string context_site;
};

struct StackSnapshot {
  absl::Time taken;
  std::vector<GoroutineStack> goroutines;  // in goid order; system goroutines left out
  uint64_t changed = 0;                    // changed under the read: left out
  uint64_t incomplete = 0;                 // stack not unwound to its start: left out
  uint64_t running = 0;                    // listed without a stack
};

// One read of every user goroutine (the runtime's dump hides system goroutines too); the
// reader's error when the goroutine list makes no sense.
absl::StatusOr<StackSnapshot> ReadStacks(GoroutineReader& reader, heap::RemoteMemory& memory,
                                         StackSymbolizer& symbolizer, absl::Time now);

// "<1m", "1m-10m", "10m-1h", "1h-1d", ">1d": the wait label of a goroutine parked since `since`
// ("" when the runtime has not recorded since when).
std::string WaitBucket(absl::Time since, absl::Time now);

}  // namespace ctxagent::profile

#endif  // CTXAGENT_AGENT_PROFILE_GOROUTINE_STACKS_H_
