#include "agent/heap/unwind.h"

#include <cstring>

#include "symbols/go_status.h"

namespace ctxagent::heap {
namespace {

// The part of a stack read to unwind it: deep recursion is cut off there.
constexpr uint64_t kMaxUnwindBytes = 256 << 10;

}  // namespace

std::vector<uint64_t> Unwind(RemoteMemory& memory, const GoroutineState& g, size_t max_frames) {
  std::vector<uint64_t> pcs;
  if (!g.known || g.status == symbols::kGoRunning || g.sched_pc == 0 || g.sched_sp < g.stack_lo ||
      g.sched_sp >= g.stack_hi) {
    return pcs;
  }
  const uint64_t len = std::min(g.stack_hi - g.sched_sp, kMaxUnwindBytes);
  std::vector<uint8_t> stack(len);
  std::vector<Process::ReadRequest> r = {{g.sched_sp, stack.data(), len}};
  memory.ReadMany(r);
  if (!r[0].ok) return pcs;
  pcs.push_back(g.sched_pc);
  uint64_t fp = g.sched_bp;
  while (pcs.size() < max_frames && fp >= g.sched_sp && fp + 16 <= g.sched_sp + len &&
         fp % 8 == 0) {
    uint64_t frame[2];  // the caller's frame pointer, the return address
    memcpy(frame, &stack[fp - g.sched_sp], 16);
    if (frame[1] == 0) break;
    pcs.push_back(frame[1]);
    if (frame[0] <= fp) break;
    fp = frame[0];
  }
  return pcs;
}

}  // namespace ctxagent::heap
