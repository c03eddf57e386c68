// The site graph as JSON, the web page that draws it (HTML, JS and CSS embedded in the binary at
// build time: no CDN, no network), and the HTTP routes that serve both. The daemon and
// `attach --http` answer the same routes through ServeGraphRoute (agent/node/process_endpoints.h).
//
//   GET /                                the page (a process list; per process the site graph)
//   GET /processes/<pid>/graph           {"nodes": [...], "edges": [...], "findings": [...]}
//   GET /processes/<pid>/sites/<node id> one node's contexts, goroutines, causes and findings
#ifndef CTXAGENT_AGENT_VIEW_WEB_PAGE_H_
#define CTXAGENT_AGENT_VIEW_WEB_PAGE_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/lineage/lineage.h"
#include "agent/view/site_graph.h"
#include "nlohmann/json.hpp"

namespace ctxagent {

// Node: id, type, site {file, line, function}, kind ("cancel", "timer", ..., "go" for goroutine
// groups), created, cancelled, live, tracked, cancel_causes {own, parent, deadline}, rooted,
// leaked, goroutines, exited, function, wait_states, growth_per_s, findings (indices), rank
// (0: needs attention most). Edge: from, to (node ids), type (SiteEdgeTypeName), count, findings.
// Finding: FindingToJson's fields plus node (id) and edge ({from, to} or null).
nlohmann::json GraphToJson(const ProcessLineage& lineage, const SiteGraph& graph);
nlohmann::json DetailToJson(const ProcessLineage& lineage, const SiteGraph& graph,
                            const SiteNode& node, const SiteDetail& detail, absl::Time now);

// The page. With `data` (the export's {"processes": [...], "graphs": {pid: graph}, "details":
// {pid: {node id: detail}}}) it draws that instead of asking the server: a self-contained file.
std::string WebPage(const nlohmann::json* data = nullptr);
// `attach -o html`: one process's final state, every node's detail inlined.
std::string ExportHtml(const ProcessLineage& lineage, const std::vector<Finding>& findings,
                       const std::string& binary, absl::Time now);

struct WebResponse {
  int status = 200;
  std::string content_type;
  std::string body;
};

// One traced process as the graph routes see it (the caller holds whatever lock guards it).
struct GraphProcess {
  const ProcessLineage* lineage = nullptr;
  const std::vector<Finding>* findings = nullptr;
  SiteGrowth* growth = nullptr;  // may be null: no growth rates
};
// Calls `fn` with process `pid` while whatever guards it is held; false if it is not traced.
using GraphProcessLookup =
    std::function<bool(int pid, const std::function<void(const GraphProcess&)>& fn)>;

// Answers the routes above; nullopt for any other path (the caller's own routes).
std::optional<WebResponse> ServeGraphRoute(const std::string& path, absl::Time now,
                                           const GraphProcessLookup& lookup);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_VIEW_WEB_PAGE_H_
