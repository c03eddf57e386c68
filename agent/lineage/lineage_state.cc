#include "agent/lineage/lineage_state.h"

namespace ctxagent::lineage_internal {

static_assert(sizeof(Ctx) == 80, "a tracked context's size is budgeted (bench/README.md)");

namespace {

// splitmix64's finalizer (Mix(0) == 0).
uint64_t Mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
// A live goroutine's term: its first context rooted at Background is part of it (broken chains
// need it, and it can come and go while the goroutine runs on). Contexts and goroutines apart.
uint64_t GoTerm(uint64_t goid, const Go& g) { return Mix(2 * goid + 1) ^ Mix(g.first_rooted); }
uint64_t CtxTerm(ContextId id) { return Mix(2 * id); }

}  // namespace

void State::ResolveParent(const ContextCreated& e, Ctx& c) const {
  // Nearest tracked cancelable ancestor, through WithValue layers. WithoutCancel cuts propagation,
  // so the chain ends there; a custom Context is a root unless a cancelable ancestor shows up
  // further up (one over Background may have a Done of its own).
  RootKind root = RootKind::kCustom;  // a chain cut short: we cannot tell, assume it may cancel
  bool resolved = false;
  bool custom = false;  // a custom Context below what the chain reached: it may cancel
  for (const ParentLink& link : e.parents) {
    if (link.type == ParentLink::Type::kCancelable) {
      if (const ContextId parent = ContextAt(link.data); parent != 0 && !kept_.contains(parent)) {
        c.parent = parent;
        resolved = true;
        break;
      }
      c.flags |= kUntrackedLink;
    } else if (link.type == ParentLink::Type::kWithoutCancel) {
      root = custom ? RootKind::kCustom : RootKind::kWithoutCancel;
      resolved = true;
      break;
    } else if (link.type == ParentLink::Type::kBackground) {
      root = custom ? RootKind::kCustom : RootKind::kBackground;
      resolved = true;
      break;
    } else if (link.type == ParentLink::Type::kOther) {
      custom = true;
    }
  }
  // Unresolved, or hanging from a cancelable context made before attach: something may still cancel
  // it, so never treat it as hanging from Background.
  if (!resolved || (c.parent == 0 && (c.flags & kUntrackedLink))) root = RootKind::kCustom;
  c.root = static_cast<uint8_t>(root);
}

void State::CreateContext(const ContextCreated& e) {
  Invalidate();
  const int64_t now = ToNs(e.time);
  ++counters_.contexts_created;
  ++counters_.created_by_kind[static_cast<int>(e.kind)];
  SiteCount& count = site_counts_[e.site];
  count.site = e.site;
  ++count.created;
  const ContextId id = ++next_id_;

  Ctx c;
  c.addr = e.addr;
  c.kind = static_cast<uint8_t>(e.kind);
  c.creator_goid = e.goid;
  c.site = e.site;
  c.created = now;
  c.deadline = ToNs(e.deadline);
  if (!e.parents.empty()) c.word_ = e.parents.front().data;
  ResolveParent(e, c);

  // The GC reused the address: the old context is unreachable, so no one can cancel it any more.
  if (const ContextId old_id = ContextAt(e.addr); old_id != 0) {
    ++counters_.address_reuses;
    ContextGone(old_id);
    auto oit = contexts_.find(old_id);
    if (oit != contexts_.end()) {
      const Ctx& old = oit->second;
      if (!old.is_cancelled() && old.bound_live == 0 && old.spawn_refs == 0 && old.children == 0) {
        Free(oit);
      }
    }
  }
  by_addr_[e.addr] = id;
  if (Ctx* p = MutableCtx(c.parent)) ++p->children;
  contexts_.emplace(id, c);
  ++live_contexts_;
  live_sum_ += CtxTerm(id);

  Go& g = GetGo(e.goid, e.g, now);
  g.PushRecent(id);
  // A new root: at Background/TODO, or below a WithoutCancel link (cancellation cannot cross it).
  if (c.parent == 0 &&
      (c.rkind() == RootKind::kBackground || c.rkind() == RootKind::kWithoutCancel)) {
    if (g.first_rooted == 0) {
      SetFirstRooted(e.goid, g, id);
      g.first_rooted_site = e.site;
    }
    g.last_rooted = id;
  }
}

void State::OnCancelEvent(const ContextCancelled& e) {
  const ContextId id = ContextAt(e.addr);
  if (id == 0) {
    ++counters_.unknown_cancels;
    return;
  }
  const Ctx* c = FindCtx(id);
  if (c == nullptr || c->is_cancelled()) return;
  // Another context at its address: the GC freed this one and reused the memory while the probes
  // were detached (its creation unseen). The cancel is not this one's.
  if (e.parent_word != 0 && c->parent_word() != 0 && e.parent_word != c->parent_word()) {
    ContextGone(id);
    ++counters_.unknown_cancels;
    return;
  }
  CancelContext(id, ToNs(e.time), e.cause, e.site, e.goid, Seen::kByProbe);
}

void State::CancelContext(ContextId id, int64_t when, CancelCause cause, SiteId site, uint64_t goid,
                          Seen seen) {
  Ctx* c = MutableCtx(id);
  if (c == nullptr || c->is_cancelled()) return;
  Invalidate();
  if (seen == Seen::kInMemory) {
    // Its address may be reused unseen from now on.
    if (auto a = by_addr_.find(c->addr); a != by_addr_.end() && a->second == id) by_addr_.erase(a);
    ++counters_.inferred_cancels;
  } else if (cause == CancelCause::kOwnCancel) {
    ++counters_.cancelled_own;
  } else if (cause == CancelCause::kDeadline) {
    ++counters_.cancelled_deadline;
  } else {
    // cancelled_by is derived in views (CancelledBy): the parent's cancel is seen first, as
    // cancelCtx.cancel enters before it cancels its children.
    ++counters_.cancelled_parent;
  }
  if (c->live()) ContextEnded(id);
  c->flags |= kCancelled;
  ++site_counts_[c->site].cancelled;
  c->cancelled = when;
  c->cause = static_cast<uint8_t>(cause);
  c->cancel_site = site;
  c->word_ = goid;
}

void State::ContextGone(ContextId id) {
  Ctx* c = MutableCtx(id);
  if (c == nullptr) return;
  Invalidate();
  if (auto a = by_addr_.find(c->addr); a != by_addr_.end() && a->second == id) by_addr_.erase(a);
  kept_.erase(id);
  if (c->live()) ContextEnded(id);
  c->flags |= kGone;
}

void State::StartGoroutine(const GoroutineCreated& e) {
  Invalidate();
  const int64_t now = ToNs(e.time);
  // goids are not reused: an exited record under this goid means lost events; start afresh.
  if (const Go* stale = FindGo(e.goid); stale != nullptr && !stale->alive()) {
    goroutines_.erase(e.goid);
  }
  Go& g = GetGo(e.goid, e.g, now);
  g.parent_goid = e.parent_goid;
  g.started = now;
  g.go_site = e.go_site;
  g.start_function = InternFunction(e.start_function);
  g.captured_uncancelable = e.captured_uncancelable;
  g.before_attach = false;
  if (e.exit_unseen) g.unobserved = true;
  if (g.spawner_context == 0) {
    if (const Go* spawner = FindGo(e.parent_goid)) {
      g.spawner_context = Current(*spawner);
      // A spawner that neither made nor captured a context still works under the one it was
      // started under (e.g. `go func() { defer cancel(); handle(ctx) }()` captures through a
      // closure the probe does not follow).
      if (g.spawner_context == 0 && spawner->spawner_context != 0) {
        ContextId id = spawner->spawner_context;
        for (const Ctx* c = FindCtx(id); c != nullptr; id = c->parent, c = FindCtx(id)) {
          if (c->live()) {
            g.spawner_context = id;
            break;
          }
        }
      }
      if (Ctx* c = MutableCtx(g.spawner_context)) ++c->spawn_refs;
    }
  }
  for (uint64_t word : e.captured) {
    const ContextId id = ContextAt(word);
    if (id == 0 || std::find(g.bound.begin(), g.bound.end(), id) != g.bound.end()) continue;
    g.bound.push_back(id);
    g.PushRecent(id);
    ++MutableCtx(id)->bound_live;
  }
}

void State::AddGoroutineFromMemory(const GoroutineState& st, int64_t now) {
  if (goroutines_.contains(st.goid)) return;
  Invalidate();
  Go& g = GetGo(st.goid, st.g, now);
  g.before_attach = true;
  g.parent_goid = st.parent_goid;
  g.go_site = st.go_site;
  g.start_function = InternFunction(st.start_function);
}

void State::OnExitEvent(const GoroutineExited& e) {
  if (FindGo(e.goid) == nullptr) {
    ++counters_.unknown_exits;
    return;
  }
  ExitGoroutine(e.goid, ToNs(e.time), Seen::kByProbe);
}

void State::ExitGoroutine(uint64_t goid, int64_t when, Seen seen) {
  auto it = goroutines_.find(goid);
  if (it == goroutines_.end() || !it->second.alive()) return;
  Invalidate();
  Go& g = it->second;
  if (seen == Seen::kInMemory) ++counters_.inferred_exits;
  live_sum_ -= GoTerm(goid, g);
  g.exited = when;
  --live_goroutines_;
  for (ContextId id : g.bound) {
    if (Ctx* c = MutableCtx(id); c != nullptr && c->bound_live > 0) --c->bound_live;
  }
  if (Ctx* c = MutableCtx(g.spawner_context); c != nullptr && c->spawn_refs > 0) --c->spawn_refs;
}

void State::Collect(int64_t before) {
  Invalidate();
  // A context a goroutine held in the last mark may be what it ignores.
  absl::flat_hash_set<ContextId> in_use;
  for (const auto& [goid, ids] : held) in_use.insert(ids.begin(), ids.end());
  for (auto it = contexts_.begin(); it != contexts_.end();) {
    const Ctx& c = it->second;
    const bool finished = c.is_cancelled() ? c.cancelled <= before : c.gone();
    if (finished && c.bound_live == 0 && c.spawn_refs == 0 &&
        (c.children == 0 || c.is_cancelled()) && !in_use.contains(it->first)) {
      Free(it++);
    } else {
      ++it;
    }
  }
  absl::erase_if(goroutines_, [&](const auto& kv) { return kv.second.exited <= before; });
}

void State::EventsLost() {
  Invalidate();
  ++counters_.loss_episodes;
  for (auto& [id, c] : contexts_) {
    if (c.live()) c.flags |= kUncertain;
  }
  for (auto& [goid, g] : goroutines_) {
    if (g.alive()) g.uncertain = true;
  }
}

void State::ProbesPaused() {
  Invalidate();
  ++counters_.pauses;
  for (auto& [id, c] : contexts_) {
    if (c.live()) c.flags |= kUnobserved;
  }
  // Ended contexts' addresses may be reused unseen while detached: a later window must not take a
  // new context there for them (a child would hang under a cancelled parent). Cancelled ones are
  // kept (see kept()): a goroutine may hold them, which the marks ask about by address.
  absl::erase_if(by_addr_, [&](const auto& kv) {
    const Ctx* c = FindCtx(kv.second);
    if (c != nullptr && c->is_cancelled() && !c->gone()) {
      kept_.insert(kv.second);
      return false;
    }
    return c == nullptr || !c->live();
  });
  for (auto& [goid, g] : goroutines_) {
    if (g.alive()) g.unobserved = true;
  }
}

void State::MakeUncertain(ContextId id) {
  if (Ctx* c = MutableCtx(id)) {
    Invalidate();
    c->flags |= kUncertain;
  }
}

void State::MakeGoroutineUncertain(uint64_t goid) {
  if (auto it = goroutines_.find(goid); it != goroutines_.end()) {
    Invalidate();
    it->second.uncertain = true;
  }
}

Go& State::GetGo(uint64_t goid, uint64_t g, int64_t now) {
  auto [it, inserted] = goroutines_.try_emplace(goid);
  if (inserted) {
    it->second.started = now;
    ++counters_.goroutines_seen;
    ++live_goroutines_;
    live_sum_ += GoTerm(goid, it->second);
  }
  if (g != 0) it->second.g = g;
  return it->second;
}

std::vector<uint64_t> State::TrackedAddresses() const {
  std::vector<uint64_t> out;
  out.reserve(by_addr_.size());
  for (const auto& [addr, id] : by_addr_) out.push_back(addr);
  std::sort(out.begin(), out.end());
  return out;
}

bool State::HeldInLastMarks(uint64_t goid, ContextId id) const {
  auto in = [&](const absl::flat_hash_map<uint64_t, absl::InlinedVector<ContextId, 2>>& m) {
    auto it = m.find(goid);
    return it != m.end() && std::find(it->second.begin(), it->second.end(), id) != it->second.end();
  };
  return in(held) && in(held_before);
}

bool State::HoldsUnder(uint64_t goid, ContextId ancestor) const {
  auto h = held.find(goid);
  if (h == held.end()) return false;
  for (ContextId id : h->second) {
    if (!HeldInLastMarks(goid, id)) continue;
    const Ctx* c = FindCtx(id);
    for (int depth = 0; c != nullptr && depth < 64; ++depth, c = FindCtx(c->parent)) {
      if (id == ancestor) return true;
      id = c->parent;
    }
  }
  return false;
}

bool State::ObserveMark(int64_t when, const std::vector<uint64_t>& addrs,
                        const std::vector<uint8_t>& facts,
                        const std::vector<std::pair<uint64_t, uint32_t>>& holds) {
  bool changed = false;
  for (size_t i = 0; i < addrs.size() && i < facts.size(); ++i) {
    Ctx* c = MutableCtx(ContextAt(addrs[i]));
    if (c == nullptr || !c->live()) continue;
    const uint8_t before = c->flags;
    const bool unheld = !(facts[i] & kCancelHeld);
    const bool lost = unheld && (c->flags & kCancelUnheld);
    c->flags &= ~(kCancelUnheld | kCancelLost | kReached);
    if (unheld) c->flags |= kCancelUnheld;
    if (lost) c->flags |= kCancelLost;
    if (facts[i] & kContextReached) c->flags |= kReached;
    changed |= (before ^ c->flags) & (kCancelLost | kReached);
  }
  held_before = std::exchange(held, {});
  for (const auto& [goid, i] : holds) {
    if (i >= addrs.size()) continue;
    if (const ContextId id = ContextAt(addrs[i]); id != 0) held[goid].push_back(id);
  }
  changed |= held != held_before;
  fact_marks_ = {when, fact_marks_[0]};
  if (changed) Invalidate();
  return changed;
}

void State::MarksStopped() {
  fact_marks_ = {kNever, kNever};
  held.clear();
  held_before.clear();
  for (auto& [id, c] : contexts_) c.flags &= ~(kCancelUnheld | kCancelLost | kReached);
  Invalidate();
}

void State::ContextEnded(ContextId id) {
  --live_contexts_;
  live_sum_ -= CtxTerm(id);
}

void State::SetFirstRooted(uint64_t goid, Go& g, ContextId id) {
  if (g.alive()) live_sum_ -= GoTerm(goid, g);
  g.first_rooted = id;
  if (g.alive()) live_sum_ += GoTerm(goid, g);
}

void State::Free(absl::flat_hash_map<ContextId, Ctx>::iterator it) {
  const Ctx& c = it->second;
  if (auto a = by_addr_.find(c.addr); a != by_addr_.end() && a->second == it->first) {
    by_addr_.erase(a);
  }
  if (Ctx* p = MutableCtx(c.parent); p != nullptr && p->children > 0) --p->children;
  if (c.live()) ContextEnded(it->first);
  kept_.erase(it->first);
  ++counters_.freed_contexts;
  contexts_.erase(it);
}

uint32_t State::InternFunction(const std::string& name) {
  auto [it, inserted] = function_index_.try_emplace(name, static_cast<uint32_t>(functions_.size()));
  if (inserted) functions_.push_back(name);
  return it->second;
}

ContextId State::Current(const Go& g) const {
  for (ContextId id : g.recent) {
    for (const Ctx* c = FindCtx(id); c != nullptr; c = FindCtx(c->parent)) {
      if (c->live()) return id;
      id = c->parent;
    }
  }
  return 0;
}

std::pair<int64_t, const Ctx*> State::EffectiveCancel(ContextId id) const {
  for (const Ctx* c = FindCtx(id); c != nullptr; c = FindCtx(c->parent)) {
    if (c->is_cancelled()) return {c->cancelled, c};
  }
  return {kNever, nullptr};
}

ContextId State::CancelledBy(const Ctx& c) const {
  if (!c.is_cancelled() || static_cast<CancelCause>(c.cause) != CancelCause::kParent) return 0;
  ContextId id = c.parent;
  for (const Ctx* a = FindCtx(id); a != nullptr; id = a->parent, a = FindCtx(id)) {
    if (a->is_cancelled() && a->cancelled <= c.cancelled) return id;
  }
  return 0;
}

SiteId State::OriginCancelSite(const Ctx* c) const {
  for (int depth = 0; c != nullptr && depth < 64; ++depth) {
    if (c->cancel_site != kNoSite || static_cast<CancelCause>(c->cause) != CancelCause::kParent) {
      return c->cancel_site;
    }
    c = FindCtx(CancelledBy(*c));
  }
  return kNoSite;
}

const GoroutineState* State::StateOf(uint64_t goid) const {
  auto it = std::lower_bound(states.begin(), states.end(), goid,
                             [](const GoroutineState& st, uint64_t id) { return st.goid < id; });
  return it == states.end() || it->goid != goid ? nullptr : &*it;
}

SiteId State::GoSiteOf(uint64_t goid) const {
  const Go* g = FindGo(goid);
  if (g != nullptr && g->go_site != kNoSite) return g->go_site;
  const GoroutineState* st = StateOf(goid);
  return st == nullptr ? kNoSite : st->go_site;
}

void State::EnsureChildrenIndex() {
  cached = true;
  if (children_built) return;
  for (const auto& [id, c] : contexts_) {
    if (c.parent != 0) children_index[c.parent].push_back(id);
  }
  for (auto& [id, v] : children_index) std::sort(v.begin(), v.end());
  children_built = true;
}

}  // namespace ctxagent::lineage_internal
