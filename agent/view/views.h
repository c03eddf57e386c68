// Renderings of a process's lineage: the live tree, the findings report, JSON Lines, Graphviz.
#ifndef CTXAGENT_AGENT_VIEW_VIEWS_H_
#define CTXAGENT_AGENT_VIEW_VIEWS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/control/overhead.h"
#include "agent/control/sampling.h"
#include "agent/lineage/lineage.h"
#include "agent/trace/tracer.h"
#include "nlohmann/json.hpp"

namespace ctxagent {

// What the run cost and lost, shown with every view.
struct RunInfo {
  absl::Duration elapsed;
  uint64_t events = 0;
  TracerCounters counters;
  OverheadSample overhead;  // averaged over the run (or the last interval, live)
  TrapCosts trap_costs;
  double sampling_ratio = 1.0;  // share of the time the probes were attached
  SamplingPlan plan;
  // The heap marks (agent/heap): how many ran, why they stopped ("" while they run), the last
  // one's figures, and every goroutine proven leaked (goid order).
  struct Marks {
    uint64_t count = 0;
    std::string stopped;
    uint64_t spans = 0, heap_bytes = 0, objects_marked = 0, bytes_read = 0, memory = 0;
    // Contexts asked about, those with a cancel func held, and (goroutine, context) holds.
    uint64_t contexts = 0, cancel_funcs_held = 0, context_holds = 0;
    double cpu_seconds = 0;
    std::vector<uint64_t> leaked_goids;
  } marks;
};

nlohmann::json SiteJson(const Site& site);  // {"file", "line", "function"}

// Contexts under their parents with their goroutines; at most `max_lines` lines.
std::string RenderTree(const ProcessLineage& lineage, absl::Time now, int max_lines);
std::string RenderFindings(const ProcessLineage& lineage, const std::vector<Finding>& findings);
std::string RenderSummary(const ProcessLineage& lineage, const RunInfo& run);

nlohmann::json FindingToJson(const ProcessLineage& lineage, const Finding& f, absl::Time now);
nlohmann::json SummaryToJson(const ProcessLineage& lineage, const RunInfo& run);
// The tracked contexts (parent ids, kind, site, age, state) and live goroutines, at most
// `max_nodes` contexts.
nlohmann::json TreeToJson(const ProcessLineage& lineage, absl::Time now, size_t max_nodes = 5000);
// One goroutine: goid, `go` site, start function, the contexts it is bound to and parked on, and
// its state read from memory (wait_reason as pprof prints it, waiting_s, channels).
nlohmann::json GoroutineJson(const ProcessLineage& lineage, const GoroutineNode& g, absl::Time now);
// GET /processes/<pid>/goroutines: {"pid", "goroutines": [...], "omitted"}, every goroutine last
// read from memory (ProcessLineage::ObserveGoroutines), at most `max`.
nlohmann::json GoroutinesToJson(const ProcessLineage& lineage, absl::Time now, size_t max = 100000);
// "goroutines by go statement and state:" with counts and the longest wait, at most `max_lines`.
std::string RenderGoroutineGroups(const ProcessLineage& lineage, absl::Time now, int max_lines);
// The lineage graph; edges of broken links (broken chains, roots under a cancelled spawner) dashed
// red.
std::string RenderDot(const ProcessLineage& lineage, const std::vector<Finding>& findings);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_VIEW_VIEWS_H_
