#include "agent/lineage/lineage.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <variant>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ctxagent {
namespace {

// Times are stored as Unix nanoseconds (8 bytes instead of absl::Time's 16).
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kPast = std::numeric_limits<int64_t>::min();

int64_t ToNs(absl::Time t) {
  if (t == absl::InfiniteFuture()) return kNever;
  if (t == absl::InfinitePast()) return kPast;
  return absl::ToUnixNanos(t);
}
absl::Time FromNs(int64_t ns) {
  if (ns == kNever) return absl::InfiniteFuture();
  if (ns == kPast) return absl::InfinitePast();
  return absl::FromUnixNanos(ns);
}
int64_t Ns(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

constexpr size_t kMaxFindingGoroutines = 20;
constexpr size_t kMaxFindingGoSites = 20;

enum CtxFlag : uint8_t {
  kCancelled = 1,
  kGone = 2,           // its address was reused: the GC freed it
  kUntrackedLink = 4,  // an untracked cancelable context (made before attach) sits in its chain
  kUncertain = 8,      // live when events were lost: its cancel may have been among them
  kUnobserved = 16,    // live when the probes paused: Reconcile reads its state from memory
};

// Compact context record (80 bytes; 88 with its key in the table). The public ContextNode is built
// on demand for views.
struct Ctx {
  uint64_t addr = 0;
  ContextId parent = 0;
  uint64_t creator_goid = 0;
  // Live: the parent Context's data word at creation, which a memory check compares to tell this
  // context from a new object at its address. Cancelled: the goroutine that cancelled it. One field
  // for both keeps a context in 80 bytes.
  uint64_t aux = 0;
  int64_t created = 0;
  int64_t deadline = kNever;
  int64_t cancelled = kNever;
  SiteId site = kNoSite;
  SiteId cancel_site = kNoSite;
  uint32_t children = 0;    // tracked children (pointing at this one)
  uint32_t bound_live = 0;  // live goroutines started with it
  uint32_t spawn_refs = 0;  // live goroutines whose spawner worked under it (broken-chain evidence)
  uint8_t kind = 0;         // ContextKind
  uint8_t root = 0;         // RootKind
  uint8_t cause = 0;        // CancelCause
  uint8_t flags = 0;        // CtxFlag

  bool is_cancelled() const { return flags & kCancelled; }
  bool gone() const { return flags & kGone; }
  bool live() const { return !(flags & (kCancelled | kGone)); }
  ContextKind ckind() const { return static_cast<ContextKind>(kind); }
  RootKind rkind() const { return static_cast<RootKind>(root); }
};

// Most recent cancelable contexts a goroutine created or was started with: where its "current"
// context is looked for when it spawns. Two slots: the latest may be a short-lived child already
// cancelled.
constexpr int kRecent = 2;

struct Go {
  uint64_t parent_goid = 0;
  uint64_t g = 0;  // its runtime.g, when a probe saw it (0: unknown)
  int64_t started = 0;
  int64_t exited = kNever;
  ContextId spawner_context = 0;
  ContextId recent[kRecent] = {};
  // Contexts created directly from Background/TODO: first and latest, so a goroutine that re-roots
  // in a loop costs nothing per context.
  ContextId first_rooted = 0;
  ContextId last_rooted = 0;
  SiteId first_rooted_site = kNoSite;
  SiteId go_site = kNoSite;
  uint32_t start_function = 0;  // index into State::functions
  absl::InlinedVector<ContextId, 1> bound;
  bool uncertain = false;   // alive when events were lost: its exit may have been among them
  bool unobserved = false;  // alive when the probes paused: Reconcile reads its state from memory

  bool alive() const { return exited == kNever; }
  void PushRecent(ContextId id) {
    if (recent[0] == id) return;
    for (int i = kRecent - 1; i > 0; --i) recent[i] = recent[i - 1];
    recent[0] = id;
  }
};

// Per-site history kept across evaluations (sites are bounded by the program's code).
struct SiteAgg {
  uint64_t prev_lost = 0;
  uint64_t prev_timer = 0;
  uint64_t created = 0;
  uint64_t cancelled = 0;
};

std::string SiteString(const SiteTable& sites, SiteId id) { return SiteLocation(sites.Get(id)); }

std::string Human(absl::Duration d) {
  return absl::FormatDuration(
      absl::Trunc(d, d >= absl::Seconds(1) ? absl::Seconds(1) : absl::Milliseconds(1)));
}

}  // namespace

struct ProcessLineage::State {
  absl::flat_hash_map<ContextId, Ctx> contexts;
  absl::flat_hash_map<uint64_t, ContextId> by_addr;  // newest non-gone context per address
  absl::flat_hash_map<uint64_t, Go> goroutines;
  absl::flat_hash_map<SiteId, SiteAgg> site_aggs;
  std::vector<std::string> functions{""};
  absl::flat_hash_map<std::string, uint32_t> function_index;
  ContextId next_id = 0;
  LineageStats counters;  // monotonic counters; sizes are filled in stats()
  uint64_t live_contexts = 0;
  uint64_t live_goroutines = 0;

  // View caches, dropped on any mutation.
  bool cached = false;  // something below is filled
  bool children_built = false;
  absl::flat_hash_map<ContextId, std::vector<ContextId>> children_index;
  absl::flat_hash_map<ContextId, std::unique_ptr<ContextNode>> context_views;
  absl::flat_hash_map<uint64_t, std::unique_ptr<GoroutineNode>> goroutine_views;

  void Invalidate() {
    if (!cached) return;
    cached = children_built = false;
    children_index.clear();
    context_views.clear();
    goroutine_views.clear();
  }
  void EnsureChildrenIndex() {
    cached = true;
    if (children_built) return;
    for (const auto& [id, c] : contexts) {
      if (c.parent != 0) children_index[c.parent].push_back(id);
    }
    for (auto& [id, v] : children_index) std::sort(v.begin(), v.end());
    children_built = true;
  }

  Ctx* FindCtx(ContextId id) {
    if (id == 0) return nullptr;
    auto it = contexts.find(id);
    return it == contexts.end() ? nullptr : &it->second;
  }
  Go* FindGo(uint64_t goid) {
    auto it = goroutines.find(goid);
    return it == goroutines.end() ? nullptr : &it->second;
  }
  // Goroutines made before attach appear first as creators of contexts.
  Go& GetGo(uint64_t goid, uint64_t g, int64_t now) {
    auto [it, inserted] = goroutines.try_emplace(goid);
    if (inserted) {
      it->second.started = now;
      ++counters.goroutines_seen;
      ++live_goroutines;
    }
    if (g != 0) it->second.g = g;
    return it->second;
  }
  uint32_t InternFunction(const std::string& name) {
    auto [it, inserted] = function_index.try_emplace(name, static_cast<uint32_t>(functions.size()));
    if (inserted) functions.push_back(name);
    return it->second;
  }

  // The live cancelable context `g` works under: its most recent one, or that one's nearest live
  // ancestor when it was already cancelled (a `defer cancel()` child ended before the `go`).
  ContextId Current(const Go& g) {
    for (ContextId id : g.recent) {
      for (const Ctx* c = FindCtx(id); c != nullptr; c = FindCtx(c->parent)) {
        if (c->live()) return id;
        id = c->parent;
      }
    }
    return 0;
  }

  // When `id` was cancelled, directly or through its nearest cancelled ancestor (a cancelled
  // ancestor implies the descendant is done, even if that event was lost). Returns the cancelled
  // context too.
  std::pair<int64_t, const Ctx*> EffectiveCancel(ContextId id) {
    for (const Ctx* c = FindCtx(id); c != nullptr; c = FindCtx(c->parent)) {
      if (c->is_cancelled()) return {c->cancelled, c};
    }
    return {kNever, nullptr};
  }

  // For a cancel propagated from an ancestor: the nearest ancestor cancelled no later than `c`. Not
  // stored: a cancel reaches every descendant at once, so this is what the event saw.
  ContextId CancelledBy(const Ctx& c) {
    if (!c.is_cancelled() || static_cast<CancelCause>(c.cause) != CancelCause::kParent) return 0;
    ContextId id = c.parent;
    for (const Ctx* a = FindCtx(id); a != nullptr; id = a->parent, a = FindCtx(id)) {
      if (a->is_cancelled() && a->cancelled <= c.cancelled) return id;
    }
    return 0;
  }

  // Where the cancel that ended `c` was called: follows parent propagation to its origin.
  SiteId OriginCancelSite(const Ctx* c) {
    for (int depth = 0; c != nullptr && depth < 64; ++depth) {
      if (c->cancel_site != kNoSite || static_cast<CancelCause>(c->cause) != CancelCause::kParent) {
        return c->cancel_site;
      }
      c = FindCtx(CancelledBy(*c));
    }
    return kNoSite;
  }

  // A goroutine's creator is gone when it exited (its record is freed only after it exited).
  bool CreatorGone(uint64_t goid, int64_t before) {
    const Go* g = FindGo(goid);
    return g == nullptr || g->exited <= before;
  }

  void FillGoroutineView(uint64_t goid, const Go& g, GoroutineNode& n);

  void Exit(Go& g, int64_t when) {
    g.exited = when;
    --live_goroutines;
    for (ContextId id : g.bound) {
      if (Ctx* c = FindCtx(id); c != nullptr && c->bound_live > 0) --c->bound_live;
    }
    if (Ctx* c = FindCtx(g.spawner_context); c != nullptr && c->spawn_refs > 0) --c->spawn_refs;
  }

  void Free(absl::flat_hash_map<ContextId, Ctx>::iterator it) {
    const Ctx& c = it->second;
    auto a = by_addr.find(c.addr);
    if (a != by_addr.end() && a->second == it->first) by_addr.erase(a);
    if (Ctx* p = FindCtx(c.parent); p != nullptr && p->children > 0) --p->children;
    if (c.live()) --live_contexts;
    ++counters.freed_contexts;
    contexts.erase(it);
  }
};

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
      if (old.live()) --s.live_contexts;
      old.flags |= kGone;
      if (!old.is_cancelled() && old.bound_live == 0 && old.spawn_refs == 0 && old.children == 0) {
        s.Free(oit);
      }
    }
  }
  if (Ctx* p = s.FindCtx(c.parent)) ++p->children;
  s.contexts.emplace(id, c);
  ++s.live_contexts;

  Go& g = s.GetGo(e.goid, e.g, now);
  g.PushRecent(id);
  if (c.parent == 0 && root == RootKind::kBackground) {
    if (g.first_rooted == 0) {
      g.first_rooted = id;
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
  c->flags |= kCancelled;
  --s.live_contexts;
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
  s.Exit(*g, ToNs(e.time));
}

namespace {

// Accumulates one (kind, site) finding.
struct Group {
  Finding f;
  int64_t oldest = kNever;  // earliest reference time
  int64_t newest = kPast;
  int goroutine_total = 0;
  uint64_t grew = 0;  // lost cancel / timer build-up: contexts added since the previous evaluation
  absl::flat_hash_set<SiteId> go_sites;

  void AddTime(int64_t t) {
    oldest = std::min(oldest, t);
    newest = std::max(newest, t);
  }
  void AddExample(ContextId id, ContextKind kind) {
    if (id > f.example) {
      f.example = id;
      f.example_kind = kind;
    }
  }
  void AddGoroutine(uint64_t goid, SiteId go_site) {
    ++goroutine_total;
    if (f.goroutines.size() < kMaxFindingGoroutines) f.goroutines.push_back(goid);
    if (go_site != kNoSite && f.go_sites.size() < kMaxFindingGoSites &&
        go_sites.insert(go_site).second) {
      f.go_sites.push_back(go_site);
    }
  }
};

}  // namespace

std::vector<Finding> ProcessLineage::Evaluate(absl::Time now_time, const FindingOptions& options) {
  State& s = *state_;
  const int64_t now = ToNs(now_time);
  const int64_t grace = Ns(options.grace);
  const int64_t settled = now - grace;  // events before this are past the grace period
  const int64_t leak_before = now - Ns(options.leak_after);

  std::vector<std::pair<FindingKind, SiteId>> order;
  absl::flat_hash_map<std::pair<FindingKind, SiteId>, Group> groups;
  auto group = [&](FindingKind kind, SiteId site) -> Group& {
    auto [it, inserted] = groups.try_emplace(std::make_pair(kind, site));
    if (inserted) {
      it->second.f.kind = kind;
      it->second.f.site = site;
      order.emplace_back(kind, site);
    }
    return it->second;
  };
  absl::flat_hash_set<uint64_t> used_goroutines;
  absl::flat_hash_set<ContextId> used_contexts;

  // Live goroutines by bound context, in goid order for stable output.
  std::vector<uint64_t> live;
  for (const auto& [goid, g] : s.goroutines) {
    if (g.alive() && !g.uncertain) live.push_back(goid);
  }
  std::sort(live.begin(), live.end());

  // 3. Broken chain (most specific): the goroutine re-rooted at Background/TODO, and the context
  // its spawner worked under was cancelled past the grace period while it still runs.
  for (uint64_t goid : live) {
    const Go& g = s.goroutines[goid];
    if (g.first_rooted == 0 || g.spawner_context == 0) continue;
    auto [cancelled_at, by] = s.EffectiveCancel(g.spawner_context);
    if (by == nullptr || cancelled_at > settled) continue;
    const Ctx* spawner_ctx = s.FindCtx(g.spawner_context);  // pinned by spawn_refs
    if (spawner_ctx == nullptr) continue;
    Group& gr = group(FindingKind::kBrokenChain, g.first_rooted_site);
    if (gr.f.related_site == kNoSite) gr.f.related_site = spawner_ctx->site;
    gr.f.count++;
    gr.AddGoroutine(goid, g.go_site);
    gr.AddTime(cancelled_at);
    const ContextId example =
        g.last_rooted != 0 && s.FindCtx(g.last_rooted) ? g.last_rooted : g.first_rooted;
    if (const Ctx* r = s.FindCtx(example)) gr.AddExample(example, r->ckind());
    used_goroutines.insert(goid);
    used_contexts.insert(g.first_rooted);
    used_contexts.insert(g.last_rooted);
  }

  // Live goroutines started with each context (those not already explained).
  absl::flat_hash_map<ContextId, absl::InlinedVector<uint64_t, 2>> waiters;
  for (uint64_t goid : live) {
    if (used_goroutines.contains(goid)) continue;
    for (ContextId id : s.goroutines[goid].bound) waiters[id].push_back(goid);
  }

  // 1. Orphaned Done: waited on, and nothing live can cancel it: freed uncancelled, or every
  // cancelable link up to the root is uncancelled, its creator exited past the grace period (or
  // moved on, below), and no deadline is due within grace. A creator that is still alive has "moved
  // on" when it made several such contexts at one site, old enough, each still waited on: a
  // server's connection goroutine opening a session per request and dropping it is the same leak as
  // a short-lived goroutine doing it once.
  absl::flat_hash_map<std::pair<uint64_t, SiteId>, uint32_t> waited_per_creator;
  for (const auto& [id, w] : waiters) {
    const Ctx* c = s.FindCtx(id);
    if (c != nullptr && c->live() && c->created <= leak_before) {
      ++waited_per_creator[std::make_pair(c->creator_goid, c->site)];
    }
  }
  auto creator_done = [&](const Ctx& c) {
    if (s.CreatorGone(c.creator_goid, settled)) return true;
    auto it = waited_per_creator.find(std::make_pair(c.creator_goid, c.site));
    return c.created <= leak_before && it != waited_per_creator.end() && it->second >= 2;
  };
  auto orphaned = [&](const Ctx& x) {
    // Freed by the GC and never cancelled: nothing holds it, its CancelFunc included (which refers
    // to it), so nothing can ever close the channel its waiters block on.
    if (x.gone() && !x.is_cancelled()) return !(x.flags & kUncertain) && x.created <= settled;
    const Ctx* c = &x;
    while (true) {
      if (!c->live() || (c->flags & (kUntrackedLink | kUncertain))) return false;
      if (!creator_done(*c)) return false;
      if (c->deadline <= now + grace) return false;
      if (c->parent == 0) {
        return c->rkind() == RootKind::kBackground || c->rkind() == RootKind::kWithoutCancel;
      }
      c = s.FindCtx(c->parent);
      if (c == nullptr) return false;  // freed ancestor: it was cancelled, events are inconsistent
    }
  };
  std::vector<ContextId> waited;
  for (const auto& [id, w] : waiters) waited.push_back(id);
  std::sort(waited.begin(), waited.end());
  for (ContextId id : waited) {
    const Ctx* c = s.FindCtx(id);
    if (c == nullptr || c->is_cancelled() || used_contexts.contains(id) || !orphaned(*c)) continue;
    Group& gr = group(FindingKind::kOrphanedDone, c->site);
    gr.f.count++;
    gr.AddTime(c->created);
    gr.AddExample(id, c->ckind());
    used_contexts.insert(id);
    for (uint64_t goid : waiters[id]) {
      if (!used_goroutines.insert(goid).second) continue;
      gr.AddGoroutine(goid, s.goroutines[goid].go_site);
    }
  }

  // 4. Ignored cancellation: a goroutine outlives the grace period after the cancel of a context it
  // was started with (or of that context's ancestor). Attributed to the first such context it
  // holds.
  for (uint64_t goid : live) {
    if (used_goroutines.contains(goid)) continue;
    const Go& g = s.goroutines[goid];
    for (ContextId id : g.bound) {
      auto [cancelled_at, by] = s.EffectiveCancel(id);
      if (by == nullptr || cancelled_at > settled) continue;
      const Ctx* c = s.FindCtx(id);
      Group& gr = group(FindingKind::kIgnoredCancel, c->site);
      if (gr.f.related_site == kNoSite) gr.f.related_site = s.OriginCancelSite(by);
      gr.f.count++;
      gr.AddGoroutine(goid, g.go_site);
      gr.AddTime(cancelled_at);
      gr.AddExample(id, c->ckind());
      used_goroutines.insert(goid);
      used_contexts.insert(id);
      break;
    }
  }

  // 2 and 5. Lost cancel / timer build-up: uncancelled, unwaited contexts whose creator is gone, or
  // that are old and whose creator still holds several from the same site (one long-lived context
  // per goroutine and site, like main's root or a connection's context, is normal).
  auto timer_far = [&](const Ctx& c) {
    return c.ckind() == ContextKind::kTimer && c.deadline != kNever &&
           c.deadline >= now + Ns(options.far_deadline);
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
  auto eligible = [&](ContextId id, const Ctx& c) {
    // Younger than grace: its cancel may still be on its way from another goroutine.
    return c.live() && !(c.flags & kUncertain) && c.bound_live == 0 && c.created <= settled &&
           retained(c) && !used_contexts.contains(id);
  };
  absl::flat_hash_map<std::pair<uint64_t, SiteId>, uint32_t> old_per_creator;
  for (const auto& [id, c] : s.contexts) {
    if (eligible(id, c) && c.created <= leak_before && !s.CreatorGone(c.creator_goid, now)) {
      ++old_per_creator[std::make_pair(c.creator_goid, c.site)];
    }
  }
  struct Candidates {
    uint64_t lost = 0, timer = 0;
  };
  absl::flat_hash_map<SiteId, Candidates> per_site;
  std::vector<std::pair<ContextId, const Ctx*>> candidates;
  for (const auto& [id, c] : s.contexts) {
    if (!eligible(id, c)) continue;
    bool candidate = s.CreatorGone(c.creator_goid, now);
    if (!candidate && c.created <= leak_before) {
      auto it = old_per_creator.find(std::make_pair(c.creator_goid, c.site));
      candidate = it != old_per_creator.end() && it->second >= 2;
    }
    if (!candidate) continue;
    Candidates& n = per_site[c.site];
    (c.ckind() == ContextKind::kCancel ? n.lost : n.timer)++;
    candidates.emplace_back(id, &c);
  }
  for (const auto& [site, n] : per_site) s.site_aggs.try_emplace(site);
  absl::flat_hash_set<std::pair<FindingKind, SiteId>> reported;
  for (auto& [site, agg] : s.site_aggs) {
    const Candidates n = per_site.contains(site) ? per_site[site] : Candidates{};
    const uint64_t lost = n.lost;
    if (lost >= static_cast<uint64_t>(options.min_count) && lost > agg.prev_lost) {
      reported.insert(std::make_pair(FindingKind::kLostCancel, site));
      Group& gr = group(FindingKind::kLostCancel, site);
      gr.f.count = static_cast<int>(lost);
      gr.grew = lost - agg.prev_lost;
    }
    if (n.timer >= static_cast<uint64_t>(options.min_count) && n.timer > agg.prev_timer) {
      reported.insert(std::make_pair(FindingKind::kTimerBuildup, site));
      Group& gr = group(FindingKind::kTimerBuildup, site);
      gr.f.count = static_cast<int>(n.timer);
      gr.grew = n.timer - agg.prev_timer;
    }
    agg.prev_lost = lost;
    agg.prev_timer = n.timer;
  }
  for (const auto& [id, c] : candidates) {
    const FindingKind kind =
        c->ckind() == ContextKind::kCancel ? FindingKind::kLostCancel : FindingKind::kTimerBuildup;
    if (!reported.contains(std::make_pair(kind, c->site))) continue;
    Group& gr = groups[std::make_pair(kind, c->site)];
    gr.AddTime(c->created);
    gr.AddExample(id, c->ckind());
  }

  // Explanations, in a stable order: by kind, then site.
  std::sort(order.begin(), order.end());
  std::vector<Finding> out;
  out.reserve(order.size());
  for (const auto& key : order) {
    Group& gr = groups[key];
    Finding& f = gr.f;
    if (gr.oldest != kNever) {
      f.oldest_age = now_time - FromNs(gr.oldest);
      f.newest_age = now_time - FromNs(gr.newest);
    }
    const std::string here = SiteString(sites_, f.site);
    switch (f.kind) {
      case FindingKind::kOrphanedDone:
        f.explanation = absl::StrFormat(
            "%d context%s created at %s can no longer be cancelled (creator goroutine exited "
            "without "
            "cancelling, no deadline due, no live cancelable ancestor) but %d goroutine%s still "
            "wait%s on %s: they will never wake",
            f.count, f.count == 1 ? "" : "s", here, gr.goroutine_total,
            gr.goroutine_total == 1 ? "" : "s", gr.goroutine_total == 1 ? "s" : "",
            f.count == 1 ? "it" : "them");
        break;
      case FindingKind::kLostCancel:
        f.explanation = absl::StrFormat(
            "%d contexts created at %s were never cancelled after their creators were done (%d "
            "more "
            "since the last check): the CancelFunc is dropped or never called, and each stays in "
            "its "
            "parent's children until the parent ends",
            f.count, here, gr.grew);
        break;
      case FindingKind::kBrokenChain:
        f.explanation = absl::StrFormat(
            "context from %s was cancelled %s ago but %d goroutine%s started under it still run%s: "
            "%s roots a new context at Background/TODO instead of deriving from it, so the "
            "cancellation cannot reach %s",
            SiteString(sites_, f.related_site), Human(f.newest_age), gr.goroutine_total,
            gr.goroutine_total == 1 ? "" : "s", gr.goroutine_total == 1 ? "s" : "", here,
            gr.goroutine_total == 1 ? "it" : "them");
        break;
      case FindingKind::kIgnoredCancel:
        f.explanation = absl::StrFormat(
            "context from %s cancelled %s ago but %d goroutine%s started with it %s still running: "
            "a select without <-ctx.Done()?",
            here, Human(f.newest_age), gr.goroutine_total, gr.goroutine_total == 1 ? "" : "s",
            gr.goroutine_total == 1 ? "is" : "are");
        break;
      case FindingKind::kTimerBuildup:
        f.explanation = absl::StrFormat(
            "%d timer contexts created at %s with deadlines at least %s away are never cancelled "
            "(%d more since the last check): their timers pile up until they fire",
            f.count, here, Human(options.far_deadline), gr.grew);
        break;
    }
    out.push_back(std::move(f));
  }
  return out;
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
    if (contexts[i] == St::kEnded || contexts[i] == St::kGone) {
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
        --s.live_contexts;
        ++s.site_aggs[c.site].cancelled;
        ++s.counters.inferred_cancels;
        cancelled.push_back(&c);
        break;
      case St::kGone:  // unreachable: no one can cancel it any more, as with a reused address
        c.flags |= kGone;
        --s.live_contexts;
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
      s.Exit(g, now);
      ++s.counters.inferred_exits;
    } else if (goroutines[i] == St::kUnknown) {
      g.uncertain = true;
    }
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

void ProcessLineage::State::FillGoroutineView(uint64_t goid, const Go& g, GoroutineNode& n) {
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

LineageStats ProcessLineage::stats() const {
  LineageStats st = state_->counters;
  st.live_contexts = state_->live_contexts;
  st.tracked_contexts = state_->contexts.size();
  st.live_goroutines = state_->live_goroutines;
  return st;
}

}  // namespace ctxagent
