// Lost cancel and timer build-up (docs/diagnoses.md #2, #5): uncancelled contexts nothing can
// cancel any more. From heap marks (State::has_cancel_facts), a fact per context: none of its
// cancel funcs was reachable in the last two marks while the context itself was (its parent's
// children map or a holder keeps it), whatever became of its creator; a site is reported once it
// has min_count of them. Until two marks have run (or when they stopped), from history: a site
// whose uncancelled contexts, dropped by their creators, keep accumulating. A lost cancel may have
// goroutines parked on its Done channel (read from memory): they wait until the parent ends; they
// are counted in the finding (the contexts are not orphaned: the parent may still cancel them).
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

// The facts of the last two marks, else from history: uncancelled contexts whose creator is gone,
// or that are old and whose creator still holds several from the same site (one long-lived
// context per goroutine and site, like main's root or a connection's context, is normal), not
// waited on by running goroutines.
Accumulating Collect(Evaluation& ev) {
  const State& s = ev.s;
  const bool facts = s.has_cancel_facts();
  const absl::Duration far = facts ? ev.options.leak_after : ev.options.far_deadline;
  auto timer_far = [&](const Ctx& c) {
    return c.ckind() == ContextKind::kTimer && c.deadline != kNever &&
           c.deadline >= ev.now + Ns(far);
  };
  // A never-cancelled WithCancel (or AfterFunc) is leaked by a live cancelable parent's children
  // map; one rooted at Background/WithoutCancel lives only as long as whatever holds it (net/http
  // drops its dial contexts' cancel funcs so), garbage once dropped. A far timer is held by its
  // timer whatever its root. From marks, each must also have been reached.
  auto retained = [&](const Ctx& c) {
    if (facts && !(c.flags & kReached)) return false;
    if (c.ckind() == ContextKind::kTimer || (!facts && c.ckind() != ContextKind::kCancel)) {
      return timer_far(c);
    }
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
  // From marks, goroutines bound to it change nothing: none can cancel it.
  auto unwaited = [&](ContextId id, const Ctx& c) {
    if (facts || c.bound_live == 0) return true;
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
    if (!facts && eligible(id, c) && c.created <= ev.leak_before &&
        !s.CreatorGone(c.creator_goid, ev.now)) {
      ++old_per_creator[std::make_pair(c.creator_goid, c.site)];
    }
  }
  Accumulating out;
  for (const auto& [id, c] : s.contexts()) {
    if (!eligible(id, c)) continue;
    bool candidate = facts ? (c.flags & kCancelLost) != 0 : s.CreatorGone(c.creator_goid, ev.now);
    if (!facts && !candidate && c.created <= ev.leak_before) {
      auto it = old_per_creator.find(std::make_pair(c.creator_goid, c.site));
      candidate = it != old_per_creator.end() && it->second >= 2;
    }
    if (!candidate) continue;
    Candidates& n = out.per_site[c.site];
    (c.ckind() == ContextKind::kTimer ? n.timer : n.lost)++;
    out.contexts.emplace_back(id, &c);
  }
  return out;
}

}  // namespace

void FindLostCancels(Evaluation& ev) {
  State& s = ev.s;
  Accumulating acc = Collect(ev);
  for (const auto& [site, n] : acc.per_site) s.site_history.try_emplace(site);
  // From marks, reported while the site has min_count; from history, when the count grows, while
  // it holds (Accumulation).
  const bool facts = s.has_cancel_facts();
  absl::flat_hash_set<std::pair<FindingKind, SiteId>> reported;
  const uint64_t min_count = static_cast<uint64_t>(ev.options.min_count);
  for (auto& [site, agg] : s.site_history) {
    auto it = acc.per_site.find(site);
    const Candidates n = it != acc.per_site.end() ? it->second : Candidates{};
    for (auto [kind, count, accumulation] :
         {std::make_tuple(FindingKind::kLostCancel, n.lost, &agg.lost),
          std::make_tuple(FindingKind::kTimerBuildup, n.timer, &agg.timer)}) {
      uint64_t grew = 0;
      if (!accumulation->Update(count, min_count, facts, &grew)) continue;
      reported.insert(std::make_pair(kind, site));
      Group& gr = ev.group(kind, site);
      gr.f.count = static_cast<int>(count);
      gr.grew = grew;
      if (facts) gr.f.proof_marks = {FromNs(s.fact_marks()[1]), FromNs(s.fact_marks()[0])};
    }
  }
  std::sort(acc.contexts.begin(), acc.contexts.end());
  for (const auto& [id, c] : acc.contexts) {
    const FindingKind kind =
        c->ckind() == ContextKind::kTimer ? FindingKind::kTimerBuildup : FindingKind::kLostCancel;
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

std::string MarksAgo(const Evaluation& ev, const Finding& f) {
  const absl::Time now = FromNs(ev.now);
  auto ago = [&](absl::Time t) {
    return now - t < absl::Seconds(1) ? std::string("just now") : FormatAge(now - t) + " ago";
  };
  return absl::StrFormat("in the marks %s and %s", ago(f.proof_marks[0]), ago(f.proof_marks[1]));
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
  if (!f.proof_marks.empty()) {
    return absl::StrFormat(
        "%d contexts created at %s are not cancelled and no cancel func of theirs was reachable %s "
        "(%d more since the last check), while the contexts still were: nothing can cancel them, "
        "and each stays in its parent's children (or with whatever holds it) until the parent "
        "ends%s",
        f.count, SiteString(ev.sites, f.site), MarksAgo(ev, f), gr.grew, parked);
  }
  return absl::StrFormat(
      "%d contexts created at %s were never cancelled after their creators were done (%d more "
      "since the last check): the CancelFunc is dropped or never called, and each stays in its "
      "parent's children until the parent ends%s",
      f.count, SiteString(ev.sites, f.site), gr.grew, parked);
}

std::string ExplainTimerBuildup(const Evaluation& ev, const Group& gr) {
  const Finding& f = gr.f;
  if (!f.proof_marks.empty()) {
    return absl::StrFormat(
        "%d timer contexts created at %s with deadlines at least %s away are not cancelled and no "
        "cancel func of theirs was reachable %s (%d more since the last check): their timers "
        "pile up until they fire",
        f.count, SiteString(ev.sites, f.site), FormatAge(ev.options.leak_after), MarksAgo(ev, f),
        gr.grew);
  }
  return absl::StrFormat(
      "%d timer contexts created at %s with deadlines at least %s away are never cancelled (%d "
      "more since the last check): their timers pile up until they fire",
      f.count, SiteString(ev.sites, f.site), FormatAge(ev.options.far_deadline), gr.grew);
}

}  // namespace ctxagent::lineage_internal
