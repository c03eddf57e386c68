// site_graph_bench: what the site graph and its views cost on a process with many tracked
// contexts (bench/synthetic_lineage.h). Prints the time of each step and the graph JSON's size;
// --html=FILE writes the exported page, to time its layout and drawing in a browser.
//
//   site_graph_bench [--contexts=100000] [--handlers=60] [--repeat=5] [--html=FILE]
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "agent/view/site_graph.h"
#include "agent/view/top_view.h"
#include "agent/view/utf8.h"
#include "agent/view/web_page.h"
#include "bench/synthetic_lineage.h"

ABSL_FLAG(int, contexts, 100000, "tracked contexts");
ABSL_FLAG(int, handlers, 60, "request paths (5 context sites and 1 or 2 `go` sites each)");
ABSL_FLAG(int, repeat, 5, "runs of each step (the best is printed)");
ABSL_FLAG(std::string, html, "", "write the exported page here");

namespace {

// Best wall time of `repeat` runs, in milliseconds.
double Best(int repeat, const std::function<void()>& fn) {
  double best = 1e18;
  for (int i = 0; i < repeat; ++i) {
    absl::Time t0 = absl::Now();
    fn();
    best = std::min(best, absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace ctxagent;
  const int repeat = absl::GetFlag(FLAGS_repeat);
  absl::Time t0 = absl::Now();
  SyntheticLineage s =
      MakeSyntheticLineage(absl::GetFlag(FLAGS_contexts), absl::GetFlag(FLAGS_handlers));
  const double feed_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  const ProcessLineage& l = *s.lineage;
  std::vector<Finding> findings;
  const double eval_ms = Best(1, [&] { findings = s.lineage->Evaluate(s.now, FindingOptions{}); });
  // The lineage's own iteration, which BuildSiteGraph and DetailOf cannot go below.
  uint64_t n = 0;
  const double scan_ms = Best(repeat, [&] { l.ForEachContext([&](const ContextNode&) { ++n; }); });
  SiteGraph g;
  const double build_ms = Best(repeat, [&] { g = BuildSiteGraph(l, findings, s.now); });
  std::string json;
  const double json_ms = Best(repeat, [&] { json = DumpJson(GraphToJson(l, g)); });
  std::string screen;
  const double top_ms = Best(repeat, [&] {
    screen = RenderTop(g, "header", TerminalSize{200, 50});
  });
  std::string dot;
  const double dot_ms = Best(repeat, [&] { dot = RenderSiteDot(g); });
  const SiteNode* busiest = &g.nodes[g.ByAttention().front()];
  const double detail_ms = Best(repeat, [&] { DetailOf(l, *busiest, 50); });
  std::string html;
  const double html_ms = Best(1, [&] { html = ExportHtml(l, findings, "synthetic", s.now); });
  printf("tracked contexts %lu, live %lu, goroutines %lu; findings %zu\n", g.tracked_contexts,
         g.live_contexts, g.live_goroutines, findings.size());
  printf("site graph: %zu nodes, %zu edges; JSON %zu bytes; dot %zu bytes\n", g.nodes.size(),
         g.edges.size(), json.size(), dot.size());
  printf("feed %.0f ms (not the views' cost), Evaluate %.1f ms, ForEachContext alone %.1f ms\n",
         feed_ms, eval_ms, scan_ms);
  printf(
      "BuildSiteGraph %.1f ms, GraphToJson+dump %.2f ms, RenderTop %.2f ms, RenderSiteDot %.2f "
      "ms, DetailOf(busiest site) %.1f ms, ExportHtml %.1f ms (%zu bytes)\n",
      build_ms, json_ms, top_ms, dot_ms, detail_ms, html_ms, html.size());
  if (const std::string path = absl::GetFlag(FLAGS_html); !path.empty()) {
    std::ofstream(path) << html;
    printf("page written to %s\n", path.c_str());
  }
  return 0;
}
