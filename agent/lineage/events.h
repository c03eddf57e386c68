// Decoded events: what the probes saw, with addresses already turned into names and source sites.
// The decoder (agent/decoder.h) produces them from raw BPF events; the lineage consumes them. Tests
// build them by hand.
#ifndef CTXAGENT_AGENT_LINEAGE_EVENTS_H_
#define CTXAGENT_AGENT_LINEAGE_EVENTS_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace ctxagent {

// A source location in the target, interned per process: events and nodes hold a SiteId (4 bytes).
struct Site {
  std::string function;
  std::string file;
  int line = 0;
};
// The ways a site is written: "/src/app/main.go:42" (explanations), "main.go:42" (metric labels),
// "main.go:42 (main.handler)" (views).
std::string SiteLocation(const Site& site);
std::string ShortSiteString(const Site& site);
std::string SiteString(const Site& site);
// A duration as every report and view writes it: "250ms" below a second, else whole seconds
// ("6s", "2m5s", "1h0m0s").
std::string FormatAge(absl::Duration d);

using SiteId = uint32_t;
inline constexpr SiteId kNoSite = 0;

class SiteTable {
 public:
  SiteTable() { sites_.push_back(Site{"?", "?", 0}); }
  SiteId Intern(const Site& site);
  const Site& Get(SiteId id) const { return sites_[id < sites_.size() ? id : 0]; }
  size_t size() const { return sites_.size(); }

 private:
  std::vector<Site> sites_;
  absl::flat_hash_map<std::string, SiteId> index_;  // "file:line function"
};

enum class ContextKind { kCancel, kTimer, kAfterFunc, kUnknown };
const char* ContextKindName(ContextKind kind);

// What a context chain ends in when no cancelable ancestor is found.
enum class RootKind {
  kBackground,     // context.Background() or context.TODO()
  kWithoutCancel,  // context.WithoutCancel(...)
  kCustom,         // a Context implementation outside package context
};
const char* RootKindName(RootKind kind);

enum class CancelCause {
  kOwnCancel,  // its CancelFunc was called
  kParent,     // propagated from a cancelled ancestor
  kDeadline,   // its timer fired
};
const char* CancelCauseName(CancelCause cause);

// One link of the parent chain read at creation: the parent Context, its parent, ...
struct ParentLink {
  uint64_t data = 0;  // interface data word (address of the context value)
  enum class Type { kCancelable, kValue, kWithoutCancel, kBackground, kOther } type = Type::kOther;
};

struct ContextCreated {
  absl::Time time;
  uint64_t goid = 0;  // creating goroutine
  uint64_t addr = 0;  // the new context
  ContextKind kind = ContextKind::kUnknown;
  absl::Time deadline = absl::InfiniteFuture();  // timer contexts
  std::vector<ParentLink> parents;  // nearest first; ends at a root or when the chain was cut short
  SiteId site = kNoSite;            // the user's call (first frame outside package context)
  uint64_t g = 0;                   // the creating goroutine's runtime.g (0: unknown)
};

struct ContextCancelled {
  absl::Time time;
  uint64_t goid = 0;  // goroutine that ran the cancel
  uint64_t addr = 0;
  CancelCause cause = CancelCause::kOwnCancel;
  SiteId site = kNoSite;  // for kOwnCancel: where the CancelFunc was called
  // The cancelled context's parent data word at the cancel (0: not read). It tells a context from
  // another one the GC placed at its address while the probes were detached.
  uint64_t parent_word = 0;
};

struct GoroutineCreated {
  absl::Time time;
  uint64_t goid = 0;
  uint64_t parent_goid = 0;
  SiteId go_site = kNoSite;        // the `go` statement
  std::string start_function;      // e.g. "main.watch" or "main.main.func1"
  std::vector<uint64_t> captured;  // words captured by its function value
  // It captured a Context that no cancellation can reach: WithValue layers over Background/TODO
  // (`context.WithValue(context.Background(), k, v)` where `WithCancel(ctx)` was meant) or a
  // `context.WithoutCancel` link.
  bool captured_uncancelable = false;
  uint64_t g = 0;  // its runtime.g (0: unknown)
  // No probe will see it end (a sampled window without the exit probes): its end is read from
  // memory (ProcessLineage::Reconcile).
  bool exit_unseen = false;
};

struct GoroutineExited {
  absl::Time time;
  uint64_t goid = 0;
};

using DecodedEvent =
    std::variant<ContextCreated, ContextCancelled, GoroutineCreated, GoroutineExited>;

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_LINEAGE_EVENTS_H_
