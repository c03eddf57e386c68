// ProcessLineage::Reconcile: what the target's memory says about nodes live at a pause.
#include "agent/lineage/lineage_state.h"

namespace ctxagent {

using namespace lineage_internal;  // NOLINT: the lineage's own internals

void ProcessLineage::Reconcile(absl::Time now_time, LivenessOracle& oracle) {
  State& s = *state_;
  const int64_t now = ToNs(now_time);
  std::vector<ContextId> ids;
  std::vector<LivenessOracle::ContextQuery> context_queries;
  for (const auto& [id, c] : s.contexts) {
    if (c.live() && (c.flags & kUnobserved) && !(c.flags & kUncertain)) {
      ids.push_back(id);
      context_queries.push_back({c.addr, c.ckind(), c.aux});
    }
  }
  std::vector<uint64_t> goids;
  std::vector<LivenessOracle::GoroutineQuery> goroutine_queries;
  for (auto& [goid, g] : s.goroutines) {
    if (!g.alive() || !g.unobserved || g.uncertain) continue;
    if (g.g == 0) {
      g.uncertain = true;  // no probe named its runtime.g: nothing to read
      s.Invalidate();
      continue;
    }
    goids.push_back(goid);
    goroutine_queries.push_back({goid, g.g});
  }
  if (ids.empty() && goids.empty()) return;
  s.Invalidate();
  using St = LivenessOracle::State;
  const std::vector<St> contexts = oracle.Contexts(context_queries);
  std::vector<Ctx*> cancelled;
  for (size_t i = 0; i < ids.size() && i < contexts.size(); ++i) {
    Ctx& c = s.contexts.find(ids[i])->second;
    if (contexts[i] == St::kEnded) {
      auto a = s.by_addr.find(c.addr);  // its address may be reused unseen from now on
      if (a != s.by_addr.end() && a->second == ids[i]) s.by_addr.erase(a);
    }
    switch (contexts[i]) {
      case St::kLive:
        break;
      case St::kEnded:
        c.flags |= kCancelled;
        c.cancelled = now;
        c.aux = 0;
        s.ContextEnded(ids[i]);
        ++s.site_aggs[c.site].cancelled;
        ++s.counters.inferred_cancels;
        cancelled.push_back(&c);
        break;
      case St::kGone:  // unreachable: no one can cancel it any more, as with a reused address
        s.MarkGone(ids[i], c);
        break;
      case St::kUnknown:
        c.flags |= kUncertain;
        break;
    }
  }
  // Causes once every cancel is marked: an ancestor found cancelled too explains its descendants.
  for (Ctx* c : cancelled) {
    CancelCause cause = CancelCause::kOwnCancel;
    if (c->deadline <= now) {
      cause = CancelCause::kDeadline;
    } else if (s.EffectiveCancel(c->parent).second != nullptr) {
      cause = CancelCause::kParent;
    }
    c->cause = static_cast<uint8_t>(cause);
  }
  const std::vector<St> goroutines = oracle.Goroutines(goroutine_queries);
  for (size_t i = 0; i < goids.size() && i < goroutines.size(); ++i) {
    Go& g = s.goroutines.find(goids[i])->second;
    if (goroutines[i] == St::kEnded || goroutines[i] == St::kGone) {
      s.Exit(goids[i], g, now);
      ++s.counters.inferred_exits;
    } else if (goroutines[i] == St::kUnknown) {
      g.uncertain = true;
    }
  }
}

}  // namespace ctxagent
