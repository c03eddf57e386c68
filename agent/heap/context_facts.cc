#include "agent/heap/context_facts.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "symbols/status_macros.h"

namespace ctxagent::heap {

absl::Status ContextFacts::FollowHolds(ObjectAt object_at, Read read, Hold hold) {
  struct Visit {
    uint64_t goid, base, size;
    bool operator<(const Visit& o) const { return goid != o.goid ? goid < o.goid : base < o.base; }
    bool operator==(const Visit& o) const { return goid == o.goid && base == o.base; }
  };
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> visited;  // (goid, base): cycles end
  std::vector<Visit> visits;
  std::vector<uint8_t> buffer;
  std::vector<Process::ReadRequest> reads;
  for (int depth = 0; depth < kHoldDepth && !pointers_.empty(); ++depth) {
    // This depth's visits, reads and their index, the next depth's pointers, the visited set.
    const size_t n = pointers_.size();
    RETURN_IF_ERROR(hold(n * (sizeof(Visit) + 64) +
                         std::min(n, kMaxHoldReads) * (kMaxHoldObject + 64) +
                         kMaxHoldPointers * sizeof(Pointer) + visited.size() * 24));
    visits.clear();
    for (const Pointer& p : pointers_) {
      if (p.prev != 0 && without_cancel_(p.prev)) continue;
      uint64_t base = 0;
      const uint64_t size = object_at(p.word, &base);
      if (size == 0 || size > kMaxHoldObject) continue;
      visits.push_back({p.goid, base, size});
    }
    pointers_.clear();
    std::sort(visits.begin(), visits.end());
    visits.erase(std::unique(visits.begin(), visits.end()), visits.end());
    // Each object read once however many goroutines reach it; past a goroutine's share or the
    // depth's reads, its holds are incomplete (a hold missed hides an ignored cancellation).
    absl::flat_hash_map<uint64_t, size_t> offset;  // base -> where it is in buffer
    reads.clear();
    size_t kept = 0, per_goroutine = 0;
    for (size_t i = 0; i < visits.size(); ++i) {
      const Visit& v = visits[i];
      per_goroutine = i > 0 && visits[i - 1].goid == v.goid ? per_goroutine + 1 : 0;
      if (per_goroutine >= kMaxObjectsPerGoroutine || !visited.insert({v.goid, v.base}).second) {
        continue;
      }
      auto [it, added] = offset.try_emplace(v.base, reads.size() * kMaxHoldObject);
      if (added) {
        if (reads.size() == kMaxHoldReads) {
          offset.erase(it);
          continue;
        }
        reads.push_back({v.base, nullptr, v.size});
      }
      visits[kept++] = v;
    }
    visits.resize(kept);
    buffer.resize(reads.size() * kMaxHoldObject);
    for (size_t i = 0; i < reads.size(); ++i) reads[i].out = &buffer[i * kMaxHoldObject];
    RETURN_IF_ERROR(read(reads));
    for (const Visit& v : visits) {
      const size_t at = offset.at(v.base);
      if (!reads[at / kMaxHoldObject].ok) continue;
      uint64_t prev = 0;
      for (uint64_t off = 0; off + 8 <= v.size; off += 8) {
        uint64_t word;
        memcpy(&word, &buffer[at + off], 8);
        NoteWord(v.goid, word, prev, depth + 1 < kHoldDepth);
        prev = word;
      }
    }
  }
  pointers_.clear();
  return absl::OkStatus();
}

}  // namespace ctxagent::heap
