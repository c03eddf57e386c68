#include "agent/heap/stack_scan.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "symbols/go_status.h"

namespace ctxagent::heap {
namespace {

class MaskBuilder {
 public:
  explicit MaskBuilder(uint64_t len) : len_(len), mask_((len / 8 + 7) / 8, 0) {}

  // Every word of [from, to), offsets from the stack's start.
  void All(uint64_t from, uint64_t to) {
    for (uint64_t off = from & ~uint64_t{7}; off < std::min(to, len_); off += 8) Set(off / 8);
  }
  // The words `map` marks, from offset `base`; false when they do not fit in [floor, len).
  bool Bits(uint64_t base, uint64_t floor, const symbols::StackBitmap& map) {
    const uint64_t n = static_cast<uint64_t>(map.nbit);
    if (base < floor || base > len_ || n > (len_ - base) / 8 || map.bits.size() * 8 < n) {
      return false;
    }
    for (uint64_t i = 0; i < n; ++i) {
      if ((map.bits[i / 8] >> (i % 8)) & 1) Set(base / 8 + i);
    }
    return true;
  }
  // A stack object at [from, to): scanned once a scanned word points into it.
  void Object(uint64_t from, uint64_t to) {
    if (from < std::min(to, len_)) objects_.push_back({from, std::min(to, len_)});
  }
  // As the runtime's scanstack: the objects pointers from scanned words (`sp` the stack's first
  // address) reach, and the objects pointers from those reach.
  std::vector<uint8_t> Take(const uint8_t* stack, uint64_t sp) {
    std::sort(objects_.begin(), objects_.end());
    std::vector<bool> scanned(objects_.size(), false);
    std::vector<uint64_t> work;
    for (uint64_t w = 0; w < len_ / 8; ++w) {
      if (IsSet(w)) work.push_back(w);
    }
    while (!work.empty()) {
      uint64_t v;
      memcpy(&v, stack + work.back() * 8, 8);
      work.pop_back();
      if (v < sp || v - sp >= len_) continue;
      auto it =
          std::upper_bound(objects_.begin(), objects_.end(), std::make_pair(v - sp, UINT64_MAX));
      if (it == objects_.begin() || v - sp >= (--it)->second) continue;
      const size_t k = it - objects_.begin();
      if (scanned[k]) continue;
      scanned[k] = true;
      for (uint64_t w = (it->first + 7) / 8; w < it->second / 8; ++w) {
        if (!IsSet(w)) work.push_back(w);
        Set(w);
      }
    }
    return std::move(mask_);
  }

 private:
  bool IsSet(uint64_t word) const { return (mask_[word / 8] >> (word % 8)) & 1; }
  void Set(uint64_t word) { mask_[word / 8] |= uint8_t{1} << (word % 8); }
  uint64_t len_;
  std::vector<uint8_t> mask_;
  std::vector<std::pair<uint64_t, uint64_t>> objects_;  // [from, to) offsets
};

}  // namespace

bool UnwindsFromSched(const GoroutineState& g) {
  const bool stopped = g.status == symbols::kGoWaiting || g.status == symbols::kGoLeaked ||
                       g.status == symbols::kGoRunnable;
  return g.known && stopped && g.sched_pc != 0 && g.sched_sp % 8 == 0 && g.sched_sp >= g.stack_lo &&
         g.sched_sp < g.stack_hi;
}

std::vector<uint8_t> StackPointerMask(const uint8_t* stack, uint64_t len, uint64_t sp, uint64_t pc,
                                      const FrameLookup& lookup) {
  MaskBuilder mask(len);
  uint64_t frame = 0;  // the frame's SP, as an offset from `sp`
  bool interrupted = false;
  // Each frame starts at least a word above the last: the walk ends within the stack.
  for (int depth = 0;; ++depth) {
    absl::StatusOr<symbols::FrameMaps> m = lookup(pc);
    // The frame's top (fp: above the return address), its locals' top (varp: below the saved
    // frame pointer, when it has a frame) and its arguments (argp), as traceback.go derives them.
    if (!m.ok() || m->args < 0 || m->sp_delta < 0 || (m->sp_write && depth > 0) ||
        static_cast<uint64_t>(m->sp_delta) + 8 > len - frame) {
      break;
    }
    const uint64_t fp = frame + m->sp_delta + 8;
    const uint64_t varp = fp - 8 > frame ? fp - 16 : fp - 8;
    const uint64_t args = static_cast<uint64_t>(m->args);
    bool whole = interrupted || m->injected || m->stack_objects_unknown;
    if (!whole && varp > frame) {
      const uint64_t size = static_cast<uint64_t>(m->locals.nbit) * 8;
      whole =
          !m->locals.present || size > varp - frame || !mask.Bits(varp - size, frame, m->locals);
    }
    if (!whole && args > 0) whole = !m->arg_words.present || !mask.Bits(fp, fp, m->arg_words);
    if (whole) mask.All(frame, fp + args);
    for (const symbols::StackObject& o : m->stack_objects) {
      // Below the frame's SP: not allocated yet (the runtime's check).
      const int64_t at = static_cast<int64_t>(o.off < 0 ? varp : fp) + o.off;
      if (at >= static_cast<int64_t>(frame)) mask.Object(at, at + o.size);
    }
    interrupted = m->injected;  // its caller stopped between two instructions, registers spilled
    if (m->top_frame) return mask.Take(stack, sp);
    uint64_t ret;
    memcpy(&ret, stack + fp - 8, 8);
    if (ret == 0) return mask.Take(stack, sp);
    pc = ret;
    frame = fp;
  }
  mask.All(frame, len);
  return mask.Take(stack, sp);
}

}  // namespace ctxagent::heap
