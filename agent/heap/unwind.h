// Where a parked goroutine is stuck: its stack's return addresses, read from outside without
// stopping it. Go on amd64 keeps frame pointers in every frame (1.7+), and a parked goroutine's
// g.sched holds the PC and frame pointer it resumes from (gopark's, saved by mcall).
#ifndef CTXAGENT_AGENT_HEAP_UNWIND_H_
#define CTXAGENT_AGENT_HEAP_UNWIND_H_

#include <cstdint>
#include <vector>

#include "agent/heap/heap_facts.h"
#include "agent/lineage/goroutine_state.h"

namespace ctxagent::heap {

// g.sched.pc, then each frame's return address up the frame-pointer chain, innermost first; each
// is a return address (symbolize `pc - 1`). Stops at the stack's top, a frame pointer that leaves
// the stack or does not grow, or `max_frames`. Empty for a goroutine that is running (its saved
// registers are stale) or whose stack cannot be read.
std::vector<uint64_t> Unwind(RemoteMemory& memory, const GoroutineState& g, size_t max_frames = 64);

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_UNWIND_H_
