// ProcessLineage::Reconcile: what the target's memory says about nodes live at a pause.
#include "agent/lineage/lineage_state.h"

namespace ctxagent {

using namespace lineage_internal;  // NOLINT: the lineage's own internals

void ProcessLineage::Reconcile(absl::Time now_time, LivenessOracle& oracle) {
  State& s = *state_;
  const int64_t now = ToNs(now_time);
  std::vector<ContextId> ids;
  std::vector<LivenessOracle::ContextQuery> context_queries;
  for (const auto& [id, c] : s.contexts()) {
    if (c.live() && (c.flags & kUnobserved) && !(c.flags & kUncertain)) {
      ids.push_back(id);
      context_queries.push_back({c.addr, c.ckind(), c.parent_word()});
    }
  }
  const size_t live_queries = ids.size();
  for (ContextId id : s.kept()) {
    const Ctx* c = s.FindCtx(id);
    ids.push_back(id);
    context_queries.push_back({c->addr, c->ckind(), 0});
  }
  std::vector<uint64_t> goids;
  std::vector<LivenessOracle::GoroutineQuery> goroutine_queries;
  std::vector<uint64_t> unreadable;  // no probe named its runtime.g: nothing to read
  for (const auto& [goid, g] : s.goroutines()) {
    if (!g.alive() || !g.unobserved || g.uncertain) continue;
    if (g.g == 0) {
      unreadable.push_back(goid);
      continue;
    }
    goids.push_back(goid);
    goroutine_queries.push_back({goid, g.g});
  }
  for (uint64_t goid : unreadable) s.MakeGoroutineUncertain(goid);
  if (ids.empty() && goids.empty()) return;
  using St = LivenessOracle::State;
  const std::vector<St> contexts = oracle.Contexts(context_queries);
  const size_t answered = std::min(ids.size(), contexts.size());
  const size_t live_answered = std::min(answered, live_queries);
  absl::flat_hash_set<ContextId> ended;
  for (size_t i = 0; i < live_answered; ++i) {
    if (contexts[i] == St::kEnded) ended.insert(ids[i]);
  }
  // A kept address that holds no cancelled context any more: the GC freed ours.
  for (size_t i = live_queries; i < answered; ++i) {
    if (contexts[i] != St::kEnded) s.ContextGone(ids[i]);
  }
  // A cancelled ancestor, or one found cancelled too, explains its descendants.
  auto cause_of = [&](const Ctx& c) {
    if (c.deadline <= now) return CancelCause::kDeadline;
    for (ContextId id = c.parent; const Ctx* a = s.FindCtx(id); id = a->parent) {
      if (a->is_cancelled() || ended.contains(id)) return CancelCause::kParent;
    }
    return CancelCause::kOwnCancel;
  };
  for (size_t i = 0; i < live_answered; ++i) {
    switch (contexts[i]) {
      case St::kLive:
        break;
      case St::kEnded:
        s.CancelContext(ids[i], now, cause_of(*s.FindCtx(ids[i])), kNoSite, 0, Seen::kInMemory);
        break;
      case St::kGone:  // unreachable: no one can cancel it any more, as with a reused address
        s.ContextGone(ids[i]);
        break;
      case St::kUnknown:
        s.MakeUncertain(ids[i]);
        break;
    }
  }
  const std::vector<St> goroutines = oracle.Goroutines(goroutine_queries);
  for (size_t i = 0; i < goids.size() && i < goroutines.size(); ++i) {
    if (goroutines[i] == St::kEnded || goroutines[i] == St::kGone) {
      s.ExitGoroutine(goids[i], now, Seen::kInMemory);
    } else if (goroutines[i] == St::kUnknown) {
      s.MakeGoroutineUncertain(goids[i]);
    }
  }
}

}  // namespace ctxagent
