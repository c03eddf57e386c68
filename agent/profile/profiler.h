// Goroutine profiles of one running Go process, read from its memory without stopping it: what
// `ctxagent profile` writes and the daemon's /processes/<pid>/pprof/... endpoints serve. No probe
// is needed: the binary's pclntab and process_vm_readv are enough.
#ifndef CTXAGENT_AGENT_PROFILE_PROFILER_H_
#define CTXAGENT_AGENT_PROFILE_PROFILER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/heap/leak_tracker.h"
#include "agent/lineage/lineage.h"
#include "agent/profile/goroutine_stacks.h"
#include "agent/profile/pprof_proto.h"
#include "agent/profile/profile.h"
#include "agent/profile/stack_symbolizer.h"
#include "agent/trace/decoder.h"
#include "agent/trace/goroutines.h"
#include "agent/trace/process.h"
#include "symbols/go_binary.h"

namespace ctxagent::profile {

enum class ProfileType { kGoroutine, kLeak, kCreate };

class GoroutineProfiler {
 public:
  // `bin` and `process` must outlive the profiler; a read holds at most `max_memory` bytes of
  // goroutine states (GoroutineReader).
  static absl::StatusOr<std::unique_ptr<GoroutineProfiler>> Create(const symbols::GoBinary& bin,
                                                                   const Process& process,
                                                                   uint64_t max_memory);

  // Every user goroutine's stack, now.
  absl::StatusOr<StackSnapshot> Read() {
    return ReadStacks(reader_, memory_, symbolizer_, absl::Now());
  }
  // Proves leaks on its own, as a session does: two heap marks `gap` apart must agree. The
  // proven goroutines, unwound at the second mark.
  absl::StatusOr<StackSnapshot> ProveLeaks(absl::Duration gap, const heap::MarkLimits& limits);

  // debug=0: gzipped profile.proto; debug=1: runtime/pprof's count text.
  absl::StatusOr<std::string> Render(const Profile& profile, int debug);
  // debug=2: the runtime's goroutine dump.
  std::string Dump(const StackSnapshot& snapshot);

  const GoroutineReader::Cost& cost() const { return reader_.cost(); }

 private:
  GoroutineProfiler(const symbols::GoBinary& bin, const Process& process, uint64_t bias,
                    uint64_t max_memory);

  const symbols::GoBinary& bin_;
  uint64_t bias_;
  SiteTable sites_;
  Decoder decoder_;
  EventClock clock_;
  GoroutineReader reader_;
  heap::ProcessMemory memory_;
  StackSymbolizer symbolizer_;
  Mapping mapping_;
};

// The goroutines a leak profile lists: those `tracker` proved leaked (kind goroutine_leak, site the
// line they block on, in `sites`), then those the context findings name that `current` holds (kind
// the finding's, site the context's creation site), each once.
StackSnapshot LeakSnapshot(const heap::LeakTracker& tracker, const std::vector<Finding>& findings,
                           const SiteTable& sites, const StackSnapshot& current);

// Sets the context_site of each goroutine of `snapshot` that `lineage` knows parked on a context's
// Done channel, or else bound to a context (captured by its function when started): that context's
// creation site (the first one's, as the goroutines view lists them).
void LabelContexts(const ProcessLineage& lineage, StackSnapshot& snapshot);

// The profile of `type` (the leak type from a LeakSnapshot).
Profile BuildProfile(ProfileType type, const StackSnapshot& snapshot);

}  // namespace ctxagent::profile

#endif  // CTXAGENT_AGENT_PROFILE_PROFILER_H_
