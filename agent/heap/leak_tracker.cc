#include "agent/heap/leak_tracker.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/heap/sema.h"
#include "agent/heap/unwind.h"

namespace ctxagent::heap {
namespace {

// Goroutines a finding lists by goid (as the lineage's findings cap theirs).
constexpr size_t kMaxListed = 20;

std::string Clock(absl::Time t) { return absl::FormatTime("%H:%M:%S", t, absl::UTCTimeZone()); }

// The context a leaked goroutine is bound to, if the lineage knows one: what it is parked on,
// else what it was started with, else what its spawner worked under.
const ContextNode* BoundContext(const ProcessLineage& lineage, uint64_t goid) {
  const GoroutineNode* n = lineage.FindGoroutine(goid);
  if (n == nullptr) return nullptr;
  for (const std::vector<ContextId>* ids : {&n->parked_on, &n->bound}) {
    for (ContextId id : *ids) {
      if (const ContextNode* c = lineage.FindContext(id)) return c;
    }
  }
  return n->spawner_context != 0 ? lineage.FindContext(n->spawner_context) : nullptr;
}

std::string Explain(absl::Time now, const Finding& f, const LeakTracker& tracker,
                    const ProcessLineage& lineage, const ContextNode* context) {
  const SiteTable& sites = lineage.sites();
  std::string out =
      absl::StrFormat("%d goroutine%s blocked in %s at %s", f.count, f.count == 1 ? "" : "s",
                      f.wait_reason, SiteLocation(sites.Get(f.site)));
  if (!f.go_sites.empty()) {
    absl::StrAppend(&out, " (started by the go statement at ",
                    ShortSiteString(sites.Get(f.go_sites.front())), ")");
  }
  absl::StrAppend(&out, " for ", FormatAge(f.oldest_age),
                  ", that nothing can ever wake: what they wait on is reachable only from leaked "
                  "goroutines (marks at ",
                  Clock(tracker.previous_mark()), " and ", Clock(tracker.last_mark()), " agree)");
  if (context != nullptr) {
    absl::StrAppend(&out, "; bound to a ", ContextKindName(context->kind), " context created at ",
                    ShortSiteString(sites.Get(context->site)));
    if (context->cancelled) {
      absl::StrAppend(&out, ", cancelled ", FormatAge(now - *context->cancelled), " ago");
      if (context->cancel_site != kNoSite) {
        absl::StrAppend(&out, " at ", ShortSiteString(sites.Get(context->cancel_site)));
      }
    } else {
      absl::StrAppend(&out, ", never cancelled");
    }
  }
  absl::StrAppend(&out, ".");
  return out;
}

}  // namespace

std::vector<LeakedGoroutine*> LeakTracker::Update(absl::Time at,
                                                  const std::vector<GoroutineState>& goroutines,
                                                  const std::vector<size_t>& leaked) {
  absl::flat_hash_map<uint64_t, LeakedGoroutine> before;
  for (LeakedGoroutine& l : proven_) before.emplace(l.state.goid, std::move(l));
  proven_.clear();
  absl::flat_hash_map<uint64_t, Pending> pending;
  std::vector<uint64_t> fresh;
  unproven_ = 0;
  for (size_t i : leaked) {
    const GoroutineState& g = goroutines[i];
    Pending p{g.g, g.wait_reason, g.sudogs, at};
    auto it = pending_.find(g.goid);
    const bool same = it != pending_.end() && it->second.g == p.g &&
                      it->second.wait_reason == p.wait_reason && it->second.sudogs == p.sudogs;
    if (same) p.first_marked = it->second.first_marked;
    if (same && at - p.first_marked >= min_gap_) {
      LeakedGoroutine l;
      if (auto b = before.find(g.goid); b != before.end()) {
        l = std::move(b->second);
      } else {
        fresh.push_back(g.goid);
      }
      l.state = g;
      l.first_marked = p.first_marked;
      l.confirmed = at;
      proven_.push_back(std::move(l));
    } else {
      ++unproven_;
    }
    pending.emplace(g.goid, std::move(p));
  }
  // A proven goroutine read torn by this mark (it was scanned as a root) is not withdrawn: the
  // mark says nothing of it. Its findings would otherwise flap under a busy target.
  for (const GoroutineState& g : goroutines) {
    auto b = before.find(g.goid);
    if (g.known || b == before.end() || pending.contains(g.goid)) continue;
    if (auto it = pending_.find(g.goid); it != pending_.end()) pending.emplace(g.goid, it->second);
    proven_.push_back(std::move(b->second));
  }
  pending_ = std::move(pending);
  std::sort(proven_.begin(), proven_.end(), [](const LeakedGoroutine& a, const LeakedGoroutine& b) {
    return a.state.goid < b.state.goid;
  });
  previous_mark_ = last_mark_;
  last_mark_ = at;
  std::vector<LeakedGoroutine*> out;
  for (LeakedGoroutine& l : proven_) {
    if (std::find(fresh.begin(), fresh.end(), l.state.goid) != fresh.end()) out.push_back(&l);
  }
  return out;
}

std::vector<Finding> GoroutineLeakFindings(absl::Time now, const LeakTracker& tracker,
                                           const ProcessLineage& lineage,
                                           const std::vector<Finding>& others) {
  // What the context findings name: their goroutines (a capped list), their `go` statements and
  // their contexts' sites, which cover the goroutines past the cap and those whose contexts the
  // probes never saw (made before the attach or between windows): the same code path, the same bug.
  absl::flat_hash_set<uint64_t> named;
  absl::flat_hash_set<SiteId> context_sites, go_sites;
  for (const Finding& f : others) {
    named.insert(f.goroutines.begin(), f.goroutines.end());
    go_sites.insert(f.go_sites.begin(), f.go_sites.end());
    if (f.kind != FindingKind::kBrokenChain) context_sites.insert(f.site);
  }
  auto taken = [&](const GoroutineState& g) {
    const uint64_t goid = g.goid;
    // The main goroutine parked for good keeps a server running by design (`select {}` the
    // runtime's profile leaves out too, or `<-make(chan struct{})` it reports, as esbuild's serve
    // mode does): not a finding, only in the profile.
    if (goid == 1) return true;
    if (named.contains(goid) || (g.go_site != kNoSite && go_sites.contains(g.go_site))) {
      return true;
    }
    const GoroutineNode* n = lineage.FindGoroutine(goid);
    if (n == nullptr) return false;
    for (const std::vector<ContextId>* ids : {&n->parked_on, &n->bound}) {
      for (ContextId id : *ids) {
        const ContextNode* c = lineage.FindContext(id);
        if (c != nullptr && context_sites.contains(c->site)) return true;
      }
    }
    return false;
  };
  // By blocking line, `go` statement and wait reason, in that order.
  std::map<std::tuple<SiteId, SiteId, std::string>, Finding> groups;
  std::map<std::tuple<SiteId, SiteId, std::string>, const ContextNode*> contexts;
  for (const LeakedGoroutine& l : tracker.proven()) {
    if (taken(l.state)) continue;
    const auto key = std::make_tuple(l.blocked_at, l.state.go_site, l.state.state);
    Finding& f = groups[key];
    f.kind = FindingKind::kGoroutineLeak;
    f.site = l.blocked_at;
    if (f.go_sites.empty() && l.state.go_site != kNoSite) f.go_sites.push_back(l.state.go_site);
    f.wait_reason = l.state.state;
    if (f.goroutines.size() < kMaxListed) f.goroutines.push_back(l.state.goid);
    ++f.count;
    ++f.parked;
    // Parked since the runtime noted it (a GC saw it blocked), else since the first mark.
    const absl::Time since = l.state.waiting_since != absl::InfinitePast()
                                 ? std::min(l.state.waiting_since, l.first_marked)
                                 : l.first_marked;
    const absl::Duration age = now - since;
    f.oldest_age = f.count == 1 ? age : std::max(f.oldest_age, age);
    f.newest_age = f.count == 1 ? age : std::min(f.newest_age, age);
    const ContextNode* c = BoundContext(lineage, l.state.goid);
    if (c != nullptr && contexts[key] == nullptr) {
      contexts[key] = c;
      f.related_site = c->site;
      f.example = c->id;
      f.example_kind = c->kind;
    }
  }
  std::vector<Finding> out;
  for (auto& [key, f] : groups) {
    f.explanation = Explain(now, f, tracker, lineage, contexts[key]);
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<bool> MarkAndTrack(RemoteMemory& memory, const HeapFacts& facts,
                                  const MarkLimits& limits, std::vector<GoroutineState> goroutines,
                                  absl::Time now, Decoder& decoder, LeakTracker& tracker,
                                  MarkResult& result, absl::Span<const uint64_t> contexts) {
  // A failed table read leaves those goroutines roots: a miss, never a leak invented.
  if (!facts.sync_waits_on_g) {
    (void)AddSemaphoreWaits(memory, facts.semtable, facts.offsets, facts.version, goroutines);
    AddCondWaits(memory, facts.offsets, facts.version, goroutines);
  }
  absl::StatusOr<MarkResult> mark =
      Mark(memory, facts, goroutines, limits, contexts,
           [&decoder](uint64_t word) { return decoder.IsWithoutCancelItab(word); });
  if (!mark.ok()) return mark.status();
  const size_t before = tracker.proven().size();
  bool changed = false;
  for (LeakedGoroutine* l : tracker.Update(now, goroutines, mark->leaked)) {
    l->stack = Unwind(memory, l->state);
    l->blocked_at = decoder.BlockingSite(l->stack);
    changed = true;
  }
  result = *std::move(mark);
  return changed || tracker.proven().size() != before;
}

}  // namespace ctxagent::heap
