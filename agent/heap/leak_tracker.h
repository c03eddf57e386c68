// Which goroutines successive marks agree are leaked, and the goroutine_leak findings they make.
// The target runs on while a mark reads it, so one mark's verdict may rest on a torn read: a
// goroutine is proven leaked only when two marks at least `min_gap` apart both found it leaked
// and it stayed parked on the same wait in between (same g, wait reason and sudogs).
#ifndef CTXAGENT_AGENT_HEAP_LEAK_TRACKER_H_
#define CTXAGENT_AGENT_HEAP_LEAK_TRACKER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/heap/heap_mark.h"
#include "agent/lineage/goroutine_state.h"
#include "agent/lineage/lineage.h"
#include "agent/trace/decoder.h"

namespace ctxagent::heap {

struct LeakedGoroutine {
  GoroutineState state;         // as the latest mark read it
  absl::Time first_marked;      // the first mark that found it leaked
  absl::Time confirmed;         // the latest mark that found it leaked again
  SiteId blocked_at = kNoSite;  // the first frame of its stack outside the runtime and sync
  std::vector<uint64_t> stack;  // return addresses, innermost first (sched.pc first)
};

class LeakTracker {
 public:
  explicit LeakTracker(absl::Duration min_gap) : min_gap_(min_gap) {}

  // One mark's verdicts at `at`: `leaked` indexes `goroutines`. Returns the goroutines proven by
  // this mark that were not proven before it (the caller unwinds those).
  std::vector<LeakedGoroutine*> Update(absl::Time at, const std::vector<GoroutineState>& goroutines,
                                       const std::vector<size_t>& leaked);
  // Proven leaked as of the last mark, in goid order.
  const std::vector<LeakedGoroutine>& proven() const { return proven_; }
  // Goroutines the last mark found leaked that no mark has proven yet (they wait for a second).
  size_t unproven() const { return unproven_; }
  // When the last two marks ran (InfinitePast before).
  absl::Time last_mark() const { return last_mark_; }
  absl::Time previous_mark() const { return previous_mark_; }

 private:
  struct Pending {
    uint64_t g = 0;
    uint8_t wait_reason = 0;
    std::vector<uint64_t> sudogs;
    absl::Time first_marked;
  };
  absl::Duration min_gap_;
  absl::flat_hash_map<uint64_t, Pending> pending_;  // by goid: leaked in the last mark
  std::vector<LeakedGoroutine> proven_;
  size_t unproven_ = 0;
  absl::Time last_mark_ = absl::InfinitePast();
  absl::Time previous_mark_ = absl::InfinitePast();
};

// One mark of `goroutines` (every goroutine, as GoroutineReader::ReadEvery reads them) at `now`,
// its verdicts given to `tracker`; before Go 1.26 the semaphore table first names what sync waits
// wait on (heap/sema.h). The goroutines it newly proves leaked are unwound and their blocking line
// found. `contexts` are passed to Mark. Returns whether the proven set changed; the mark's error
// when it failed.
absl::StatusOr<bool> MarkAndTrack(RemoteMemory& memory, const HeapFacts& facts,
                                  const MarkLimits& limits, std::vector<GoroutineState> goroutines,
                                  absl::Time now, Decoder& decoder, LeakTracker& tracker,
                                  MarkResult& result, absl::Span<const uint64_t> contexts = {});

// The goroutine_leak findings at `now`: one per blocking line and `go` statement, with the wait
// reason, counts and ages, and the context a goroutine is bound to where the lineage knows it.
// Goroutines that a context finding of `others` already names are left to it (the most specific
// finding wins).
std::vector<Finding> GoroutineLeakFindings(absl::Time now, const LeakTracker& tracker,
                                           const ProcessLineage& lineage,
                                           const std::vector<Finding>& others);

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_LEAK_TRACKER_H_
