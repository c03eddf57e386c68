// Ignored cancellation (docs/diagnoses.md #4): goroutines started with a context (or a descendant
// of it), or holding it (from its stack, directly or through closures, structs or WithValue
// layers) in the last two heap marks, both past the grace period after it was cancelled, still
// run; what they do instead is read from memory.
#include "agent/lineage/lineage_state.h"

namespace ctxagent::lineage_internal {
namespace {

// What a goroutine does instead of returning on `id`'s cancellation, from its state in memory.
std::string Doing(const State& s, uint64_t goid, ContextId id) {
  const GoroutineState* st = s.StateOf(goid);
  if (st == nullptr) return "";
  if (!st->waiting) return st->state;  // running, runnable, syscall
  if (st->state == "sleep") return "sleeping in time.Sleep";
  if (st->in_select) {
    auto d = s.done_channels.find(id);
    const bool has_done =
        d != s.done_channels.end() &&
        std::find(st->channels.begin(), st->channels.end(), d->second) != st->channels.end();
    return has_done ? "blocked in select" : "blocked in select without this context's Done";
  }
  return absl::StrCat("blocked (", st->state, ")");
}

}  // namespace

// Attributed to the first such context the goroutine was started with, else holds.
void FindIgnoredCancels(Evaluation& ev) {
  const State& s = ev.s;
  const int64_t earlier_mark = s.fact_marks()[1];
  for (uint64_t goid : ev.live) {
    if (ev.used_goroutines.contains(goid)) continue;
    const Go& g = s.GoAt(goid);
    absl::InlinedVector<ContextId, 4> candidates(g.bound.begin(), g.bound.end());
    const size_t bound = candidates.size();
    if (auto h = s.held.find(goid); h != s.held.end() && earlier_mark != kNever) {
      for (ContextId id : h->second) {
        if (s.HeldInLastMarks(goid, id)) candidates.push_back(id);
      }
    }
    for (size_t k = 0; k < candidates.size(); ++k) {
      const ContextId id = candidates[k];
      auto [cancelled_at, by] = s.EffectiveCancel(id);
      if (by == nullptr || cancelled_at > ev.settled) continue;
      // Held: both marks read it after the grace period.
      if (k >= bound && cancelled_at + ev.grace > earlier_mark) continue;
      const Ctx* c = s.FindCtx(id);
      Group& gr = ev.group(FindingKind::kIgnoredCancel, c->site);
      if (k >= bound) {
        ++gr.held;
        gr.f.proof_marks = {FromNs(s.fact_marks()[1]), FromNs(s.fact_marks()[0])};
      }
      if (gr.f.related_site == kNoSite) gr.f.related_site = s.OriginCancelSite(by);
      if (gr.doing.empty()) gr.doing = Doing(s, goid, id);
      gr.f.count++;
      gr.AddGoroutine(goid, g.go_site);
      gr.AddTime(cancelled_at);
      gr.AddExample(id, c->ckind());
      ev.used_goroutines.insert(goid);
      ev.used_contexts.insert(id);
      break;
    }
  }
}

std::string ExplainIgnoredCancel(const Evaluation& ev, const Group& gr) {
  const Finding& f = gr.f;
  const int n = gr.goroutine_total;
  const std::string doing = gr.doing.empty()
                                ? "a select without <-ctx.Done()?"
                                : absl::StrCat(n == 1 ? "it is " : "the first is ", gr.doing);
  const std::string how =
      gr.held == 0   ? "started with it"
      : gr.held == n ? absl::StrCat("holding it (", MarksAgo(ev, f), ")")
                     : absl::StrCat("started with it or holding it (", MarksAgo(ev, f), ")");
  return absl::StrFormat(
      "context from %s cancelled %s ago but %d goroutine%s %s %s still running: %s",
      SiteString(ev.sites, f.site), FormatAge(f.newest_age), n, n == 1 ? "" : "s", how,
      n == 1 ? "is" : "are", doing);
}

}  // namespace ctxagent::lineage_internal
