#include "agent/profile/profile.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"

namespace ctxagent::profile {
namespace {

using Key = std::pair<std::vector<uint64_t>, std::vector<std::pair<std::string, std::string>>>;

// Fills `p`'s samples and total from `counts`, leaving out zero counts.
void SetSamples(const std::map<Key, int64_t>& counts, Profile& p) {
  for (const auto& [key, count] : counts) {
    if (count == 0) continue;
    p.samples.push_back({key.first, key.second, count});
    p.total += count;
  }
  std::stable_sort(p.samples.begin(), p.samples.end(),
                   [](const Sample& a, const Sample& b) { return a.count > b.count; });
}

// `running`: goroutines left out for want of a stack.
Profile Grouped(const std::string& name, const StackSnapshot& snapshot,
                const std::map<Key, int64_t>& counts, uint64_t running) {
  Profile p;
  p.name = name;
  p.taken = snapshot.taken;
  SetSamples(counts, p);
  p.comments.push_back(absl::StrCat(
      "ctxagent read ", p.total + running + snapshot.changed + snapshot.incomplete,
      " goroutines without stopping the process: ", snapshot.changed, " changed under the read, ",
      snapshot.incomplete, " not unwound to their start and ", running,
      " running on a CPU (no stack readable) are not sampled"));
  return p;
}

}  // namespace

Profile StacksProfile(const StackSnapshot& snapshot, const std::string& name) {
  std::map<Key, int64_t> counts;
  for (const GoroutineStack& g : snapshot.goroutines) {
    if (g.pcs.empty()) continue;
    Key key{g.pcs, {{"wait_reason", g.state.state}}};
    if (std::string waited = WaitBucket(g.state.waiting_since, snapshot.taken); !waited.empty()) {
      key.second.emplace_back("waited", std::move(waited));
    }
    if (!g.kind.empty()) key.second.emplace_back("kind", g.kind);
    if (!g.site.empty()) key.second.emplace_back("site", g.site);
    if (!g.context_site.empty()) key.second.emplace_back("context_site", g.context_site);
    ++counts[key];
  }
  return Grouped(name, snapshot, counts, snapshot.running);
}

Profile CreateProfile(const StackSnapshot& snapshot) {
  std::map<Key, int64_t> counts;
  for (const GoroutineStack& g : snapshot.goroutines) {
    if (g.state.gopc == 0) continue;  // the main goroutine
    ++counts[Key{{g.state.gopc}, {{"start_function", g.state.start_function}}}];
  }
  return Grouped("goroutinecreate", snapshot, counts, 0);
}

Profile DeltaProfile(const Profile& before, const Profile& after) {
  std::map<Key, int64_t> counts;
  for (const Sample& s : after.samples) counts[Key{s.pcs, s.labels}] += s.count;
  for (const Sample& s : before.samples) counts[Key{s.pcs, s.labels}] -= s.count;
  Profile p;
  p.name = after.name;
  p.taken = after.taken;
  p.duration = after.taken - before.taken;
  SetSamples(counts, p);
  p.comments.push_back(absl::StrCat("delta: the second read minus the first, ",
                                    absl::FormatDuration(p.duration), " later"));
  for (const std::string& c : before.comments) p.comments.push_back("first read: " + c);
  for (const std::string& c : after.comments) p.comments.push_back("second read: " + c);
  return p;
}

}  // namespace ctxagent::profile
