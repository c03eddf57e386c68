#include "agent/node/process_endpoints.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/view/utf8.h"
#include "agent/view/views.h"
#include "agent/view/web_page.h"

namespace ctxagent {

HttpResponse JsonResponse(const nlohmann::json& j) {
  return {200, "application/json", DumpJson(j) + "\n"};
}

ProcessEndpoints::ProcessEndpoints(ProcessProvider& provider) : provider_(provider) {
  AddLeaf("tree", [](const ProcessView& p, const HttpRequest&) {
    return JsonResponse(TreeToJson(p.lineage, absl::Now()));
  });
  AddLeaf("findings", [](const ProcessView& p, const HttpRequest&) {
    const absl::Time now = absl::Now();
    nlohmann::json out = nlohmann::json::array();
    for (const Finding& f : p.findings) out.push_back(FindingToJson(p.lineage, f, now));
    return JsonResponse(out);
  });
  // Every goroutine: goid, wait reason as pprof prints it, `go` site, contexts bound or parked on.
  AddLeaf("goroutines", [](const ProcessView& p, const HttpRequest&) {
    return JsonResponse(GoroutinesToJson(p.lineage, absl::Now()));
  });
  pprof_.Register(*this, provider_);
}

void ProcessEndpoints::AddLeaf(const std::string& name, Leaf leaf) {
  leaves_[name] = std::move(leaf);
}

void ProcessEndpoints::AddPage(const std::string& path, Page page) {
  pages_[path] = std::move(page);
}

HttpResponse ProcessEndpoints::Handle(const HttpRequest& request) const {
  if (auto page = pages_.find(request.path); page != pages_.end()) {
    return page->second(provider_, request);
  }
  // The lineage page, /processes/<pid>/graph and /processes/<pid>/sites/<id>.
  auto graph = ServeGraphRoute(request.path, absl::Now(),
                               [this](int pid, const std::function<void(const GraphProcess&)>& fn) {
                                 return provider_.WithProcess(pid, [&](const ProcessView& p) {
                                   fn(GraphProcess{&p.lineage, &p.findings, p.growth});
                                 });
                               });
  if (graph) return {graph->status, graph->content_type, graph->body};
  if (request.path == "/processes") {
    nlohmann::json out = nlohmann::json::array();
    provider_.ForEachProcess([&](const ProcessView& p) {
      LineageStats st = p.lineage.stats();
      nlohmann::json entry = p.labels;
      entry["pid"] = p.pid;
      entry["go_version"] = p.binary.build_info().version.raw;
      entry["contexts_live"] = st.live_contexts;
      entry["goroutines"] = st.live_goroutines;
      entry["findings"] = p.findings.size();
      entry["work_pause_s"] = absl::ToDoubleSeconds(p.work_pause);
      out.push_back(std::move(entry));
    });
    return JsonResponse(out);
  }
  std::vector<std::string> parts = absl::StrSplit(request.path, '/', absl::SkipEmpty());
  pid_t pid;
  if (parts.size() >= 3 && parts[0] == "processes" && absl::SimpleAtoi(parts[1], &pid)) {
    auto leaf = leaves_.find(absl::StrJoin(parts.begin() + 2, parts.end(), "/"));
    if (leaf != leaves_.end()) {
      HttpResponse out;
      if (!provider_.WithProcess(pid,
                                 [&](const ProcessView& p) { out = leaf->second(p, request); })) {
        return {404, "text/plain", absl::StrCat("pid ", pid, " is not traced\n")};
      }
      return out;
    }
  }
  std::vector<std::string> names;
  for (const auto& [path, page] : pages_) names.push_back(path);
  names.push_back("/processes");
  for (const auto& [leaf, fn] : leaves_) names.push_back(absl::StrCat("/processes/<pid>/", leaf));
  return {404, "text/plain", absl::StrCat("endpoints: ", absl::StrJoin(names, " "), "\n")};
}

}  // namespace ctxagent
