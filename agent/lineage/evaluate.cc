// ProcessLineage::Evaluate: the findings, most specific first (finding_*.cc), then their
// explanations; and what the goroutines are doing, read from memory before it.
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "agent/lineage/lineage_state.h"

namespace ctxagent {

using namespace lineage_internal;  // NOLINT: the lineage's own internals

std::vector<Finding> ProcessLineage::Evaluate(absl::Time now_time, const FindingOptions& options) {
  State& s = *state_;
  Evaluation ev{s, sites_, options};
  ev.now = ToNs(now_time);
  ev.grace = Ns(options.grace);
  ev.settled = ev.now - ev.grace;
  ev.leak_before = ev.now - Ns(options.leak_after);
  for (const auto& [goid, g] : s.goroutines()) {
    if (g.alive() && !g.uncertain) ev.live.push_back(goid);
  }
  std::sort(ev.live.begin(), ev.live.end());

  FindBrokenChains(ev);
  FindOrphanedDone(ev);
  FindIgnoredCancels(ev);
  FindLostCancels(ev);

  // In a stable order: by kind, then site.
  std::sort(ev.order.begin(), ev.order.end());
  std::vector<Finding> out;
  out.reserve(ev.order.size());
  for (const auto& key : ev.order) {
    Group& gr = ev.groups[key];
    Finding& f = gr.f;
    if (gr.oldest != kNever) {
      f.oldest_age = now_time - FromNs(gr.oldest);
      f.newest_age = now_time - FromNs(gr.newest);
    }
    switch (f.kind) {
      case FindingKind::kOrphanedDone:
        f.explanation = ExplainOrphanedDone(ev, gr);
        break;
      case FindingKind::kLostCancel:
        f.explanation = ExplainLostCancel(ev, gr);
        break;
      case FindingKind::kBrokenChain:
        f.explanation = ExplainBrokenChain(ev, gr);
        break;
      case FindingKind::kIgnoredCancel:
        f.explanation = ExplainIgnoredCancel(ev, gr);
        break;
      case FindingKind::kTimerBuildup:
        f.explanation = ExplainTimerBuildup(ev, gr);
        break;
      case FindingKind::kGoroutineLeak:  // not the lineage's: agent/heap
        break;
    }
    f.parked = gr.parked;
    out.push_back(std::move(f));
  }
  return out;
}

bool ProcessLineage::ObserveGoroutines(absl::Time now_time, GoroutineStateReader& reader) {
  State& s = *state_;
  s.Invalidate();
  const int64_t now = ToNs(now_time);
  const bool first = !s.observed;
  s.observed = true;
  // Kept as read, a vector in goid order: a table built at every read (100k states of ~150 bytes
  // in fresh memory) was most of the cost of a read of a large process.
  const std::vector<GoroutineState> old_states = std::move(s.states);
  const auto old_parked = std::move(s.parked);
  s.states = reader.ReadAll();
  s.states.erase(std::remove_if(s.states.begin(), s.states.end(),
                                [](const GoroutineState& st) { return !st.known || st.system; }),
                 s.states.end());
  auto by_goid = [](const GoroutineState& a, const GoroutineState& b) { return a.goid < b.goid; };
  if (!std::is_sorted(s.states.begin(), s.states.end(), by_goid)) {
    std::sort(s.states.begin(), s.states.end(), by_goid);
  }
  // At the first look every goroutine predates the probes: it joins the tree from memory.
  if (first) {
    for (const GoroutineState& st : s.states) s.AddGoroutineFromMemory(st, now);
  }
  // Done channels of the contexts that can be waited on: a channel stays the same for the
  // context's life, and outlives it while goroutines are parked on it.
  std::vector<ContextId> ids;
  std::vector<GoroutineStateReader::ContextQuery> queries;
  for (const auto& [id, c] : s.contexts()) {
    if (!c.live() || (c.flags & kUncertain)) continue;
    if (auto d = s.done_channels.find(id); d != s.done_channels.end() && d->second != 0) continue;
    ids.push_back(id);
    queries.push_back({c.addr, c.ckind()});
  }
  const std::vector<uint64_t> done = reader.DoneChannels(queries);
  absl::flat_hash_set<ContextId> fresh;
  for (size_t i = 0; i < ids.size() && i < done.size(); ++i) {
    if (done[i] != 0) {
      s.done_channels[ids[i]] = done[i];
      fresh.insert(ids[i]);
    }
  }
  absl::erase_if(s.done_channels, [&](const auto& kv) { return s.FindCtx(kv.first) == nullptr; });
  absl::flat_hash_map<uint64_t, ContextId> by_channel;
  for (const auto& [id, chan] : s.done_channels) by_channel.emplace(chan, id);
  s.parked.clear();
  for (const GoroutineState& st : s.states) {
    if (!st.waiting) continue;
    for (uint64_t chan : st.channels) {
      if (auto it = by_channel.find(chan); it != by_channel.end())
        s.parked[it->second].push_back(st.goid);
    }
  }
  // A channel remembered from an earlier look names its context only while that context still
  // holds it, or for a goroutine parked on it since a look that matched them (a channel with a
  // goroutine parked on it is not freed). A context freed unseen (never cancelled, collected by the
  // GC) leaves its channel to be freed and reused, and a goroutine parking there later waits on
  // another context. Checked again for the contexts waiters were matched to, which are few.
  std::vector<ContextId> recheck;
  queries.clear();
  for (const auto& [id, goids] : s.parked) {
    if (fresh.contains(id)) continue;
    const Ctx& c = *s.FindCtx(id);
    recheck.push_back(id);
    queries.push_back({c.addr, c.ckind()});
  }
  const std::vector<uint64_t> still = reader.DoneChannels(queries);
  for (size_t i = 0; i < recheck.size(); ++i) {
    if (i < still.size() && still[i] == s.done_channels[recheck[i]]) continue;
    std::vector<uint64_t>& goids = s.parked[recheck[i]];
    auto before = old_parked.find(recheck[i]);
    goids.erase(std::remove_if(goids.begin(), goids.end(),
                               [&](uint64_t goid) {
                                 return before == old_parked.end() ||
                                        std::find(before->second.begin(), before->second.end(),
                                                  goid) == before->second.end();
                               }),
                goids.end());
    if (goids.empty()) s.parked.erase(recheck[i]);
  }
  for (auto& [id, goids] : s.parked) std::sort(goids.begin(), goids.end());
  if (first || s.parked != old_parked || s.states.size() != old_states.size()) return true;
  // Both in goid order and of one size: a goroutine come or gone shows as a different goid.
  for (size_t i = 0; i < s.states.size(); ++i) {
    const GoroutineState& a = s.states[i];
    const GoroutineState& b = old_states[i];
    if (a.goid != b.goid || a.state != b.state || a.waiting_since != b.waiting_since) return true;
  }
  return false;
}

}  // namespace ctxagent
