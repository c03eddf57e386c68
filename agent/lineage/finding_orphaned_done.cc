// Orphaned Done channel (docs/diagnoses.md #1): a context nothing live can cancel any more while
// live goroutines wait on it: bound to it (captured when started) or parked on its Done channel
// (read from memory). From heap marks, nothing can cancel it when no cancel func of it or of any
// cancelable ancestor was reachable in the last two marks; before, from its creators' history.
#include "agent/lineage/lineage_state.h"

namespace ctxagent::lineage_internal {
namespace {

using Waiters = absl::flat_hash_map<ContextId, absl::InlinedVector<uint64_t, 2>>;

// Live goroutines bound to or parked on each context (those not already explained), goid order.
Waiters WaitersOf(Evaluation& ev) {
  const State& s = ev.s;
  Waiters waiters;
  for (uint64_t goid : ev.live) {
    if (ev.used_goroutines.contains(goid)) continue;
    for (ContextId id : s.GoAt(goid).bound) waiters[id].push_back(goid);
  }
  for (const auto& [id, goids] : s.parked) {
    for (uint64_t goid : goids) {
      if (ev.used_goroutines.contains(goid)) continue;
      const Go* g = s.FindGo(goid);
      if (g != nullptr && (!g->alive() || g->uncertain)) continue;
      auto& w = waiters[id];
      if (std::find(w.begin(), w.end(), goid) == w.end()) w.push_back(goid);
    }
  }
  for (auto& [id, w] : waiters) std::sort(w.begin(), w.end());
  return waiters;
}

}  // namespace

// Nothing live can cancel it: freed uncancelled, or every cancelable link up to the root is
// uncancelled, its creator exited past the grace period (or moved on, below), and no deadline is
// due within grace. A creator that is still alive has "moved on" when it made several such
// contexts at one site, old enough, each still waited on: a server's connection goroutine opening a
// session per request and dropping it is the same leak as a short-lived goroutine doing it once.
void FindOrphanedDone(Evaluation& ev) {
  const State& s = ev.s;
  Waiters waiters = WaitersOf(ev);
  absl::flat_hash_map<std::pair<uint64_t, SiteId>, uint32_t> waited_per_creator;
  for (const auto& [id, w] : waiters) {
    const Ctx* c = s.FindCtx(id);
    if (c != nullptr && c->live() && c->created <= ev.leak_before) {
      ++waited_per_creator[std::make_pair(c->creator_goid, c->site)];
    }
  }
  auto creator_done = [&](const Ctx& c) {
    if (s.CreatorGone(c.creator_goid, ev.settled)) return true;
    auto it = waited_per_creator.find(std::make_pair(c.creator_goid, c.site));
    return c.created <= ev.leak_before && it != waited_per_creator.end() && it->second >= 2;
  };
  const bool facts = s.has_cancel_facts();
  auto orphaned = [&](const Ctx& x) {
    // Freed by the GC and never cancelled: nothing holds it, its CancelFunc included (which refers
    // to it), so nothing can ever close the channel its waiters block on.
    if (x.gone() && !x.is_cancelled()) return !(x.flags & kUncertain) && x.created <= ev.settled;
    for (const Ctx* c = &x; c != nullptr; c = s.FindCtx(c->parent)) {
      if (!c->live() || (c->flags & (kUntrackedLink | kUncertain))) return false;
      if (facts ? !(c->flags & kCancelLost) : !creator_done(*c)) return false;
      if (c->deadline <= ev.now + ev.grace) return false;
      if (c->parent == 0) {
        return c->rkind() == RootKind::kBackground || c->rkind() == RootKind::kWithoutCancel;
      }
    }
    return false;  // freed ancestor: it was cancelled, events are inconsistent
  };
  std::vector<ContextId> waited;
  for (const auto& [id, w] : waiters) waited.push_back(id);
  std::sort(waited.begin(), waited.end());
  for (ContextId id : waited) {
    const Ctx* c = s.FindCtx(id);
    if (c == nullptr || c->is_cancelled() || ev.used_contexts.contains(id) || !orphaned(*c)) {
      continue;
    }
    Group& gr = ev.group(FindingKind::kOrphanedDone, c->site);
    if (facts) gr.f.proof_marks = {FromNs(s.fact_marks()[1]), FromNs(s.fact_marks()[0])};
    gr.f.count++;
    gr.AddTime(c->created);
    gr.AddExample(id, c->ckind());
    ev.used_contexts.insert(id);
    for (uint64_t goid : waiters[id]) {
      if (!ev.used_goroutines.insert(goid).second) continue;
      gr.AddGoroutine(goid, s.GoSiteOf(goid));
      if (s.ParkedOn(goid, id)) ++gr.parked;
    }
  }
}

std::string ExplainOrphanedDone(const Evaluation& ev, const Group& gr) {
  const Finding& f = gr.f;
  const int n = gr.goroutine_total;
  std::string parked;
  if (gr.parked > 0) {
    parked = absl::StrFormat(" (%d parked on %s Done channel%s)", gr.parked,
                             f.count == 1 ? "its" : "their", f.count == 1 ? "" : "s");
  }
  const std::string why = f.proof_marks.empty()
                              ? "creator goroutine exited without cancelling, no deadline due, no "
                                "live cancelable ancestor"
                              : absl::StrCat("no cancel func of it or of a cancelable ancestor ",
                                             "reachable ", MarksAgo(ev, f), ", no deadline due");
  return absl::StrFormat(
      "%d context%s created at %s can no longer be cancelled (%s) but %d goroutine%s still wait%s "
      "on %s%s: they will never wake",
      f.count, f.count == 1 ? "" : "s", SiteString(ev.sites, f.site), why, n, n == 1 ? "" : "s",
      n == 1 ? "s" : "", f.count == 1 ? "it" : "them", parked);
}

}  // namespace ctxagent::lineage_internal
