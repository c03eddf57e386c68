// What a heap mark reads about the contexts the lineage tracks (ContextFact bits): whether each is
// reached, and whether a cancel func of it is. A cancel func is a funcval {code, context}: two
// consecutive words wherever the mark reads them, the code one of HeapFacts::cancel_funcs. And
// which goroutines hold which contexts: from the live pointer slots of a precisely scanned stack,
// directly or through the small heap objects they point to (closures, structs, WithValue layers:
// FollowHolds), a value the goroutine will use again.
#ifndef CTXAGENT_AGENT_HEAP_CONTEXT_FACTS_H_
#define CTXAGENT_AGENT_HEAP_CONTEXT_FACTS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "agent/lineage/goroutine_state.h"
#include "agent/trace/process.h"

namespace ctxagent::heap {

class ContextFacts {
 public:
  // Whether a word is WithoutCancel's itab: a Context interface is {itab, data}, and what the data
  // word of such a pair points to is not held through it (cancellation does not cross that link).
  using WithoutCancelItab = absl::FunctionRef<bool(uint64_t word)>;
  // `cancel_funcs` and `contexts`: sorted; they and `without_cancel` must outlive this.
  ContextFacts(
      const std::vector<uint64_t>& cancel_funcs, absl::Span<const uint64_t> contexts,
      WithoutCancelItab without_cancel = [](uint64_t) { return false; })
      : cancel_funcs_(cancel_funcs),
        contexts_(contexts),
        facts_(contexts.size()),
        without_cancel_(without_cancel) {
    if (!cancel_funcs.empty()) {
      lo_ = cancel_funcs.front();
      hi_ = cancel_funcs.back();
    }
  }

  // Two consecutive words the mark read: a held cancel func if `fn` is one (a range check first:
  // called for every word read).
  void Note(uint64_t fn, uint64_t ctx) {
    if (fn >= lo_ && fn <= hi_) NoteInRange(fn, ctx);
  }
  // Goroutine `goid`'s stack, `len` bytes read at `data`, and its live pointer slots (a bit per
  // word): the contexts they hold, and the other pointers for FollowHolds.
  void NoteStack(uint64_t goid, const uint8_t* data, uint64_t len,
                 const std::vector<uint8_t>& mask) {
    for (uint64_t w = 0; w < len / 8 && w / 8 < mask.size(); ++w) {
      if (!((mask[w / 8] >> (w % 8)) & 1)) continue;
      uint64_t word, prev = 0;
      memcpy(&word, data + w * 8, 8);
      if (w > 0) memcpy(&prev, data + w * 8 - 8, 8);
      NoteWord(goid, word, prev, true);
    }
  }
  // The contexts held through the objects the stacks' pointers lead to, up to kHoldDepth objects
  // deep. `object_at(addr, &base)`: the size of the allocated object of a span with pointers that
  // `addr` points into (0: none, or not to be followed: a g or sudog); `read`: the mark's reads;
  // `hold`: before each depth, the bytes the walk holds through it (the mark's memory cap).
  using ObjectAt = absl::FunctionRef<uint64_t(uint64_t addr, uint64_t* base)>;
  using Read = absl::FunctionRef<absl::Status(std::vector<Process::ReadRequest>&)>;
  using Hold = absl::FunctionRef<absl::Status(uint64_t bytes)>;
  absl::Status FollowHolds(ObjectAt object_at, Read read, Hold hold);
  absl::Span<const uint64_t> contexts() const { return contexts_; }
  void SetReached(size_t i) { facts_[i] |= kContextReached; }
  // Per context, its bits.
  std::vector<uint8_t> TakeFacts() { return std::move(facts_); }
  // (goid, context index) pairs, sorted and unique.
  std::vector<std::pair<uint64_t, uint32_t>> TakeHolds() {
    std::sort(holds_.begin(), holds_.end());
    holds_.erase(std::unique(holds_.begin(), holds_.end()), holds_.end());
    return std::move(holds_);
  }
  // What one mark may note: 16 bytes each.
  static constexpr size_t kMaxHolds = size_t{1} << 20;
  // The walk: objects read along one path from a stack; larger objects (maps' buckets, arrays,
  // big structs) are not followed, a goroutine's holds are what it owns, not what a shared table
  // lists; per goroutine and depth, objects followed; pointers kept for the next depth; objects
  // read per depth.
  static constexpr int kHoldDepth = 4;
  static constexpr uint64_t kMaxHoldObject = 256;
  static constexpr size_t kMaxObjectsPerGoroutine = 16;
  static constexpr size_t kMaxHoldPointers = size_t{1} << 16;
  static constexpr size_t kMaxHoldReads = size_t{1} << 14;

 private:
  struct Pointer {
    uint64_t goid, word;
    uint64_t prev;  // the word before it: the itab when it is an interface's data word
  };
  // A word goroutine `goid` holds: a context, or (`follow`) a pointer to follow.
  void NoteWord(uint64_t goid, uint64_t word, uint64_t prev, bool follow) {
    auto it = std::lower_bound(contexts_.begin(), contexts_.end(), word);
    if (it != contexts_.end() && *it == word) {
      if (holds_.size() < kMaxHolds) {
        holds_.emplace_back(goid, static_cast<uint32_t>(it - contexts_.begin()));
      }
    } else if (follow && word != 0 && pointers_.size() < kMaxHoldPointers) {
      pointers_.push_back({goid, word, prev});
    }
  }
  void NoteInRange(uint64_t fn, uint64_t ctx) {
    if (!std::binary_search(cancel_funcs_.begin(), cancel_funcs_.end(), fn)) return;
    auto it = std::lower_bound(contexts_.begin(), contexts_.end(), ctx);
    if (it != contexts_.end() && *it == ctx) facts_[it - contexts_.begin()] |= kCancelHeld;
  }

  const std::vector<uint64_t>& cancel_funcs_;
  absl::Span<const uint64_t> contexts_;
  std::vector<uint8_t> facts_;
  std::vector<std::pair<uint64_t, uint32_t>> holds_;
  WithoutCancelItab without_cancel_;
  std::vector<Pointer> pointers_;  // for FollowHolds
  uint64_t lo_ = UINT64_MAX, hi_ = 0;
};

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_CONTEXT_FACTS_H_
