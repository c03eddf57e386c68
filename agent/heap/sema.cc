#include "agent/heap/sema.h"

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "symbols/go_status.h"

namespace ctxagent::heap {
namespace {

// runtime.semTable: semTabSize roots, each padded to a cache line (every release, amd64).
constexpr uint64_t kSemTabSize = 251;
constexpr uint64_t kRootStride = 64;
// More waiting sudogs than goroutines a reader accepts: a corrupt or cyclic treap.
constexpr size_t kMaxSudogs = 1 << 20;

// How far above a Cond waiter's saved SP its sudog is looked for: the frames of gopark,
// goparkunlock and notifyListWait take under 0x200 bytes on every release.
constexpr uint64_t kCondFrameBytes = 1024;
// Waiters whose frames are read at once: bounds the buffers whatever the goroutine count.
constexpr size_t kCondBatch = 1024;

uint64_t Word(const uint8_t* p, int32_t off) {
  uint64_t v;
  memcpy(&v, p + off, 8);
  return v;
}

}  // namespace

absl::Status AddSemaphoreWaits(RemoteMemory& memory, uint64_t semtable, const symbols::GoOffsets& o,
                               const symbols::GoVersion& version,
                               std::vector<GoroutineState>& goroutines) {
  const int32_t elem_word = o.SudogElemWord();
  if (semtable == 0 || o.semaroot_treap < 0 || elem_word < 0 || o.sudog_g < 0 || o.sudog_next < 0 ||
      o.sudog_prev < 0 || o.sudog_waitlink < 0) {
    return absl::OkStatus();  // nothing to add: such goroutines stay roots
  }
  // Goroutines parked on a semaphore, by g.
  absl::flat_hash_map<uint64_t, size_t> parked;
  for (size_t i = 0; i < goroutines.size(); ++i) {
    const GoroutineState& g = goroutines[i];
    if (!g.known || g.status != symbols::kGoWaiting || g.sync_object != 0) continue;
    const std::string reason = symbols::WaitReasonString(version, g.wait_reason);
    if (reason == "semacquire" || absl::string_view(reason).substr(0, 5) == "sync.") {
      parked.emplace(g.g, i);
    }
  }
  if (parked.empty()) return absl::OkStatus();
  std::vector<uint8_t> table(kSemTabSize * kRootStride);
  std::vector<Process::ReadRequest> r = {{semtable, table.data(), table.size()}};
  memory.ReadMany(r);
  if (!r[0].ok) return absl::DataLossError("runtime.semtable is unreadable");
  std::vector<uint64_t> next;
  for (uint64_t k = 0; k < kSemTabSize; ++k) {
    if (uint64_t t = Word(&table[k * kRootStride], o.semaroot_treap); t != 0) next.push_back(t);
  }
  const size_t len = static_cast<size_t>(
      std::max({o.sudog_g, o.sudog_next, o.sudog_prev, o.sudog_waitlink, elem_word}) + 8);
  absl::flat_hash_set<uint64_t> seen;
  // One round per depth: every sudog of the level, then its treap children and waitlink.
  while (!next.empty()) {
    std::vector<uint8_t> buf(next.size() * len);
    r.clear();
    for (size_t k = 0; k < next.size(); ++k) r.push_back({next[k], &buf[k * len], len});
    memory.ReadMany(r);
    std::vector<uint64_t> level;
    for (size_t k = 0; k < next.size(); ++k) {
      if (!r[k].ok || !seen.insert(next[k]).second) continue;
      if (seen.size() > kMaxSudogs) {
        return absl::DataLossError(
            absl::StrFormat("runtime.semtable lists more than %d waiters", kMaxSudogs));
      }
      const uint8_t* p = &buf[k * len];
      if (auto it = parked.find(Word(p, o.sudog_g)); it != parked.end()) {
        GoroutineState& g = goroutines[it->second];
        g.sync_object = Word(p, elem_word);
        g.sudogs.push_back(next[k]);
        parked.erase(it);
      }
      for (int32_t link : {o.sudog_prev, o.sudog_next, o.sudog_waitlink}) {
        if (uint64_t a = Word(p, link); a != 0 && !seen.contains(a)) level.push_back(a);
      }
    }
    next.swap(level);
  }
  return absl::OkStatus();
}

void AddCondWaits(RemoteMemory& memory, const symbols::GoOffsets& o,
                  const symbols::GoVersion& version, std::vector<GoroutineState>& goroutines) {
  if (o.sudog_g < 0) return;
  std::vector<size_t> waiters;
  for (size_t i = 0; i < goroutines.size(); ++i) {
    const GoroutineState& g = goroutines[i];
    if (g.known && g.status == symbols::kGoWaiting && g.sync_object == 0 &&
        g.sched_sp >= g.stack_lo && g.sched_sp < g.stack_hi &&
        symbols::WaitReasonString(version, g.wait_reason) == "sync.Cond.Wait") {
      waiters.push_back(i);
    }
  }
  std::vector<uint8_t> frames, heads;
  std::vector<Process::ReadRequest> r;
  std::vector<std::pair<size_t, uint64_t>> candidates;  // (waiter, a word of its frames)
  for (size_t first = 0; first < waiters.size(); first += kCondBatch) {
    const size_t n = std::min(kCondBatch, waiters.size() - first);
    frames.assign(n * kCondFrameBytes, 0);
    r.clear();
    for (size_t k = 0; k < n; ++k) {
      const GoroutineState& g = goroutines[waiters[first + k]];
      r.push_back({g.sched_sp, &frames[k * kCondFrameBytes],
                   std::min(kCondFrameBytes, g.stack_hi - g.sched_sp)});
    }
    memory.ReadMany(r);
    // Words that may point to the sudog: outside the waiter's own stack.
    candidates.clear();
    for (size_t k = 0; k < n; ++k) {
      const GoroutineState& g = goroutines[waiters[first + k]];
      for (uint64_t off = 0; r[k].ok && off + 8 <= r[k].len; off += 8) {
        const uint64_t v = Word(&frames[k * kCondFrameBytes], static_cast<int32_t>(off));
        if (v != 0 && v % 8 == 0 && (v < g.stack_lo || v >= g.stack_hi)) {
          candidates.emplace_back(first + k, v);
        }
      }
    }
    // The first (innermost) candidate whose sudog.g is the waiter's own g is its sudog.
    heads.assign(candidates.size() * 8, 0);
    r.clear();
    for (size_t c = 0; c < candidates.size(); ++c) {
      r.push_back({candidates[c].second + o.sudog_g, &heads[c * 8], 8});
    }
    memory.ReadMany(r);
    for (size_t c = 0; c < candidates.size(); ++c) {
      GoroutineState& g = goroutines[waiters[candidates[c].first]];
      if (r[c].ok && g.sync_object == 0 && Word(&heads[c * 8], 0) == g.g) {
        g.sync_object = candidates[c].second;
      }
    }
  }
}

}  // namespace ctxagent::heap
