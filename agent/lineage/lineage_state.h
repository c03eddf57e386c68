// Internal to the lineage: compact node records, the per-process state and the evaluation shared by
// the finding files (finding_*.cc). Not part of the API (agent/lineage/lineage.h).
#ifndef CTXAGENT_AGENT_LINEAGE_LINEAGE_STATE_H_
#define CTXAGENT_AGENT_LINEAGE_LINEAGE_STATE_H_

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/lineage/goroutine_state.h"
#include "agent/lineage/lineage.h"

namespace ctxagent::lineage_internal {

// Times are stored as Unix nanoseconds (8 bytes instead of absl::Time's 16).
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kPast = std::numeric_limits<int64_t>::min();

inline int64_t ToNs(absl::Time t) {
  if (t == absl::InfiniteFuture()) return kNever;
  if (t == absl::InfinitePast()) return kPast;
  return absl::ToUnixNanos(t);
}
inline absl::Time FromNs(int64_t ns) {
  if (ns == kNever) return absl::InfiniteFuture();
  if (ns == kPast) return absl::InfinitePast();
  return absl::FromUnixNanos(ns);
}
inline int64_t Ns(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

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
  bool captured_background = false;  // started with a WithValue chain over Background/TODO
  bool before_attach = false;  // known only from memory (runtime.allgs at attach), never probed
  bool uncertain = false;      // alive when events were lost: its exit may have been among them
  bool unobserved = false;  // alive when the probes paused: Reconcile reads its state from memory

  bool alive() const { return exited == kNever; }
  void PushRecent(ContextId id) {
    if (recent[0] == id) return;
    for (int i = kRecent - 1; i > 0; --i) recent[i] = recent[i - 1];
    recent[0] = id;
  }
};

// A site's count of accumulating contexts across evaluations. It is reported from the evaluation
// at which it grows while it holds: under sampling it grows only in traced windows, and holding
// between them is still the same leak. It is withdrawn when the count falls (contexts were
// cancelled or freed after all: a set that drains is not accumulating).
struct Accumulation {
  uint64_t prev = 0;
  bool reported = false;

  // The count at this evaluation; returns whether it is reported, and by how much it grew.
  bool Update(uint64_t n, uint64_t min_count, uint64_t* grew) {
    reported = n >= min_count && (n > prev || (reported && n == prev));
    *grew = n > prev ? n - prev : 0;
    prev = n;
    return reported;
  }
};

// Per-site history kept across evaluations (sites are bounded by the program's code).
struct SiteAgg {
  Accumulation lost;
  Accumulation timer;
  uint64_t created = 0;
  uint64_t cancelled = 0;
};

inline std::string SiteString(const SiteTable& sites, SiteId id) {
  const Site& s = sites.Get(id);
  return absl::StrCat(s.file, ":", s.line);
}

struct State {
  absl::flat_hash_map<ContextId, Ctx> contexts;
  absl::flat_hash_map<uint64_t, ContextId> by_addr;  // newest non-gone context per address
  absl::flat_hash_map<uint64_t, Go> goroutines;
  absl::flat_hash_map<SiteId, SiteAgg> site_aggs;
  std::vector<std::string> functions{""};
  absl::flat_hash_map<std::string, uint32_t> function_index;
  // Goroutine state last read from memory (ObserveGoroutines), by goid, and the Done channels of
  // the contexts live goroutines are bound to.
  std::vector<GoroutineState> states;  // known and not the runtime's, in goid order
  absl::flat_hash_map<ContextId, uint64_t> done_channels;
  absl::flat_hash_map<ContextId, std::vector<uint64_t>> parked;  // goids parked on its Done channel
  bool observed = false;  // ObserveGoroutines ran once (goroutines at attach are in the tree)
  ContextId next_id = 0;
  LineageStats counters;  // monotonic counters; sizes are filled in stats()
  uint64_t live_contexts = 0;
  uint64_t live_goroutines = 0;
  // LiveFingerprint, kept as nodes go live and end: an order-free sum of mixed ids, so reading it
  // costs nothing however large the tree (the daemon reads it at every drain and refresh).
  uint64_t live_sum = 0;

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
  // splitmix64's finalizer (Mix(0) == 0).
  static uint64_t Mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  // A live goroutine's term: its first context rooted at Background is part of it (broken chains
  // need it, and it can come and go while the goroutine runs on). Contexts and goroutines apart.
  static uint64_t GoTerm(uint64_t goid, const Go& g) {
    return Mix(2 * goid + 1) ^ Mix(g.first_rooted);
  }
  void ContextLive(ContextId id) {
    ++live_contexts;
    live_sum += Mix(2 * id);
  }
  // A live context is cancelled, gone or freed.
  void ContextEnded(ContextId id) {
    --live_contexts;
    live_sum -= Mix(2 * id);
  }
  void SetFirstRooted(uint64_t goid, Go& g, ContextId id) {
    if (g.alive()) live_sum -= GoTerm(goid, g);
    g.first_rooted = id;
    if (g.alive()) live_sum += GoTerm(goid, g);
  }

  // Goroutines made before attach appear first as creators of contexts.
  Go& GetGo(uint64_t goid, uint64_t g, int64_t now) {
    auto [it, inserted] = goroutines.try_emplace(goid);
    if (inserted) {
      it->second.started = now;
      ++counters.goroutines_seen;
      ++live_goroutines;
      live_sum += GoTerm(goid, it->second);
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
  void FillStateView(uint64_t goid, GoroutineNode& n) const;
  // Its address now holds another object: the GC freed it, nothing can cancel it any more.
  void MarkGone(ContextId id, Ctx& c) {
    auto a = by_addr.find(c.addr);
    if (a != by_addr.end() && a->second == id) by_addr.erase(a);
    if (c.live()) ContextEnded(id);
    c.flags |= kGone;
  }
  // The state read from memory for a live goroutine (null when not read or torn).
  const GoroutineState* StateOf(uint64_t goid) const {
    auto it = std::lower_bound(states.begin(), states.end(), goid,
                               [](const GoroutineState& st, uint64_t id) { return st.goid < id; });
    return it == states.end() || it->goid != goid ? nullptr : &*it;
  }
  // The `go` statement of a goroutine: probed, else read from memory.
  SiteId GoSiteOf(uint64_t goid) const {
    auto it = goroutines.find(goid);
    if (it != goroutines.end() && it->second.go_site != kNoSite) return it->second.go_site;
    const GoroutineState* st = StateOf(goid);
    return st == nullptr ? kNoSite : st->go_site;
  }
  // True when a goroutine is parked on context `id`'s Done channel (read from memory).
  bool ParkedOn(uint64_t goid, ContextId id) const {
    auto it = parked.find(id);
    return it != parked.end() &&
           std::find(it->second.begin(), it->second.end(), goid) != it->second.end();
  }

  void Exit(uint64_t goid, Go& g, int64_t when) {
    live_sum -= GoTerm(goid, g);
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
    if (c.live()) ContextEnded(it->first);
    ++counters.freed_contexts;
    contexts.erase(it);
  }
};

// Accumulates one (kind, site) finding.
struct Group {
  Finding f;
  int64_t oldest = kNever;  // earliest reference time
  int64_t newest = kPast;
  int goroutine_total = 0;
  uint64_t grew = 0;  // lost cancel / timer build-up: contexts added since the previous evaluation
  int parked = 0;     // goroutines found parked on the contexts' Done channels (memory)
  bool handed_root = false;  // broken chain: the goroutine was handed a Background-rooted context
  std::string doing;         // ignored cancellation: what its goroutines do instead
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

// One evaluation: the thresholds as times, the live goroutines, what earlier (more specific)
// findings already explained, and the groups being filled.
struct Evaluation {
  State& s;
  const SiteTable& sites;
  const FindingOptions& options;
  int64_t now = 0;
  int64_t grace = 0;
  int64_t settled = 0;         // events before this are past the grace period
  int64_t leak_before = 0;     // contexts created before this are old enough to leak
  std::vector<uint64_t> live;  // live, certain goroutines in goid order
  absl::flat_hash_set<uint64_t> used_goroutines;
  absl::flat_hash_set<ContextId> used_contexts;
  std::vector<std::pair<FindingKind, SiteId>> order;
  absl::flat_hash_map<std::pair<FindingKind, SiteId>, Group> groups;

  Group& group(FindingKind kind, SiteId site) {
    auto [it, inserted] = groups.try_emplace(std::make_pair(kind, site));
    if (inserted) {
      it->second.f.kind = kind;
      it->second.f.site = site;
      order.emplace_back(kind, site);
    }
    return it->second;
  }
};

// The findings, most specific first (each takes goroutines and contexts the earlier ones left).
void FindBrokenChains(Evaluation& ev);
void FindOrphanedDone(Evaluation& ev);
void FindIgnoredCancels(Evaluation& ev);
void FindLostCancels(Evaluation& ev);  // lost cancel and timer build-up: accumulating contexts
// The one-sentence explanation of a filled group.
std::string ExplainBrokenChain(const Evaluation& ev, const Group& gr);
std::string ExplainOrphanedDone(const Evaluation& ev, const Group& gr);
std::string ExplainIgnoredCancel(const Evaluation& ev, const Group& gr);
std::string ExplainLostCancel(const Evaluation& ev, const Group& gr);
std::string ExplainTimerBuildup(const Evaluation& ev, const Group& gr);

}  // namespace ctxagent::lineage_internal

#endif  // CTXAGENT_AGENT_LINEAGE_LINEAGE_STATE_H_
