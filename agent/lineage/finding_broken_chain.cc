// Broken chain (docs/diagnoses.md #3): a goroutine started while its spawner worked under a live
// cancelable context C runs on past the grace period after C was cancelled, because C's
// cancellation cannot reach it: it roots new contexts at Background/TODO or below WithoutCancel,
// or it was handed one (WithValue over Background where WithCancel(ctx) was meant, or
// WithoutCancel(ctx)). Unless the heap marks, both after the grace period, find it holding C or a
// descendant of C: the chain reaches it, and running on is an ignored cancellation.
#include "agent/lineage/lineage_state.h"

namespace ctxagent::lineage_internal {

void FindBrokenChains(Evaluation& ev) {
  const State& s = ev.s;
  for (uint64_t goid : ev.live) {
    const Go& g = s.GoAt(goid);
    const bool rerooted = g.first_rooted != 0;
    if ((!rerooted && !g.captured_uncancelable) || g.spawner_context == 0) continue;
    auto [cancelled_at, by] = s.EffectiveCancel(g.spawner_context);
    if (by == nullptr || cancelled_at > ev.settled) continue;
    const bool marked = s.fact_marks()[1] != kNever && cancelled_at + ev.grace <= s.fact_marks()[1];
    if (marked && s.HoldsUnder(goid, g.spawner_context)) continue;
    const Ctx* spawner_ctx = s.FindCtx(g.spawner_context);  // pinned by spawn_refs
    if (spawner_ctx == nullptr) continue;
    // Re-rooted: reported at the new root's creation; handed a root: at the `go` statement.
    Group& gr = ev.group(FindingKind::kBrokenChain, rerooted ? g.first_rooted_site : g.go_site);
    if (gr.f.related_site == kNoSite) gr.f.related_site = spawner_ctx->site;
    gr.handed_root = !rerooted;
    if (marked) gr.f.proof_marks = {FromNs(s.fact_marks()[1]), FromNs(s.fact_marks()[0])};
    gr.f.count++;
    gr.AddGoroutine(goid, g.go_site);
    gr.AddTime(cancelled_at);
    ev.used_goroutines.insert(goid);
    if (!rerooted) continue;
    const ContextId example =
        g.last_rooted != 0 && s.FindCtx(g.last_rooted) ? g.last_rooted : g.first_rooted;
    if (const Ctx* r = s.FindCtx(example)) gr.AddExample(example, r->ckind());
    ev.used_contexts.insert(g.first_rooted);
    ev.used_contexts.insert(g.last_rooted);
  }
}

std::string ExplainBrokenChain(const Evaluation& ev, const Group& gr) {
  const Finding& f = gr.f;
  const int n = gr.goroutine_total;
  const std::string spawner = SiteString(ev.sites, f.related_site);
  const std::string facts = f.proof_marks.empty()
                                ? ""
                                : absl::StrFormat(" (%s %s held no context derived from it)",
                                                  MarksAgo(ev, f), n == 1 ? "it" : "they");
  if (gr.handed_root) {
    return absl::StrFormat(
        "context from %s was cancelled %s ago but %d goroutine%s started at %s under it still "
        "run%s: %s handed a context nothing can cancel (WithValue layers over "
        "context.Background(), or context.WithoutCancel) where one derived from it was meant, so "
        "the cancellation cannot reach %s%s",
        spawner, FormatAge(f.newest_age), n, n == 1 ? "" : "s", SiteString(ev.sites, f.site),
        n == 1 ? "s" : "", n == 1 ? "it was" : "they were", n == 1 ? "it" : "them", facts);
  }
  return absl::StrFormat(
      "context from %s was cancelled %s ago but %d goroutine%s started under it still run%s: %s "
      "roots a new context at Background/TODO (or below WithoutCancel) instead of deriving from "
      "it, so the cancellation cannot reach %s%s",
      spawner, FormatAge(f.newest_age), n, n == 1 ? "" : "s", n == 1 ? "s" : "",
      SiteString(ev.sites, f.site), n == 1 ? "it" : "them", facts);
}

}  // namespace ctxagent::lineage_internal
