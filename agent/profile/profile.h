// Count profiles of goroutines, as runtime/pprof groups them: one sample per distinct stack and
// label set, valued by how many goroutines share it.
#ifndef CTXAGENT_AGENT_PROFILE_PROFILE_H_
#define CTXAGENT_AGENT_PROFILE_PROFILE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "agent/profile/goroutine_stacks.h"

namespace ctxagent::profile {

struct Sample {
  std::vector<uint64_t> pcs;  // return addresses, innermost first
  std::vector<std::pair<std::string, std::string>> labels;
  int64_t count = 0;
};

struct Profile {
  std::string name;  // the sample type: "goroutine", "goroutineleak", "goroutinecreate"
  absl::Time taken;
  absl::Duration duration;      // a delta's: between its two reads
  std::vector<Sample> samples;  // most goroutines first, then by stack (runtime/pprof's order)
  int64_t total = 0;            // goroutines counted
  std::vector<std::string> comments;
};

// Goroutines by stack, labelled with their wait reason ("wait_reason"), how long they have waited
// ("waited", see WaitBucket), the creation site of the context it is parked on or bound to
// ("context_site", see LabelContexts) and, for a leak snapshot, the finding kind and site ("kind",
// "site"). Running goroutines (no stack) are counted in a comment, not sampled.
Profile StacksProfile(const StackSnapshot& snapshot, const std::string& name);
// Goroutines by the `go` statement that created them (g.gopc: the runtime keeps no more of the
// creating stack), labelled with their start function.
Profile CreateProfile(const StackSnapshot& snapshot);
// net/http/pprof's delta (`seconds`): `after` minus `before`, merged by stack and labels as pprof's
// profile.Merge does (samples that cancel out dropped, negative ones kept), taken at `after`.
Profile DeltaProfile(const Profile& before, const Profile& after);

}  // namespace ctxagent::profile

#endif  // CTXAGENT_AGENT_PROFILE_PROFILE_H_
