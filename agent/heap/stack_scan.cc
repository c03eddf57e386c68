#include "agent/heap/stack_scan.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "symbols/go_status.h"

namespace ctxagent::heap {
namespace {

class MaskBuilder {
 public:
  explicit MaskBuilder(uint64_t len) : len_(len), known_((len / 8 + 7) / 8, 0), guessed_(known_) {}

  // Every word of [from, to), offsets from the stack's start; `known`: the frame's words are real
  // values (a signal frame's spilled registers), not a guess standing in for maps.
  void All(uint64_t from, uint64_t to, bool known) {
    for (uint64_t off = from & ~uint64_t{7}; off < std::min(to, len_); off += 8) {
      Set(known ? known_ : guessed_, off / 8);
    }
  }
  // The words `map` marks, from offset `base`; false when they do not fit in [floor, len).
  bool Bits(uint64_t base, uint64_t floor, const symbols::StackBitmap& map) {
    const uint64_t n = static_cast<uint64_t>(map.nbit);
    if (base < floor || base > len_ || n > (len_ - base) / 8 || map.bits.size() * 8 < n) {
      return false;
    }
    for (uint64_t i = 0; i < n; ++i) {
      if ((map.bits[i / 8] >> (i % 8)) & 1) Set(known_, base / 8 + i);
    }
    return true;
  }
  // A stack object at [from, to): scanned once a scanned word points into it.
  void Object(uint64_t from, uint64_t to) {
    if (from < std::min(to, len_)) objects_.push_back({from, std::min(to, len_)});
  }
  StackMasks Take(const uint8_t* stack, uint64_t sp) {
    std::sort(objects_.begin(), objects_.end());
    std::vector<uint8_t> live = known_;
    for (size_t i = 0; i < live.size(); ++i) live[i] |= guessed_[i];
    return {Close(stack, sp, std::move(live)), Close(stack, sp, std::move(known_))};
  }

 private:
  static bool IsSet(const std::vector<uint8_t>& mask, uint64_t word) {
    return (mask[word / 8] >> (word % 8)) & 1;
  }
  static void Set(std::vector<uint8_t>& mask, uint64_t word) {
    mask[word / 8] |= uint8_t{1} << (word % 8);
  }
  // As the runtime's scanstack: `mask` and the objects pointers from its words (`sp` the stack's
  // first address) reach, and the objects pointers from those reach.
  std::vector<uint8_t> Close(const uint8_t* stack, uint64_t sp, std::vector<uint8_t> mask) const {
    std::vector<bool> scanned(objects_.size(), false);
    std::vector<uint64_t> work;
    for (uint64_t w = 0; w < len_ / 8; ++w) {
      if (IsSet(mask, w)) work.push_back(w);
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
        if (!IsSet(mask, w)) work.push_back(w);
        Set(mask, w);
      }
    }
    return mask;
  }
  uint64_t len_;
  std::vector<uint8_t> known_, guessed_;
  std::vector<std::pair<uint64_t, uint64_t>> objects_;  // [from, to) offsets
};

}  // namespace

bool UnwindsFromSched(const GoroutineState& g) {
  const bool stopped = g.status == symbols::kGoWaiting || g.status == symbols::kGoLeaked ||
                       g.status == symbols::kGoRunnable;
  return g.known && stopped && g.sched_pc != 0 && g.sched_sp % 8 == 0 && g.sched_sp >= g.stack_lo &&
         g.sched_sp < g.stack_hi;
}

StackMasks StackPointerMasks(const uint8_t* stack, uint64_t len, uint64_t sp, uint64_t pc,
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
    const bool spilled = interrupted || m->injected;
    bool whole = spilled || m->stack_objects_unknown;
    if (!whole && varp > frame) {
      const uint64_t size = static_cast<uint64_t>(m->locals.nbit) * 8;
      whole =
          !m->locals.present || size > varp - frame || !mask.Bits(varp - size, frame, m->locals);
    }
    if (!whole && args > 0) whole = !m->arg_words.present || !mask.Bits(fp, fp, m->arg_words);
    if (whole) mask.All(frame, fp + args, spilled);
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
  mask.All(frame, len, false);
  return mask.Take(stack, sp);
}

}  // namespace ctxagent::heap
