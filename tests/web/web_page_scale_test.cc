// The page on a process with 100k tracked contexts (bench/synthetic_lineage.h): the graph is by
// site, so the browser lays out and draws a few hundred nodes whatever the number of contexts.
// Prints the C++ build time, the JSON's size and the browser's layout and draw times.
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/view/site_graph.h"
#include "agent/view/utf8.h"
#include "agent/view/web_page.h"
#include "bench/synthetic_lineage.h"
#include "gtest/gtest.h"
#include "tests/web/browser.h"

namespace ctxagent {
namespace {

TEST(WebPageScale, HundredThousandContextsRenderQuickly) {
  SyntheticLineage s = MakeSyntheticLineage(100000, 60);
  std::vector<Finding> findings = s.lineage->Evaluate(s.now, FindingOptions{});
  ASSERT_FALSE(findings.empty());
  absl::Time t0 = absl::Now();
  SiteGraph g = BuildSiteGraph(*s.lineage, findings, s.now);
  const double build_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  const std::string json = DumpJson(GraphToJson(*s.lineage, g));
  EXPECT_EQ(g.tracked_contexts, 100000u);
  EXPECT_LT(g.nodes.size(), 500u);
  const std::string page = std::string(CTXAGENT_WEB_OUT) + "/synthetic_100k.html";
  std::ofstream(page) << ExportHtml(*s.lineage, findings, "synthetic", s.now);

  auto browser = testing::Browser::Launch(CTXAGENT_CHROMIUM, 1600, 1000);
  ASSERT_TRUE(browser.ok()) << browser.status();
  ASSERT_TRUE((*browser)->Navigate("file://" + page).ok());
  auto timing = (*browser)->WaitFor("window.ctxagentTiming || null", absl::Seconds(30));
  ASSERT_TRUE(timing.ok()) << timing.status();
  const double layout_ms = (*timing)["layout_ms"], draw_ms = (*timing)["draw_ms"];
  EXPECT_EQ((*timing)["nodes"], g.nodes.size());
  EXPECT_TRUE(
      (*browser)->Eval("document.querySelectorAll('path.edge.broken').length > 0").value_or(false));
  printf(
      "[scale] 100000 tracked contexts: %zu nodes, %zu edges; BuildSiteGraph %.1f ms; JSON %zu "
      "bytes; browser layout %.1f ms, draw %.1f ms\n",
      g.nodes.size(), g.edges.size(), build_ms, json.size(), layout_ms, draw_ms);
  // Responsive: well under a second per update on this 2-core machine.
  EXPECT_LT(layout_ms + draw_ms, 1000);
  EXPECT_TRUE((*browser)->Screenshot(std::string(CTXAGENT_WEB_OUT) + "/synthetic_100k.png").ok());
}

}  // namespace
}  // namespace ctxagent
