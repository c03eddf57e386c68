#include "agent/view/web_page.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/view/utf8.h"
#include "agent/view/views.h"
#include "agent/view/web_assets.h"

namespace ctxagent {
namespace {

constexpr size_t kDetailMax = 50;        // contexts and goroutines listed per node
constexpr size_t kExportDetailMax = 20;  // the same in an export, which holds every node's

nlohmann::json NodeToJson(const SiteNode& n, size_t rank) {
  nlohmann::json j = {{"id", n.id},
                      {"type", SiteNodeTypeName(n.type)},
                      {"site", SiteJson(n.site)},
                      {"growth_per_s", n.growth_per_s},
                      {"findings", n.findings},
                      {"rank", rank}};
  if (n.type == SiteNodeType::kContexts) {
    j.update({{"kind", ContextKindName(n.kind)},
              {"created", n.created},
              {"cancelled", n.cancelled},
              {"live", n.live},
              {"tracked", n.tracked},
              {"cancel_causes",
               {{"own", n.cancelled_own},
                {"parent", n.cancelled_parent},
                {"deadline", n.cancelled_deadline}}},
              {"rooted", n.rooted},
              {"leaked", n.leaked}});
  } else {
    j.update({{"kind", "go"},
              {"function", n.function},
              {"goroutines", n.goroutines},
              {"live", n.goroutines},
              {"exited", n.exited},
              {"wait_states", n.wait_states}});
  }
  return j;
}

nlohmann::json ContextToJson(const ProcessLineage& lineage, const ContextNode& c, absl::Time now) {
  nlohmann::json j = {{"id", c.id},
                      {"kind", ContextKindName(c.kind)},
                      {"age_s", absl::ToDoubleSeconds(now - c.created)},
                      {"creator_goid", c.creator_goid},
                      {"state", c.cancelled ? "cancelled" : "live"}};
  if (c.parent != 0) {
    j["parent"] = c.parent;
    if (const ContextNode* p = lineage.FindContext(c.parent)) {
      j["parent_site"] = SiteJson(lineage.sites().Get(p->site));
    }
  } else {
    j["root"] = RootKindName(c.root);
  }
  if (c.deadline != absl::InfiniteFuture()) {
    j["deadline_in_s"] = absl::ToDoubleSeconds(c.deadline - now);
  }
  if (c.cancelled) {
    j["cancelled_s_ago"] = absl::ToDoubleSeconds(now - *c.cancelled);
    j["cause"] = CancelCauseName(c.cause);
    if (c.cancel_site != kNoSite) j["cancel_site"] = SiteJson(lineage.sites().Get(c.cancel_site));
    if (c.cancelled_by != 0) j["cancelled_by"] = c.cancelled_by;
  }
  return j;
}

nlohmann::json GoroutineToJson(const ProcessLineage& lineage, const GoroutineNode& g,
                               const std::string& wait_state, absl::Time now) {
  nlohmann::json j = {{"goid", g.goid},
                      {"parent_goid", g.parent_goid},
                      {"function", g.start_function},
                      {"go_site", SiteJson(lineage.sites().Get(g.go_site))},
                      {"age_s", absl::ToDoubleSeconds(now - g.started)},
                      {"state", g.exited ? "exited" : "running"},
                      {"bound", g.bound}};
  if (!wait_state.empty()) j["wait_state"] = wait_state;
  if (g.spawner_context != 0) j["spawner_context"] = g.spawner_context;
  return j;
}

SiteGraph Build(const GraphProcess& p, absl::Time now) {
  SiteGraph g = BuildSiteGraph(*p.lineage, *p.findings, now);
  if (p.growth != nullptr) p.growth->Update(g);
  return g;
}

WebResponse Json(const nlohmann::json& j) { return {200, "application/json", DumpJson(j) + "\n"}; }

}  // namespace

nlohmann::json GraphToJson(const ProcessLineage& lineage, const SiteGraph& graph) {
  std::vector<size_t> rank(graph.nodes.size());
  std::vector<size_t> order = graph.ByAttention();
  for (size_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  nlohmann::json nodes = nlohmann::json::array();
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    nodes.push_back(NodeToJson(graph.nodes[i], rank[i]));
  }
  nlohmann::json edges = nlohmann::json::array();
  std::vector<const SiteEdge*> by_finding(graph.findings.size(), nullptr);
  for (const SiteEdge& e : graph.edges) {
    edges.push_back({{"from", graph.nodes[e.from].id},
                     {"to", graph.nodes[e.to].id},
                     {"type", SiteEdgeTypeName(e.type)},
                     {"count", e.count},
                     {"findings", e.findings}});
    for (size_t f : e.findings) by_finding[f] = &e;
  }
  nlohmann::json findings = nlohmann::json::array();
  for (size_t i = 0; i < graph.findings.size(); ++i) {
    nlohmann::json f = FindingToJson(lineage, graph.findings[i], graph.at);
    f["node"] = absl::StrCat("s", graph.findings[i].site);
    f["edge"] = nullptr;
    if (const SiteEdge* e = by_finding[i]) {
      f["edge"] = {{"from", graph.nodes[e->from].id}, {"to", graph.nodes[e->to].id}};
    }
    findings.push_back(std::move(f));
  }
  return {{"pid", graph.pid},
          {"at", absl::ToDoubleSeconds(graph.at - absl::UnixEpoch())},
          {"tracked_contexts", graph.tracked_contexts},
          {"live_contexts", graph.live_contexts},
          {"live_goroutines", graph.live_goroutines},
          {"nodes", std::move(nodes)},
          {"edges", std::move(edges)},
          {"findings", std::move(findings)}};
}

nlohmann::json DetailToJson(const ProcessLineage& lineage, const SiteGraph& graph,
                            const SiteNode& node, const SiteDetail& detail, absl::Time now) {
  nlohmann::json contexts = nlohmann::json::array();
  for (const ContextNode& c : detail.contexts) contexts.push_back(ContextToJson(lineage, c, now));
  nlohmann::json goroutines = nlohmann::json::array();
  for (size_t i = 0; i < detail.goroutines.size(); ++i) {
    goroutines.push_back(
        GoroutineToJson(lineage, detail.goroutines[i], detail.wait_states[i], now));
  }
  nlohmann::json findings = nlohmann::json::array();
  for (size_t f : node.findings) findings.push_back(FindingToJson(lineage, graph.findings[f], now));
  return {{"pid", graph.pid},
          {"node", NodeToJson(node, 0)},
          {"contexts", std::move(contexts)},
          {"more_contexts", detail.more_contexts},
          {"goroutines", std::move(goroutines)},
          {"more_goroutines", detail.more_goroutines},
          {"findings", std::move(findings)}};
}

std::string WebPage(const nlohmann::json* data) {
  std::string inline_data;
  if (data != nullptr) {
    // Inside <script>: no "</script>" may appear, so every '<' is escaped (valid JSON, same value).
    inline_data = absl::StrCat(
        "window.CTXAGENT_DATA = ", absl::StrReplaceAll(DumpJson(*data), {{"<", "\\u003c"}}), ";");
  }
  return absl::StrReplaceAll(kWebIndexHtml,
                             {{"/*APP_CSS*/", kWebAppCss},
                              {"/*APP_DATA*/", inline_data},
                              {"/*APP_JS*/", absl::StrCat(kWebLayoutJs, kWebAppJs)}});
}

std::string ExportHtml(const ProcessLineage& lineage, const std::vector<Finding>& findings,
                       const std::string& binary, absl::Time now) {
  const SiteGraph graph = BuildSiteGraph(lineage, findings, now);
  const LineageStats st = lineage.stats();
  nlohmann::json details = nlohmann::json::object();
  const std::vector<SiteDetail> all = DetailsOf(lineage, graph, kExportDetailMax);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    details[graph.nodes[i].id] = DetailToJson(lineage, graph, graph.nodes[i], all[i], now);
  }
  const std::string pid = absl::StrCat(lineage.pid());
  nlohmann::json data = {{"processes",
                          {{{"pid", lineage.pid()},
                            {"binary", binary},
                            {"contexts_live", st.live_contexts},
                            {"goroutines", st.live_goroutines},
                            {"findings", findings.size()}}}},
                         {"graphs", {{pid, GraphToJson(lineage, graph)}}},
                         {"details", {{pid, std::move(details)}}}};
  return WebPage(&data);
}

std::optional<WebResponse> ServeGraphRoute(const std::string& path, absl::Time now,
                                           const GraphProcessLookup& lookup) {
  if (path == "/" || path == "/index.html") {
    return WebResponse{200, "text/html; charset=utf-8", WebPage()};
  }
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  int pid;
  if (parts.size() < 3 || parts[0] != "processes" || !absl::SimpleAtoi(parts[1], &pid)) {
    return std::nullopt;
  }
  const bool graph = parts.size() == 3 && parts[2] == "graph";
  const bool site = parts.size() == 4 && parts[2] == "sites";
  if (!graph && !site) return std::nullopt;
  WebResponse out;
  const bool traced = lookup(pid, [&](const GraphProcess& p) {
    SiteGraph g = Build(p, now);
    if (graph) {
      out = Json(GraphToJson(*p.lineage, g));
      return;
    }
    const SiteNode* n = g.Find(parts[3]);
    out = n == nullptr
              ? WebResponse{404, "text/plain", absl::StrCat("no site node \"", parts[3], "\"\n")}
              : Json(DetailToJson(*p.lineage, g, *n, DetailOf(*p.lineage, *n, kDetailMax), now));
  });
  if (!traced) return WebResponse{404, "text/plain", "no such traced process\n"};
  return out;
}

}  // namespace ctxagent
