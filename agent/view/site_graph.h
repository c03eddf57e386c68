// A process's lineage summarized by site: the model the terminal top view, the web page's SVG
// graph, its JSON and `-o dot` draw. Nodes are context creation sites and goroutine groups (one per
// `go` statement); edges say how contexts flow between them. Its size follows the number of sites
// in the program, not the number of contexts or goroutines. Links only the lineage and Abseil.
//
//   SiteGrowth growth;                            // one per process, kept between builds
//   SiteGraph g = BuildSiteGraph(lineage, findings, now);
//   growth.Update(g);                             // fills growth_per_s
//   SiteDetail d = DetailOf(lineage, *g.Find("s12"), 50);
#ifndef CTXAGENT_AGENT_VIEW_SITE_GRAPH_H_
#define CTXAGENT_AGENT_VIEW_SITE_GRAPH_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/lineage/lineage.h"

namespace ctxagent {

enum class SiteNodeType {
  kContexts,    // contexts created at one call site
  kGoroutines,  // goroutines started by one `go` statement
};
const char* SiteNodeTypeName(SiteNodeType type);  // "contexts", "goroutines"

enum class SiteEdgeType {
  kDerived,   // contexts at `to` derive from contexts at `from`
  kSpawned,   // goroutines of `to` started under (or with) contexts of `from`
  kCreates,   // goroutines of `from` created the contexts at `to`
  kRerooted,  // a goroutine started under `from` rooted `to` at Background/WithoutCancel
  kBroken,    // the same, and `from`'s cancellation was not obeyed: a broken chain finding
};
const char* SiteEdgeTypeName(SiteEdgeType type);  // "derived", "spawned", ...

struct SiteNode {
  std::string id;  // "s<site>" (contexts) or "g<go site>" (goroutines): stable for the process
  SiteNodeType type = SiteNodeType::kContexts;
  SiteId site_id = kNoSite;  // creation site, or the `go` statement
  Site site;                 // its file, line and function
  // Contexts.
  ContextKind kind = ContextKind::kUnknown;  // of the newest context there
  uint64_t created = 0, cancelled = 0;       // since attach, freed contexts included
  uint64_t tracked = 0, live = 0;            // in memory now / of those, not cancelled
  uint64_t cancelled_own = 0, cancelled_parent = 0, cancelled_deadline = 0;  // tracked ones
  uint64_t rooted = 0;  // tracked ones hanging from Background/TODO/WithoutCancel
  uint64_t leaked = 0;  // contexts the findings here count (orphaned, lost, timer build-up)
  // Goroutines.
  std::string function;                         // start function
  uint64_t goroutines = 0;                      // live
  uint64_t exited = 0;                          // exited, still tracked
  std::map<std::string, uint64_t> wait_states;  // live ones by wait reason, when the lineage has it
  // Both.
  double growth_per_s = 0;       // live count's change per second (SiteGrowth)
  std::vector<size_t> findings;  // indices into SiteGraph::findings

  uint64_t count() const { return type == SiteNodeType::kContexts ? live : goroutines; }
};

struct SiteEdge {
  size_t from = 0, to = 0;  // indices into SiteGraph::nodes
  SiteEdgeType type = SiteEdgeType::kDerived;
  uint64_t count = 0;  // contexts (derived, creates, rerooted, broken) or goroutines (spawned)
  std::vector<size_t> findings;
};

struct SiteGraph {
  int pid = 0;
  absl::Time at;
  std::vector<SiteNode> nodes;
  std::vector<SiteEdge> edges;
  std::vector<Finding> findings;
  uint64_t tracked_contexts = 0, live_contexts = 0, live_goroutines = 0;

  const SiteNode* Find(absl::string_view id) const;
  // Node indices, what needs attention first: findings, then leaked contexts, growth, size.
  std::vector<size_t> ByAttention() const;

  absl::flat_hash_map<std::string, size_t> index;  // node id -> index
};

// Builds the graph of what the lineage tracks now. `findings` are the latest Evaluate's.
SiteGraph BuildSiteGraph(const ProcessLineage& lineage, const std::vector<Finding>& findings,
                         absl::Time now);

// Change of every node's live count between builds: a sample at most every `every`, rates against
// the oldest sample within `window`.
class SiteGrowth {
 public:
  explicit SiteGrowth(absl::Duration window = absl::Seconds(10),
                      absl::Duration every = absl::Seconds(1))
      : window_(window), every_(every) {}
  void Update(SiteGraph& graph);

 private:
  struct Sample {
    absl::Time at;
    absl::flat_hash_map<std::string, uint64_t> counts;
  };
  absl::Duration window_, every_;
  std::deque<Sample> samples_;
};

// The contexts and goroutines behind one node, on demand.
struct SiteDetail {
  std::vector<ContextNode> contexts;  // newest first, at most `max`
  size_t more_contexts = 0;
  // Goroutines: a goroutine node's own; for a contexts node, those bound to, spawned under or
  // creating its contexts. Live first, then newest.
  std::vector<GoroutineNode> goroutines;
  std::vector<std::string> wait_states;  // parallel to `goroutines`; empty strings when unknown
  size_t more_goroutines = 0;
};
SiteDetail DetailOf(const ProcessLineage& lineage, const SiteNode& node, size_t max);
// Every node's, in graph.nodes' order: one pass over the lineage, not one per node.
std::vector<SiteDetail> DetailsOf(const ProcessLineage& lineage, const SiteGraph& graph,
                                  size_t max);

// The goroutine's wait reason ("chan receive", ...) once the lineage's GoroutineNode carries one
// (field `wait_reason`); empty until then.
template <typename G, typename = void>
struct HasWaitReason : std::false_type {};
template <typename G>
struct HasWaitReason<G, std::void_t<decltype(std::declval<const G&>().wait_reason)>>
    : std::true_type {};
template <typename G>
std::string WaitStateOf(const G& g) {
  if constexpr (HasWaitReason<G>::value) {
    return std::string(g.wait_reason);
  } else {
    return "";
  }
}

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_VIEW_SITE_GRAPH_H_
