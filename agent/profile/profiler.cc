#include "agent/profile/profiler.h"

#include <filesystem>
#include <system_error>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "agent/profile/text_format.h"

namespace ctxagent::profile {

absl::StatusOr<std::unique_ptr<GoroutineProfiler>> GoroutineProfiler::Create(
    const symbols::GoBinary& bin, const Process& process, uint64_t max_memory) {
  absl::StatusOr<uint64_t> bias = process.LoadBias(bin.elf());
  if (!bias.ok()) return bias.status();
  return std::unique_ptr<GoroutineProfiler>(new GoroutineProfiler(bin, process, *bias, max_memory));
}

GoroutineProfiler::GoroutineProfiler(const symbols::GoBinary& bin, const Process& process,
                                     uint64_t bias, uint64_t max_memory)
    : bin_(bin),
      bias_(bias),
      decoder_(bin, process, bias, sites_),
      reader_(bin, process, bias, decoder_, clock_, max_memory),
      memory_(process),
      symbolizer_(bin.pclntab(), bias) {
  const symbols::Pclntab& table = bin.pclntab();
  mapping_.start = table.text_start() + bias;
  mapping_.limit = mapping_.start + 1;
  if (table.num_functions() > 0) {
    if (auto last = table.FunctionAt(table.num_functions() - 1); last.ok()) {
      mapping_.limit = last->end + bias;
    }
  }
  std::error_code error;
  mapping_.file = std::filesystem::read_symlink(process.exe_path(), error).string();
  if (error) mapping_.file = process.exe_path();
}

absl::StatusOr<StackSnapshot> GoroutineProfiler::ProveLeaks(absl::Duration gap,
                                                            const heap::MarkLimits& limits) {
  const heap::HeapFacts facts = heap::HeapFactsFor(bin_, bias_);
  heap::LeakTracker tracker(gap);
  heap::MarkResult mark;
  for (int i = 0; i < 2; ++i) {
    if (i > 0) absl::SleepFor(gap);
    absl::StatusOr<std::vector<GoroutineState>> goroutines = reader_.ReadEvery();
    if (!goroutines.ok()) return goroutines.status();
    absl::StatusOr<bool> marked = heap::MarkAndTrack(memory_, facts, limits, *std::move(goroutines),
                                                     absl::Now(), decoder_, tracker, mark);
    if (!marked.ok()) return marked.status();
  }
  return LeakSnapshot(tracker, {}, sites_, StackSnapshot{absl::Now()});
}

absl::StatusOr<std::string> GoroutineProfiler::Render(const Profile& profile, int debug) {
  if (debug > 0) return CountProfileText(profile, symbolizer_);
  return Gzip(EncodeProfile(profile, symbolizer_, mapping_));
}

std::string GoroutineProfiler::Dump(const StackSnapshot& snapshot) {
  return GoroutineDump(snapshot, symbolizer_, bin_.build_info().version.AtLeast(21));
}

StackSnapshot LeakSnapshot(const heap::LeakTracker& tracker, const std::vector<Finding>& findings,
                           const SiteTable& sites, const StackSnapshot& current) {
  StackSnapshot out;
  out.taken = current.taken;
  absl::flat_hash_set<uint64_t> listed;
  for (const heap::LeakedGoroutine& l : tracker.proven()) {
    listed.insert(l.state.goid);
    out.goroutines.push_back({l.state, l.stack, FindingKindName(FindingKind::kGoroutineLeak),
                              ShortSiteString(sites.Get(l.blocked_at))});
  }
  for (const Finding& f : findings) {
    if (f.kind == FindingKind::kGoroutineLeak) continue;
    const absl::flat_hash_set<uint64_t> named(f.goroutines.begin(), f.goroutines.end());
    for (const GoroutineStack& g : current.goroutines) {
      if (named.contains(g.state.goid) && listed.insert(g.state.goid).second) {
        out.goroutines.push_back(
            {g.state, g.pcs, FindingKindName(f.kind), ShortSiteString(sites.Get(f.site))});
      }
    }
  }
  return out;
}

void LabelContexts(const ProcessLineage& lineage, StackSnapshot& snapshot) {
  for (GoroutineStack& g : snapshot.goroutines) {
    const GoroutineNode* n = lineage.FindGoroutine(g.state.goid);
    if (n == nullptr) continue;
    for (const std::vector<ContextId>* ids : {&n->parked_on, &n->bound}) {
      const ContextNode* c = ids->empty() ? nullptr : lineage.FindContext(ids->front());
      if (c == nullptr) continue;
      g.context_site = ShortSiteString(lineage.sites().Get(c->site));
      break;
    }
  }
}

Profile BuildProfile(ProfileType type, const StackSnapshot& snapshot) {
  switch (type) {
    case ProfileType::kGoroutine:
      return StacksProfile(snapshot, "goroutine");
    case ProfileType::kLeak:
      return StacksProfile(snapshot, "goroutineleak");
    case ProfileType::kCreate:
      return CreateProfile(snapshot);
  }
  return {};
}

}  // namespace ctxagent::profile
