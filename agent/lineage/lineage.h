// The per-process context lineage tree and goroutine tree, rebuilt from decoded events, and the
// findings evaluated on them. Semantics: docs/diagnoses.md.
#ifndef CTXAGENT_AGENT_LINEAGE_LINEAGE_H_
#define CTXAGENT_AGENT_LINEAGE_LINEAGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "agent/lineage/events.h"
#include "agent/lineage/goroutine_state.h"

namespace ctxagent {
namespace lineage_internal {
class State;
}  // namespace lineage_internal

using ContextId = uint64_t;  // creation sequence number within the process: survives address reuse

struct ContextNode {
  ContextId id = 0;
  uint64_t addr = 0;
  ContextKind kind = ContextKind::kUnknown;
  ContextId parent = 0;                   // nearest cancelable ancestor still tracked; 0 = rooted
  RootKind root = RootKind::kBackground;  // meaningful when parent == 0
  uint64_t creator_goid = 0;
  SiteId site = kNoSite;
  absl::Time created;
  absl::Time deadline = absl::InfiniteFuture();
  std::optional<absl::Time> cancelled;
  CancelCause cause = CancelCause::kOwnCancel;  // valid when cancelled
  ContextId cancelled_by = 0;                   // kParent: the ancestor whose cancel reached it
  SiteId cancel_site = kNoSite;
  uint64_t cancel_goid = 0;
  std::vector<ContextId> children;  // live tracked children
};

struct GoroutineNode {
  uint64_t goid = 0;
  uint64_t parent_goid = 0;
  SiteId go_site = kNoSite;
  std::string start_function;
  absl::Time started;
  std::optional<absl::Time> exited;
  std::vector<ContextId> bound;   // contexts captured by its function when started
  ContextId spawner_context = 0;  // live cancelable context the spawner worked under at the `go`
  std::vector<ContextId>
      rooted;  // contexts it created rooted at Background/TODO (first and latest tracked)
  bool before_attach = false;          // known from memory only: it predates the probes
  bool captured_uncancelable = false;  // started with a context nothing can cancel
  // What it is doing, as last read from memory (null when not read); the contexts whose Done
  // channel it is parked on.
  const GoroutineState* state = nullptr;
  std::vector<ContextId> parked_on;
};

enum class FindingKind {
  kOrphanedDone,
  kLostCancel,
  kBrokenChain,
  kIgnoredCancel,
  kTimerBuildup,
  kGoroutineLeak,  // proven by the mark of the target's memory (agent/heap)
};
const char* FindingKindName(FindingKind kind);  // "orphaned_done", "lost_cancel", ...

struct FindingOptions {
  absl::Duration grace = absl::Seconds(5);        // time allowed to react to a cancellation
  absl::Duration leak_after = absl::Seconds(30);  // age after which an uncancelled context may leak
  int min_count = 3;                              // contexts per site before a site is reported
  absl::Duration far_deadline = absl::Minutes(10);  // timer build-up: deadlines at least this far
};

// One line of the report: a site and everything it contributed.
// count: contexts for orphaned_done / lost_cancel / timer_buildup (lost_cancel includes contexts
// already freed by the GC uncancelled), goroutines for broken_chain / ignored_cancel /
// goroutine_leak. oldest_age / newest_age: since creation of the contexts (orphaned, lost, timer),
// since the cancellation that was not obeyed (ignored, broken chain), since the goroutines parked
// (goroutine_leak: site = the line they block on, go_sites = their `go` statement).
struct Finding {
  FindingKind kind;
  SiteId site = kNoSite;  // where the offending context was created (broken chain: the new root)
  SiteId related_site = kNoSite;  // broken chain: the spawner's context site; ignored: cancel site
  int count = 0;                  // contexts (or goroutines) involved, see above
  std::vector<uint64_t> goroutines;  // goids, capped
  std::vector<SiteId> go_sites;      // `go` statements of those goroutines, deduplicated
  int parked = 0;  // of those, goroutines found parked on the contexts' Done channels (memory)
  ContextId example = 0;  // latest example context
  ContextKind example_kind = ContextKind::kUnknown;
  absl::Duration oldest_age;
  absl::Duration newest_age;
  std::string explanation;  // one sentence for humans
  std::string wait_reason;  // goroutine_leak: as pprof prints it ("chan send", "sync.Mutex.Lock")
  // ignored_cancel, orphaned_done, lost_cancel: the line its first (parked) goroutine is stuck on
  // (unwound from memory).
  SiteId blocked_at = kNoSite;
  // lost_cancel / timer_buildup / orphaned_done decided from heap marks: the two latest marks, both
  // of which found no cancel func of its contexts reachable (empty: decided from history,
  // docs/diagnoses.md).
  std::vector<absl::Time> proof_marks;
};

struct LineageStats {
  uint64_t contexts_created = 0;
  uint64_t created_by_kind[4] = {};  // indexed by ContextKind
  uint64_t cancelled_own = 0, cancelled_parent = 0, cancelled_deadline = 0;
  uint64_t live_contexts = 0;     // tracked and not cancelled
  uint64_t tracked_contexts = 0;  // in memory
  uint64_t goroutines_seen = 0;
  uint64_t live_goroutines = 0;
  uint64_t freed_contexts = 0;    // finished and released
  uint64_t address_reuses = 0;    // contexts replaced by a new one at the same address
  uint64_t unknown_exits = 0;     // exits of goroutines never seen created (started before attach)
  uint64_t loss_episodes = 0;     // times events were dropped (OnEventsLost)
  uint64_t unknown_cancels = 0;   // cancels of addresses never seen created (made before attach)
  uint64_t pauses = 0;            // times the probes were detached (sampling)
  uint64_t inferred_cancels = 0;  // cancels read from memory after a pause, not seen by a probe
  uint64_t inferred_exits = 0;    // goroutine exits read from memory after a pause
};

// What the target's memory says about nodes the probes no longer watch (agent/liveness.h reads it;
// tests fake it).
class LivenessOracle {
 public:
  enum class State {
    kLive,
    kEnded,    // cancelled context / exited goroutine
    kGone,     // context: its memory now holds something else (freed by the GC)
    kUnknown,  // unreadable
  };
  struct ContextQuery {
    uint64_t addr;
    ContextKind kind;
    uint64_t parent_word;  // the parent Context's data word at creation (0: do not compare)
  };
  struct GoroutineQuery {
    uint64_t goid;
    uint64_t g;  // its runtime.g
  };
  virtual ~LivenessOracle() = default;
  // One answer per query, in order.
  virtual std::vector<State> Contexts(const std::vector<ContextQuery>& queries) = 0;
  virtual std::vector<State> Goroutines(const std::vector<GoroutineQuery>& queries) = 0;
};

// Contexts created and cancelled at one creation site since attach (information for the report).
struct SiteCount {
  SiteId site = kNoSite;
  uint64_t created = 0;
  uint64_t cancelled = 0;
};

class ProcessLineage {
 public:
  explicit ProcessLineage(int pid);
  ~ProcessLineage();

  int pid() const { return pid_; }
  SiteTable& sites() { return sites_; }
  const SiteTable& sites() const { return sites_; }

  void OnContextCreated(const ContextCreated& e);
  void OnContextCancelled(const ContextCancelled& e);
  void OnGoroutineCreated(const GoroutineCreated& e);
  void OnGoroutineExited(const GoroutineExited& e);
  void Apply(const DecodedEvent& e);  // whichever of the four it is

  // The probes dropped events: whatever was live then may have been cancelled or may have exited
  // unseen. Those nodes stay in the tree (marked) but no longer count towards findings; what is
  // created afterwards is tracked as usual.
  void OnEventsLost();

  // The probes were detached (sampling): what is live now may end unseen. Unlike lost events, the
  // target's memory still tells: callers Reconcile before each Evaluate while anything is
  // unobserved.
  void OnProbesPaused();
  // Reads the state of contexts and goroutines live at a pause from the target's memory. Cancelled
  // contexts and exited goroutines are marked ended as of `now`, the latest moment they can have
  // ended, so findings that wait for an end plus grace are only delayed, never invented; what
  // cannot be read becomes uncertain. Nodes created after the pause are watched by the probes
  // again.
  void Reconcile(absl::Time now, LivenessOracle& oracle);

  // Reads what every goroutine is doing from the target's memory (runtime.allgs) and which
  // tracked contexts' Done channels they are parked on; findings use it. The first call also adds
  // the goroutines that predate the probes to the tree. Call before Evaluate, after Reconcile.
  // Returns whether what findings use changed since the last call (which goroutines exist, their
  // state, the Done channels they are parked on): a goroutine that parks changes no count.
  bool ObserveGoroutines(absl::Time now, GoroutineStateReader& reader);

  // Which contexts and goroutines are live and tracked (and the first context each goroutine
  // rooted at Background), as one number: equal at two moments (almost surely) only if the same
  // nodes were live at both. Ids are never reused, so nodes that came and went in between leave it
  // unchanged, and so does every finding: each needs a live node.
  uint64_t LiveFingerprint() const;

  // The addresses of the tracked contexts the GC has not freed, sorted: what a heap mark is asked
  // about.
  std::vector<uint64_t> ContextAddresses() const;
  // A heap mark at `now` read `facts` (ContextFact bits) of the contexts at `addrs`, as
  // ContextAddresses gave them, and which goroutines hold them (goid, index in `addrs`). From the
  // second such mark on, lost cancel and timer build-up are decided from these facts, and a
  // goroutine holding a cancelled context in both marks may be ignoring it (docs/diagnoses.md).
  // Returns whether a finding's input changed.
  bool ObserveMark(absl::Time now, const std::vector<uint64_t>& addrs,
                   const std::vector<uint8_t>& facts,
                   const std::vector<std::pair<uint64_t, uint32_t>>& holds);
  // The marks stopped (one failed): lost cancel and timer build-up are decided from history again.
  void OnMarksStopped();

  // Findings at `now`. Keeps per-site history between calls (lost cancel / timer build-up need a
  // count that grows across evaluations), so call it periodically.
  std::vector<Finding> Evaluate(absl::Time now, const FindingOptions& options);

  // Frees cancelled contexts and exited goroutines that no live node needs any more (finished
  // subtrees), after they were old enough to have been reported. Bounded memory for long runs.
  void Collect(absl::Time now, const FindingOptions& options);

  // Views are built on demand from compact storage: the pointers stay valid until the next
  // non-const call. Not thread-safe, even for const calls (they fill a view cache): callers
  // serialize.
  const ContextNode* FindContext(ContextId id) const;
  const GoroutineNode* FindGoroutine(uint64_t goid) const;
  // The newest tracked context at `addr` (what a cancel or a captured word there refers to), 0 if
  // none.
  ContextId ContextAt(uint64_t addr) const;
  // Tracked contexts in creation order / tracked goroutines (for views).
  void ForEachContext(const std::function<void(const ContextNode&)>& fn) const;
  void ForEachGoroutine(const std::function<void(const GoroutineNode&)>& fn) const;
  // Goroutines as last read by ObserveGoroutines, in goid order, with the lineage's node for each
  // (null for goroutines it never tracked).
  void ForEachGoroutineState(
      const std::function<void(const GoroutineState&, const GoroutineNode*)>& fn) const;
  LineageStats stats() const;
  size_t tracked_contexts() const;  // stats().tracked_contexts, without the copy (per-event check)
  // Creation sites by number of contexts created, most first.
  std::vector<SiteCount> SiteCounts() const;

 private:
  int pid_;
  SiteTable sites_;
  std::unique_ptr<lineage_internal::State> state_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_LINEAGE_LINEAGE_H_
