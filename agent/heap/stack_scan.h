// Which words of a goroutine's stack hold live pointers, read the way the Go runtime's own stack
// scan reads them (runtime/mgcmark.go scanstack, scanframeworker; stkframe.go getStackMap): frames
// unwound from g.sched by their SP deltas (pcsp), and in each frame only the words its locals and
// args stack maps (pclntab funcdata, kept by stripped binaries) say are live pointers at the call
// it is stopped in. A dead slot holding a stale pointer then keeps nothing alive.
//
// Stack objects (address-taken locals) are scanned whole once a scanned word points into them.
// Where a frame's maps are not known, its words are all scanned (conservative can only keep more
// alive: a leak missed, never invented): stack objects not decoded (Go 1.16-1.17) or a map the
// frame needs but lacks; a frame entered by a
// signal (asyncPreempt, debugCallV2, sigpanic) and the frame it interrupted; and from a frame that
// cannot be unwound (unknown PC, SP delta leaving the stack, SPWRITE) to the stack's top.
#ifndef CTXAGENT_AGENT_HEAP_STACK_SCAN_H_
#define CTXAGENT_AGENT_HEAP_STACK_SCAN_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/lineage/goroutine_state.h"
#include "symbols/pclntab.h"

namespace ctxagent::heap {

// The frame facts of the function at a PC of the target (load bias applied by the lookup):
// symbols::Pclntab::FrameMapsAt in the agent, a fake in tests.
using FrameLookup = std::function<absl::StatusOr<symbols::FrameMaps>(uint64_t pc)>;

// Whether the runtime would unwind `g` from g.sched: parked or runnable (not running, nor in a
// system call), with a saved SP inside its stack.
bool UnwindsFromSched(const GoroutineState& g);

// One bit per word of a stack. `live`: where a live pointer may be, what the mark scans. `known`:
// the words the frames' maps say are live pointers, and a signal frame's spilled registers; not
// the frames scanned whole for want of maps (Go 1.16-1.17's stack objects, a missing map, a frame
// that cannot be unwound), whose dead slots may hold stale pointers: what a goroutine can be said
// to hold (ContextFacts::NoteStack; on go1.17 a dead slot of esbuild's accept loop "held" a
// connection's cancelled context).
struct StackMasks {
  std::vector<uint8_t> live;
  std::vector<uint8_t> known;
};

// The masks of `stack` (`len` bytes read from g.sched.sp `sp` up to the stack's top); `pc` is
// g.sched.pc.
StackMasks StackPointerMasks(const uint8_t* stack, uint64_t len, uint64_t sp, uint64_t pc,
                             const FrameLookup& lookup);

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_STACK_SCAN_H_
