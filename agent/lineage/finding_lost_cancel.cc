// Lost cancel and timer build-up (docs/diagnoses.md #2, #5): a site whose uncancelled contexts,
// dropped by their creators, keep accumulating. A lost cancel may have goroutines parked on its
// Done channel (read from memory): a goroutine blocked on <-ctx.Done() cannot be the one that
// cancels it, so under a long-lived parent they wait until the parent ends; they are counted in
// the finding (the contexts are not orphaned: the parent may still cancel them at shutdown).
#include "agent/lineage/lineage_state.h"

namespace ctxagent::lineage_internal {
namespace {

struct Candidates {
  uint64_t lost = 0, timer = 0;
};

struct Accumulating {
  absl::flat_hash_map<SiteId, Candidates> per_site;
  std::vector<std::pair<ContextId, const Ctx*>> contexts;
};

// Uncancelled contexts whose creator is gone, or that are old and whose creator still holds
// several from the same site (one long-lived context per goroutine and site, like main's root or a
// connection's context, is normal), not waited on by running goroutines.
Accumulating Collect(Evaluation& ev) {
  const State& s = ev.s;
  auto timer_far = [&](const Ctx& c) {
    return c.ckind() == ContextKind::kTimer && c.deadline != kNever &&
           c.deadline >= ev.now + Ns(ev.options.far_deadline);
  };
  // A never-cancelled WithCancel is only held (and leaked) by a live cancelable parent's children
  // map; one rooted at Background/WithoutCancel is garbage once dropped. A far timer is held by
  // its timer whatever its root.
  auto retained = [&](const Ctx& c) {
    if (c.ckind() != ContextKind::kCancel) return timer_far(c);
    if (c.flags & kUntrackedLink) return true;  // under a cancelable parent made before attach
    const Ctx* p = s.FindCtx(c.parent);
    return p != nullptr && p->live();
  };
  // Goroutines started with it that are parked on its Done channel wait for it: they cannot cancel.
  absl::flat_hash_map<ContextId, uint32_t> bound_parked;
  for (uint64_t goid : ev.live) {
    for (ContextId id : s.GoAt(goid).bound) {
      if (s.ParkedOn(goid, id)) ++bound_parked[id];
    }
  }
  auto unwaited = [&](ContextId id, const Ctx& c) {
    if (c.bound_live == 0) return true;
    auto it = bound_parked.find(id);
    return it != bound_parked.end() && it->second >= c.bound_live;
  };
  auto eligible = [&](ContextId id, const Ctx& c) {
    // Younger than grace: its cancel may still be on its way from another goroutine.
    return c.live() && !(c.flags & kUncertain) && c.created <= ev.settled && unwaited(id, c) &&
           retained(c) && !ev.used_contexts.contains(id);
  };
  absl::flat_hash_map<std::pair<uint64_t, SiteId>, uint32_t> old_per_creator;
  for (const auto& [id, c] : s.contexts()) {
    if (eligible(id, c) && c.created <= ev.leak_before && !s.CreatorGone(c.creator_goid, ev.now)) {
      ++old_per_creator[std::make_pair(c.creator_goid, c.site)];
    }
  }
  Accumulating out;
  for (const auto& [id, c] : s.contexts()) {
    if (!eligible(id, c)) continue;
    bool candidate = s.CreatorGone(c.creator_goid, ev.now);
    if (!candidate && c.created <= ev.leak_before) {
      auto it = old_per_creator.find(std::make_pair(c.creator_goid, c.site));
      candidate = it != old_per_creator.end() && it->second >= 2;
    }
    if (!candidate) continue;
    Candidates& n = out.per_site[c.site];
    (c.ckind() == ContextKind::kCancel ? n.lost : n.timer)++;
    out.contexts.emplace_back(id, &c);
  }
  return out;
}

}  // namespace

void FindLostCancels(Evaluation& ev) {
  State& s = ev.s;
  Accumulating acc = Collect(ev);
  for (const auto& [site, n] : acc.per_site) s.site_history.try_emplace(site);
  // Reported when the count grows, while it holds (Accumulation).
  absl::flat_hash_set<std::pair<FindingKind, SiteId>> reported;
  const uint64_t min_count = static_cast<uint64_t>(ev.options.min_count);
  for (auto& [site, agg] : s.site_history) {
    auto it = acc.per_site.find(site);
    const Candidates n = it != acc.per_site.end() ? it->second : Candidates{};
    for (auto [kind, count, accumulation] :
         {std::make_tuple(FindingKind::kLostCancel, n.lost, &agg.lost),
          std::make_tuple(FindingKind::kTimerBuildup, n.timer, &agg.timer)}) {
      uint64_t grew = 0;
      if (!accumulation->Update(count, min_count, &grew)) continue;
      reported.insert(std::make_pair(kind, site));
      Group& gr = ev.group(kind, site);
      gr.f.count = static_cast<int>(count);
      gr.grew = grew;
    }
  }
  std::sort(acc.contexts.begin(), acc.contexts.end());
  for (const auto& [id, c] : acc.contexts) {
    const FindingKind kind =
        c->ckind() == ContextKind::kCancel ? FindingKind::kLostCancel : FindingKind::kTimerBuildup;
    if (!reported.contains(std::make_pair(kind, c->site))) continue;
    Group& gr = ev.groups[std::make_pair(kind, c->site)];
    gr.AddTime(c->created);
    gr.AddExample(id, c->ckind());
    auto parked = s.parked.find(id);
    if (parked == s.parked.end()) continue;
    for (uint64_t goid : parked->second) {
      if (!ev.used_goroutines.insert(goid).second) continue;
      gr.AddGoroutine(goid, s.GoSiteOf(goid));
      ++gr.parked;
    }
  }
}

std::string ExplainLostCancel(const Evaluation& ev, const Group& gr) {
  const Finding& f = gr.f;
  std::string parked;
  if (gr.parked > 0) {
    parked = absl::StrFormat(
        "; %d goroutine%s parked on their Done channels: %s cannot cancel them and will wait "
        "until the parent ends",
        gr.parked, gr.parked == 1 ? " is" : "s are", gr.parked == 1 ? "it" : "they");
  }
  return absl::StrFormat(
      "%d contexts created at %s were never cancelled after their creators were done (%d more "
      "since the last check): the CancelFunc is dropped or never called, and each stays in its "
      "parent's children until the parent ends%s",
      f.count, SiteString(ev.sites, f.site), gr.grew, parked);
}

std::string ExplainTimerBuildup(const Evaluation& ev, const Group& gr) {
  const Finding& f = gr.f;
  return absl::StrFormat(
      "%d timer contexts created at %s with deadlines at least %s away are never cancelled (%d "
      "more since the last check): their timers pile up until they fire",
      f.count, SiteString(ev.sites, f.site), FormatAge(ev.options.far_deadline), gr.grew);
}

}  // namespace ctxagent::lineage_internal
