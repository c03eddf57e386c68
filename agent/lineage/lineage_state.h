// Internal to the lineage: compact node records, the per-process state and the evaluation shared by
// the finding files (finding_*.cc). Not part of the API (agent/lineage/lineage.h).
#ifndef CTXAGENT_AGENT_LINEAGE_LINEAGE_STATE_H_
#define CTXAGENT_AGENT_LINEAGE_LINEAGE_STATE_H_

#include <algorithm>
#include <array>
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
  // Heap marks (State::ObserveMark), while live:
  kCancelUnheld = 32,  // no cancel func of it was reachable in the last mark
  kCancelLost = 64,    // ... nor in the mark before
  kReached = 128,      // it was reachable in the last mark
};

// Compact context record (80 bytes; 88 with its key in the table). The public ContextNode is built
// on demand for views.
struct Ctx {
  uint64_t addr = 0;
  ContextId parent = 0;
  uint64_t creator_goid = 0;
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
  // While not cancelled: the parent Context's data word at creation, which a memory check compares
  // to tell this context from a new object at its address (0: not read).
  uint64_t parent_word() const { return is_cancelled() ? 0 : word_; }
  // Once cancelled: the goroutine that cancelled it (0: unknown).
  uint64_t cancel_goid() const { return is_cancelled() ? word_ : 0; }

 private:
  friend class State;
  // parent_word or cancel_goid: never needed together, so one word keeps a context in 80 bytes.
  uint64_t word_ = 0;
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
  // Contexts created directly from Background/TODO or below WithoutCancel: first and latest, so a
  // goroutine that re-roots in a loop costs nothing per context.
  ContextId first_rooted = 0;
  ContextId last_rooted = 0;
  SiteId first_rooted_site = kNoSite;
  SiteId go_site = kNoSite;
  uint32_t start_function = 0;  // index into State::functions
  absl::InlinedVector<ContextId, 1> bound;
  bool captured_uncancelable = false;  // started with a context nothing can cancel
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

  // The count at this evaluation; returns whether it is reported (`facts`: each counted context is
  // proven, so at min_count; else once it grows, while it holds), and by how much it grew.
  bool Update(uint64_t n, uint64_t min_count, bool facts, uint64_t* grew) {
    reported = n >= min_count && (facts || n > prev || (reported && n == prev));
    *grew = n > prev ? n - prev : 0;
    prev = n;
    return reported;
  }
};

// Per-site history kept across evaluations (sites are bounded by the program's code).
struct SiteHistory {
  Accumulation lost;
  Accumulation timer;
};

inline std::string SiteString(const SiteTable& sites, SiteId id) {
  const Site& s = sites.Get(id);
  return absl::StrCat(s.file, ":", s.line);
}

// How an end became known: a probe saw it, or a read of the target's memory after a pause found it
// (Reconcile). They are counted apart, and a context found ended in memory leaves the address index
// (its memory may be reused unseen).
enum class Seen { kByProbe, kInMemory };

// The tree of one process. Nodes change only through the lifecycle steps below, each keeping the
// counters, the live counts and the fingerprint; everyone else reads nodes as const.
class State {
 public:
  // Lifecycle steps. The probes' events and Reconcile's reads of memory reach the same state for
  // the same facts through the same steps.
  // A context created under the nearest tracked cancelable ancestor its parent chain names.
  void CreateContext(const ContextCreated& e);
  // A probe saw a cancel: ignored for an unknown or already cancelled context (Go ignores a second
  // cancel too); the context at that address is gone instead when the parent words differ.
  void OnCancelEvent(const ContextCancelled& e);
  // Live context `id` was cancelled at `when` (`site` and `goid`: where and by whom, when known).
  void CancelContext(ContextId id, int64_t when, CancelCause cause, SiteId site, uint64_t goid,
                     Seen seen);
  // Its address now holds another object: the GC freed it, nothing can cancel it any more.
  void ContextGone(ContextId id);
  // A probe saw a `go` statement.
  void StartGoroutine(const GoroutineCreated& e);
  // A goroutine that predates the probes, first read from memory.
  void AddGoroutineFromMemory(const GoroutineState& st, int64_t now);
  // A probe saw an exit (counted as unknown for a goroutine never seen).
  void OnExitEvent(const GoroutineExited& e);
  void ExitGoroutine(uint64_t goid, int64_t when, Seen seen);
  // Frees cancelled contexts and exited goroutines that ended by `before` and that no live node
  // needs any more.
  void Collect(int64_t before);

  // A heap mark at `when` read `facts` (ContextFact bits) of the contexts at `addrs`, as
  // TrackedAddresses gave them, and which goroutines hold which of them (goid, index in `addrs`).
  // Returns whether a context's kCancelLost or kReached, or a goroutine's holdings, changed.
  bool ObserveMark(int64_t when, const std::vector<uint64_t>& addrs,
                   const std::vector<uint8_t>& facts,
                   const std::vector<std::pair<uint64_t, uint32_t>>& holds);
  // Marks stopped: nothing read before may stand for the present.
  void MarksStopped();

  // What a lost event or a pause makes of live nodes. A pause keeps the addresses of cancelled
  // contexts (a goroutine may hold one: an ignored cancellation), which Reconcile then checks
  // still hold a cancelled context at every read (kept()).
  void EventsLost();
  void ProbesPaused();
  void MakeUncertain(ContextId id);
  void MakeGoroutineUncertain(uint64_t goid);

  // Reads.
  const absl::flat_hash_map<ContextId, Ctx>& contexts() const { return contexts_; }
  // Cancelled contexts whose addresses a pause kept: no new context hangs under one (its memory
  // may hold another by now: ResolveParent), and a read that finds no cancelled context there
  // ends it (ContextGone).
  const absl::flat_hash_set<ContextId>& kept() const { return kept_; }
  const absl::flat_hash_map<uint64_t, Go>& goroutines() const { return goroutines_; }
  const Ctx* FindCtx(ContextId id) const {
    if (id == 0) return nullptr;
    auto it = contexts_.find(id);
    return it == contexts_.end() ? nullptr : &it->second;
  }
  const Go* FindGo(uint64_t goid) const {
    auto it = goroutines_.find(goid);
    return it == goroutines_.end() ? nullptr : &it->second;
  }
  const Go& GoAt(uint64_t goid) const { return goroutines_.find(goid)->second; }  // must exist
  // The newest tracked context at `addr` (0: none).
  ContextId ContextAt(uint64_t addr) const {
    auto it = by_addr_.find(addr);
    return it == by_addr_.end() ? 0 : it->second;
  }
  // The addresses of the tracked contexts the GC has not freed, live or cancelled, sorted.
  std::vector<uint64_t> TrackedAddresses() const;
  // Whether goroutine `goid` held context `id` (from its stack: heap/context_facts.h) in both of
  // the last two marks.
  bool HeldInLastMarks(uint64_t goid, ContextId id) const;
  // Whether goroutine `goid` held `ancestor` or a descendant of it in both of the last two marks.
  bool HoldsUnder(uint64_t goid, ContextId ancestor) const;
  // When the last two marks that read context facts ran, latest first (kNever: none since the
  // marks started or resumed): kCancelLost is a fact from both.
  const std::array<int64_t, 2>& fact_marks() const { return fact_marks_; }
  bool has_cancel_facts() const { return fact_marks_[1] != kNever; }
  const LineageStats& counters() const { return counters_; }
  uint64_t live_contexts() const { return live_contexts_; }
  uint64_t live_goroutines() const { return live_goroutines_; }
  // LiveFingerprint, kept as nodes go live and end: an order-free sum of mixed ids, so reading it
  // costs nothing however large the tree (the daemon reads it at every drain and refresh).
  uint64_t live_sum() const { return live_sum_; }
  const absl::flat_hash_map<SiteId, SiteCount>& site_counts() const { return site_counts_; }

  // The live cancelable context `g` works under: its most recent one, or that one's nearest live
  // ancestor when it was already cancelled (a `defer cancel()` child ended before the `go`).
  ContextId Current(const Go& g) const;
  // When `id` was cancelled, directly or through its nearest cancelled ancestor (a cancelled
  // ancestor implies the descendant is done, even if that event was lost). Returns the cancelled
  // context too.
  std::pair<int64_t, const Ctx*> EffectiveCancel(ContextId id) const;
  // For a cancel propagated from an ancestor: the nearest ancestor cancelled no later than `c`. Not
  // stored: a cancel reaches every descendant at once, so this is what the event saw.
  ContextId CancelledBy(const Ctx& c) const;
  // Where the cancel that ended `c` was called: follows parent propagation to its origin.
  SiteId OriginCancelSite(const Ctx* c) const;
  // A goroutine's creator is gone when it exited (its record is freed only after it exited).
  bool CreatorGone(uint64_t goid, int64_t before) const {
    const Go* g = FindGo(goid);
    return g == nullptr || g->exited <= before;
  }
  // The state read from memory for a live goroutine (null when not read or torn).
  const GoroutineState* StateOf(uint64_t goid) const;
  // The `go` statement of a goroutine: probed, else read from memory.
  SiteId GoSiteOf(uint64_t goid) const;
  // True when a goroutine is parked on context `id`'s Done channel (read from memory).
  bool ParkedOn(uint64_t goid, ContextId id) const {
    auto it = parked.find(id);
    return it != parked.end() &&
           std::find(it->second.begin(), it->second.end(), goid) != it->second.end();
  }

  // Views.
  void FillGoroutineView(uint64_t goid, const Go& g, GoroutineNode& n) const;
  void FillStateView(uint64_t goid, GoroutineNode& n) const;
  void Invalidate() {
    if (!cached) return;
    cached = children_built = false;
    children_index.clear();
    context_views.clear();
    goroutine_views.clear();
  }
  void EnsureChildrenIndex();

  // Not bookkeeping: what memory reads and evaluations leave for the next, and the view caches.
  // Goroutine state last read from memory (ObserveGoroutines), by goid, and the Done channels of
  // the contexts live goroutines are bound to.
  std::vector<GoroutineState> states;  // known and not the runtime's, in goid order
  absl::flat_hash_map<ContextId, uint64_t> done_channels;
  absl::flat_hash_map<ContextId, std::vector<uint64_t>> parked;  // goids parked on its Done channel
  bool observed = false;  // ObserveGoroutines ran once (goroutines at attach are in the tree)
  absl::flat_hash_map<SiteId, SiteHistory> site_history;
  // The contexts each goroutine held in the last mark and the one before (ObserveMark).
  absl::flat_hash_map<uint64_t, absl::InlinedVector<ContextId, 2>> held, held_before;
  // View caches, dropped on any mutation.
  bool cached = false;  // something below is filled
  bool children_built = false;
  absl::flat_hash_map<ContextId, std::vector<ContextId>> children_index;
  absl::flat_hash_map<ContextId, std::unique_ptr<ContextNode>> context_views;
  absl::flat_hash_map<uint64_t, std::unique_ptr<GoroutineNode>> goroutine_views;

 private:
  Ctx* MutableCtx(ContextId id) { return const_cast<Ctx*>(FindCtx(id)); }
  // The goroutine, added as live (made before attach, or its creation unseen) if new.
  Go& GetGo(uint64_t goid, uint64_t g, int64_t now);
  // Resolves `c.parent` and `c.root` from the parent chain read at creation.
  void ResolveParent(const ContextCreated& e, Ctx& c) const;
  void ContextEnded(ContextId id);  // a live context is cancelled, gone or freed
  void SetFirstRooted(uint64_t goid, Go& g, ContextId id);
  void Free(absl::flat_hash_map<ContextId, Ctx>::iterator it);
  uint32_t InternFunction(const std::string& name);

  absl::flat_hash_map<ContextId, Ctx> contexts_;
  absl::flat_hash_map<uint64_t, ContextId> by_addr_;  // newest non-gone context per address
  absl::flat_hash_set<ContextId> kept_;
  absl::flat_hash_map<uint64_t, Go> goroutines_;
  absl::flat_hash_map<SiteId, SiteCount> site_counts_;
  std::vector<std::string> functions_{""};
  absl::flat_hash_map<std::string, uint32_t> function_index_;
  ContextId next_id_ = 0;
  LineageStats counters_;  // monotonic counters; sizes are filled in stats()
  uint64_t live_contexts_ = 0;
  uint64_t live_goroutines_ = 0;
  uint64_t live_sum_ = 0;
  std::array<int64_t, 2> fact_marks_ = {kNever, kNever};
};

// Accumulates one (kind, site) finding.
struct Group {
  Finding f;
  int64_t oldest = kNever;  // earliest reference time
  int64_t newest = kPast;
  int goroutine_total = 0;
  uint64_t grew = 0;  // lost cancel / timer build-up: contexts added since the previous evaluation
  int parked = 0;     // goroutines found parked on the contexts' Done channels (memory)
  int held = 0;  // ignored cancellation: goroutines found holding the context, not started with it
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
// "in the marks 32s ago and just now": when the facts behind a finding (its proof_marks) were read.
std::string MarksAgo(const Evaluation& ev, const Finding& f);
// The one-sentence explanation of a filled group.
std::string ExplainBrokenChain(const Evaluation& ev, const Group& gr);
std::string ExplainOrphanedDone(const Evaluation& ev, const Group& gr);
std::string ExplainIgnoredCancel(const Evaluation& ev, const Group& gr);
std::string ExplainLostCancel(const Evaluation& ev, const Group& gr);
std::string ExplainTimerBuildup(const Evaluation& ev, const Group& gr);

}  // namespace ctxagent::lineage_internal

#endif  // CTXAGENT_AGENT_LINEAGE_LINEAGE_STATE_H_
