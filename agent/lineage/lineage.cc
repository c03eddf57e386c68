#include "agent/lineage/lineage.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "agent/lineage/lineage_state.h"

namespace ctxagent {

using namespace lineage_internal;  // NOLINT: the lineage's own internals

const char* FindingKindName(FindingKind kind) {
  switch (kind) {
    case FindingKind::kOrphanedDone:
      return "orphaned_done";
    case FindingKind::kLostCancel:
      return "lost_cancel";
    case FindingKind::kBrokenChain:
      return "broken_chain";
    case FindingKind::kIgnoredCancel:
      return "ignored_cancel";
    case FindingKind::kTimerBuildup:
      return "timer_buildup";
    case FindingKind::kGoroutineLeak:
      return "goroutine_leak";
  }
  return "unknown";
}

ProcessLineage::ProcessLineage(int pid) : pid_(pid), state_(std::make_unique<State>()) {}
ProcessLineage::~ProcessLineage() = default;

void ProcessLineage::OnContextCreated(const ContextCreated& e) {
  State& s = *state_;
  s.Invalidate();
  const int64_t now = ToNs(e.time);
  ++s.counters.contexts_created;
  ++s.counters.created_by_kind[static_cast<int>(e.kind)];
  ++s.site_aggs[e.site].created;
  const ContextId id = ++s.next_id;

  Ctx c;
  c.addr = e.addr;
  c.kind = static_cast<uint8_t>(e.kind);
  c.creator_goid = e.goid;
  c.site = e.site;
  c.created = now;
  c.deadline = ToNs(e.deadline);
  if (!e.parents.empty()) c.aux = e.parents.front().data;
  // Nearest tracked cancelable ancestor, through WithValue layers. WithoutCancel cuts propagation,
  // so the chain ends there; a custom Context is a root unless a known ancestor shows up further
  // up.
  RootKind root = RootKind::kCustom;  // a chain cut short: we cannot tell, assume it may cancel
  bool resolved = false;
  for (const ParentLink& link : e.parents) {
    if (link.type == ParentLink::Type::kCancelable) {
      auto it = s.by_addr.find(link.data);
      if (it != s.by_addr.end()) {
        c.parent = it->second;
        resolved = true;
        break;
      }
      c.flags |= kUntrackedLink;
    } else if (link.type == ParentLink::Type::kWithoutCancel) {
      root = RootKind::kWithoutCancel;
      resolved = true;
      break;
    } else if (link.type == ParentLink::Type::kBackground) {
      root = RootKind::kBackground;
      resolved = true;
      break;
    } else if (link.type == ParentLink::Type::kOther) {
      root = RootKind::kCustom;
    }
  }
  // Unresolved, or hanging from a cancelable context made before attach: something may still cancel
  // it, so never treat it as hanging from Background.
  if (!resolved || (c.parent == 0 && (c.flags & kUntrackedLink))) root = RootKind::kCustom;
  c.root = static_cast<uint8_t>(root);

  // The GC reused the address: the old context is unreachable, so no one can cancel it any more.
  auto [ait, fresh] = s.by_addr.try_emplace(e.addr, id);
  if (!fresh) {
    ++s.counters.address_reuses;
    const ContextId old_id = ait->second;
    ait->second = id;
    auto oit = s.contexts.find(old_id);
    if (oit != s.contexts.end()) {
      Ctx& old = oit->second;
      if (old.live()) s.ContextEnded(old_id);
      old.flags |= kGone;
      if (!old.is_cancelled() && old.bound_live == 0 && old.spawn_refs == 0 && old.children == 0) {
        s.Free(oit);
      }
    }
  }
  if (Ctx* p = s.FindCtx(c.parent)) ++p->children;
  s.contexts.emplace(id, c);
  s.ContextLive(id);

  Go& g = s.GetGo(e.goid, e.g, now);
  g.PushRecent(id);
  if (c.parent == 0 && root == RootKind::kBackground) {
    if (g.first_rooted == 0) {
      s.SetFirstRooted(e.goid, g, id);
      g.first_rooted_site = e.site;
    }
    g.last_rooted = id;
  }
}

void ProcessLineage::OnContextCancelled(const ContextCancelled& e) {
  State& s = *state_;
  auto ait = s.by_addr.find(e.addr);
  if (ait == s.by_addr.end()) {
    ++s.counters.unknown_cancels;
    return;
  }
  Ctx* c = s.FindCtx(ait->second);
  if (c == nullptr || c->is_cancelled()) return;  // Go ignores a second cancel too
  s.Invalidate();
  // Another context at its address: the GC freed this one and reused the memory while the probes
  // were detached (its creation unseen). The cancel is not this one's.
  if (e.parent_word != 0 && c->aux != 0 && e.parent_word != c->aux) {
    s.MarkGone(ait->second, *c);
    ++s.counters.unknown_cancels;
    return;
  }
  c->flags |= kCancelled;
  s.ContextEnded(ait->second);
  ++s.site_aggs[c->site].cancelled;
  c->cancelled = ToNs(e.time);
  c->cause = static_cast<uint8_t>(e.cause);
  c->cancel_site = e.site;
  c->aux = e.goid;
  switch (e.cause) {
    case CancelCause::kOwnCancel:
      ++s.counters.cancelled_own;
      break;
    case CancelCause::kDeadline:
      ++s.counters.cancelled_deadline;
      break;
    case CancelCause::kParent:
      // cancelled_by is derived in views (State::CancelledBy): the parent's cancel is seen first,
      // as cancelCtx.cancel enters before it cancels its children.
      ++s.counters.cancelled_parent;
      break;
  }
}

void ProcessLineage::OnGoroutineCreated(const GoroutineCreated& e) {
  State& s = *state_;
  s.Invalidate();
  const int64_t now = ToNs(e.time);
  // goids are not reused: an exited record under this goid means lost events; start afresh.
  if (const Go* stale = s.FindGo(e.goid); stale != nullptr && !stale->alive()) {
    s.goroutines.erase(e.goid);
  }
  Go& g = s.GetGo(e.goid, e.g, now);
  g.parent_goid = e.parent_goid;
  g.started = now;
  g.go_site = e.go_site;
  g.start_function = s.InternFunction(e.start_function);
  g.captured_background = e.captured_background;
  g.before_attach = false;
  if (g.spawner_context == 0) {
    if (Go* spawner = s.FindGo(e.parent_goid)) {
      g.spawner_context = s.Current(*spawner);
      // A spawner that neither made nor captured a context still works under the one it was
      // started under (e.g. `go func() { defer cancel(); handle(ctx) }()` captures through a
      // closure the probe does not follow).
      if (g.spawner_context == 0 && spawner->spawner_context != 0) {
        ContextId id = spawner->spawner_context;
        for (const Ctx* c = s.FindCtx(id); c != nullptr; id = c->parent, c = s.FindCtx(id)) {
          if (c->live()) {
            g.spawner_context = id;
            break;
          }
        }
      }
      if (Ctx* c = s.FindCtx(g.spawner_context)) ++c->spawn_refs;
    }
  }
  for (uint64_t word : e.captured) {
    auto it = s.by_addr.find(word);
    if (it == s.by_addr.end()) continue;
    const ContextId id = it->second;
    if (std::find(g.bound.begin(), g.bound.end(), id) != g.bound.end()) continue;
    g.bound.push_back(id);
    g.PushRecent(id);
    ++s.contexts.find(id)->second.bound_live;
  }
}

void ProcessLineage::Apply(const DecodedEvent& e) {
  struct Visitor {
    ProcessLineage& l;
    void operator()(const ContextCreated& x) { l.OnContextCreated(x); }
    void operator()(const ContextCancelled& x) { l.OnContextCancelled(x); }
    void operator()(const GoroutineCreated& x) { l.OnGoroutineCreated(x); }
    void operator()(const GoroutineExited& x) { l.OnGoroutineExited(x); }
  };
  std::visit(Visitor{*this}, e);
}

void ProcessLineage::OnGoroutineExited(const GoroutineExited& e) {
  State& s = *state_;
  Go* g = s.FindGo(e.goid);
  if (g == nullptr) ++s.counters.unknown_exits;
  if (g == nullptr || !g->alive()) return;
  s.Invalidate();
  s.Exit(e.goid, *g, ToNs(e.time));
}

void ProcessLineage::OnEventsLost() {
  State& s = *state_;
  s.Invalidate();
  ++s.counters.loss_episodes;
  for (auto& [id, c] : s.contexts) {
    if (c.live()) c.flags |= kUncertain;
  }
  for (auto& [goid, g] : s.goroutines) {
    if (g.alive()) g.uncertain = true;
  }
}

void ProcessLineage::OnProbesPaused() {
  State& s = *state_;
  s.Invalidate();
  ++s.counters.pauses;
  for (auto& [id, c] : s.contexts) {
    if (c.live()) c.flags |= kUnobserved;
  }
  // Ended contexts' addresses may be reused unseen while detached: a later window must not take a
  // new context there for them (a child would hang under a cancelled parent).
  absl::erase_if(s.by_addr, [&](const auto& kv) {
    const Ctx* c = s.FindCtx(kv.second);
    return c == nullptr || !c->live();
  });
  for (auto& [goid, g] : s.goroutines) {
    if (g.alive()) g.unobserved = true;
  }
}

void ProcessLineage::Collect(absl::Time now_time, const FindingOptions& options) {
  State& s = *state_;
  s.Invalidate();
  // Keep finished nodes one more grace period after they could last have been reported.
  const int64_t before = ToNs(now_time) - 2 * Ns(options.grace);
  for (auto it = s.contexts.begin(); it != s.contexts.end();) {
    const Ctx& c = it->second;
    const bool finished = c.is_cancelled() ? c.cancelled <= before : c.gone();
    if (finished && c.bound_live == 0 && c.spawn_refs == 0 &&
        (c.children == 0 || c.is_cancelled())) {
      s.Free(it++);
    } else {
      ++it;
    }
  }
  absl::erase_if(s.goroutines, [&](const auto& kv) { return kv.second.exited <= before; });
}

namespace {

void FillContextView(ContextId id, const Ctx& c, ContextId cancelled_by,
                     const std::vector<ContextId>* children, ContextNode& n) {
  n.id = id;
  n.addr = c.addr;
  n.kind = c.ckind();
  n.parent = c.parent;
  n.root = c.rkind();
  n.creator_goid = c.creator_goid;
  n.site = c.site;
  n.created = FromNs(c.created);
  n.deadline = FromNs(c.deadline);
  n.cancelled.reset();
  if (c.is_cancelled()) n.cancelled = FromNs(c.cancelled);
  n.cause = static_cast<CancelCause>(c.cause);
  n.cancelled_by = cancelled_by;
  n.cancel_site = c.cancel_site;
  n.cancel_goid = c.is_cancelled() ? c.aux : 0;
  n.children.clear();
  if (children != nullptr) n.children = *children;
}

}  // namespace

const ContextNode* ProcessLineage::FindContext(ContextId id) const {
  State& s = *state_;
  const Ctx* c = s.FindCtx(id);
  if (c == nullptr) return nullptr;
  s.EnsureChildrenIndex();
  auto& view = s.context_views[id];
  if (view == nullptr) {
    view = std::make_unique<ContextNode>();
    auto it = s.children_index.find(id);
    FillContextView(id, *c, s.CancelledBy(*c), it == s.children_index.end() ? nullptr : &it->second,
                    *view);
  }
  return view.get();
}

void State::FillGoroutineView(uint64_t goid, const Go& g, GoroutineNode& n) {
  n.goid = goid;
  n.parent_goid = g.parent_goid;
  n.go_site = g.go_site;
  n.start_function = functions[g.start_function];
  n.started = FromNs(g.started);
  n.exited.reset();
  if (!g.alive()) n.exited = FromNs(g.exited);
  n.bound.assign(g.bound.begin(), g.bound.end());
  n.spawner_context = g.spawner_context;
  n.rooted.clear();
  for (ContextId id : {g.first_rooted, g.last_rooted}) {
    if (id != 0 && FindCtx(id) != nullptr &&
        std::find(n.rooted.begin(), n.rooted.end(), id) == n.rooted.end()) {
      n.rooted.push_back(id);
    }
  }
  n.before_attach = g.before_attach;
  n.captured_background = g.captured_background;
  FillStateView(goid, n);
}

void State::FillStateView(uint64_t goid, GoroutineNode& n) const {
  n.state = StateOf(goid);
  n.parked_on.clear();
  if (n.state == nullptr) return;
  for (const auto& [id, goids] : parked) {
    if (std::binary_search(goids.begin(), goids.end(), goid)) n.parked_on.push_back(id);
  }
  std::sort(n.parked_on.begin(), n.parked_on.end());
}

const GoroutineNode* ProcessLineage::FindGoroutine(uint64_t goid) const {
  State& s = *state_;
  const Go* g = s.FindGo(goid);
  if (g == nullptr) return nullptr;
  s.cached = true;
  auto& view = s.goroutine_views[goid];
  if (view == nullptr) {
    view = std::make_unique<GoroutineNode>();
    s.FillGoroutineView(goid, *g, *view);
  }
  return view.get();
}

ContextId ProcessLineage::ContextAt(uint64_t addr) const {
  auto it = state_->by_addr.find(addr);
  return it == state_->by_addr.end() ? 0 : it->second;
}

// Views are built one at a time on the stack: iterating a large tree must not cache every node.
void ProcessLineage::ForEachContext(const std::function<void(const ContextNode&)>& fn) const {
  State& s = *state_;
  s.EnsureChildrenIndex();
  std::vector<ContextId> ids;
  ids.reserve(s.contexts.size());
  for (const auto& [id, c] : s.contexts) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ContextNode view;
  for (ContextId id : ids) {
    auto it = s.children_index.find(id);
    const Ctx& c = s.contexts.find(id)->second;
    FillContextView(id, c, s.CancelledBy(c), it == s.children_index.end() ? nullptr : &it->second,
                    view);
    fn(view);
  }
}

void ProcessLineage::ForEachGoroutine(const std::function<void(const GoroutineNode&)>& fn) const {
  State& s = *state_;
  std::vector<uint64_t> goids;
  goids.reserve(s.goroutines.size());
  for (const auto& [goid, g] : s.goroutines) goids.push_back(goid);
  std::sort(goids.begin(), goids.end());
  GoroutineNode view;
  for (uint64_t goid : goids) {
    s.FillGoroutineView(goid, s.goroutines.find(goid)->second, view);
    fn(view);
  }
}

void ProcessLineage::ForEachGoroutineState(
    const std::function<void(const GoroutineState&, const GoroutineNode*)>& fn) const {
  State& s = *state_;
  GoroutineNode view;
  for (const GoroutineState& st : s.states) {
    const Go* g = s.FindGo(st.goid);
    if (g != nullptr) s.FillGoroutineView(st.goid, *g, view);
    fn(st, g != nullptr ? &view : nullptr);
  }
}

std::vector<SiteCount> ProcessLineage::SiteCounts() const {
  std::vector<SiteCount> out;
  for (const auto& [site, agg] : state_->site_aggs) {
    if (agg.created > 0) out.push_back({site, agg.created, agg.cancelled});
  }
  std::sort(out.begin(), out.end(),
            [](const SiteCount& a, const SiteCount& b) { return a.created > b.created; });
  return out;
}

size_t ProcessLineage::tracked_contexts() const { return state_->contexts.size(); }

uint64_t ProcessLineage::LiveFingerprint() const { return state_->live_sum; }

LineageStats ProcessLineage::stats() const {
  LineageStats st = state_->counters;
  st.live_contexts = state_->live_contexts;
  st.tracked_contexts = state_->contexts.size();
  st.live_goroutines = state_->live_goroutines;
  return st;
}

}  // namespace ctxagent
