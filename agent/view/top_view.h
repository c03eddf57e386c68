// Text renderings of the site graph: the live top-like terminal view (findings first, then the
// site tree ordered by what needs attention, fitted to the terminal) and Graphviz dot.
#ifndef CTXAGENT_AGENT_VIEW_TOP_VIEW_H_
#define CTXAGENT_AGENT_VIEW_TOP_VIEW_H_

#include <string>
#include <vector>

#include "agent/view/site_graph.h"
#include "agent/view/views.h"

namespace ctxagent {

struct TerminalSize {
  int columns = 80;
  int rows = 24;
};
// The terminal's size (TIOCGWINSZ on `fd`); 80x24 when it is not a terminal. Never below 80x24.
TerminalSize QueryTerminalSize(int fd);

// One line: pid, contexts, goroutines, events and losses, overhead, sampling, elapsed time.
std::string TopHeader(const SiteGraph& graph, const RunInfo& run, bool probes_paused);

// The whole screen: `header`, the findings, then the site tree; at most size.rows - 1 lines of at
// most size.columns columns each.
std::string RenderTop(const SiteGraph& graph, const std::string& header, TerminalSize size);

// `ctxagent attach`'s live screen: the site graph of `lineage` now, its growth since the last
// screens, rendered by RenderTop under TopHeader.
std::string RenderLiveTop(const ProcessLineage& lineage, const std::vector<Finding>& findings,
                          const RunInfo& run, absl::Time now, bool probes_paused,
                          SiteGrowth& growth, TerminalSize size);

// The site tree alone: every node once, under the first node it flows from (derivation, spawn,
// creation), children ordered by the most attention anything below them needs.
std::string RenderSiteTree(const SiteGraph& graph, int columns, int max_lines);

// The site graph for Graphviz: derivations solid green, broken links dashed red, leaking sites
// filled.
std::string RenderSiteDot(const SiteGraph& graph);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_VIEW_TOP_VIEW_H_
