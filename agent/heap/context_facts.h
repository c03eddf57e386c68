// What a heap mark reads about the contexts the lineage tracks (ContextFact bits): whether each is
// reached, and whether a cancel func of it is. A cancel func is a funcval {code, context}: two
// consecutive words wherever the mark reads them, the code one of HeapFacts::cancel_funcs. And
// which goroutines hold which contexts: a live pointer slot of a precisely scanned stack holding a
// context's address (a value the goroutine will use again; one held through a struct, a closure or
// a WithValue layer is not seen).
#ifndef CTXAGENT_AGENT_HEAP_CONTEXT_FACTS_H_
#define CTXAGENT_AGENT_HEAP_CONTEXT_FACTS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "agent/lineage/goroutine_state.h"

namespace ctxagent::heap {

class ContextFacts {
 public:
  // `cancel_funcs` and `contexts`: sorted; both must outlive this.
  ContextFacts(const std::vector<uint64_t>& cancel_funcs, absl::Span<const uint64_t> contexts)
      : cancel_funcs_(cancel_funcs), contexts_(contexts), facts_(contexts.size()) {
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
  // word).
  void NoteStack(uint64_t goid, const uint8_t* data, uint64_t len,
                 const std::vector<uint8_t>& mask) {
    for (uint64_t w = 0; w < len / 8 && w / 8 < mask.size(); ++w) {
      if (!((mask[w / 8] >> (w % 8)) & 1)) continue;
      uint64_t word;
      memcpy(&word, data + w * 8, 8);
      auto it = std::lower_bound(contexts_.begin(), contexts_.end(), word);
      if (it == contexts_.end() || *it != word || holds_.size() >= kMaxHolds) continue;
      holds_.emplace_back(goid, static_cast<uint32_t>(it - contexts_.begin()));
    }
  }
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

 private:
  void NoteInRange(uint64_t fn, uint64_t ctx) {
    if (!std::binary_search(cancel_funcs_.begin(), cancel_funcs_.end(), fn)) return;
    auto it = std::lower_bound(contexts_.begin(), contexts_.end(), ctx);
    if (it != contexts_.end() && *it == ctx) facts_[it - contexts_.begin()] |= kCancelHeld;
  }

  const std::vector<uint64_t>& cancel_funcs_;
  absl::Span<const uint64_t> contexts_;
  std::vector<uint8_t> facts_;
  std::vector<std::pair<uint64_t, uint32_t>> holds_;
  uint64_t lo_ = UINT64_MAX, hi_ = 0;
};

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_CONTEXT_FACTS_H_
