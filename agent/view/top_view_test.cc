#include "agent/view/top_view.h"

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using Link = ParentLink::Type;
using ::testing::HasSubstr;
using ::testing::Not;

// A request site whose `go audit` re-roots (a broken chain), and 40 healthy sites that fill the
// screen: the findings must stay on it.
class TopViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SiteTable& s = lin_.sites();
    const SiteId root = s.Intern({"main.main", "/src/app/main.go", 10});
    req_ = s.Intern({"main.handle", "/src/app/main.go", 30});
    const SiteId req = req_;
    const SiteId go_audit = s.Intern({"main.handle", "/src/app/main.go", 32});
    audit_ = s.Intern({"main.audit", "/src/app/audit.go", 7});
    Create(1, 0x100, {{0x1, Link::kBackground}}, root);
    for (int i = 0; i < 3; ++i) {
      Create(2, 0x1000 + i * 0x10, {{0x100, Link::kCancelable}}, req);
      lin_.OnGoroutineCreated({t_, 10u + i, 2, go_audit, "main.audit", {}});
      Create(10 + i, 0x2000 + i * 0x10, {{0x1, Link::kBackground}}, audit_);
      lin_.OnContextCancelled({t_, 2, 0x1000 + i * 0x10ull, CancelCause::kOwnCancel, req});
    }
    for (int i = 0; i < 40; ++i) {
      const SiteId healthy = s.Intern({"main.worker", "/src/app/worker.go", 100 + i});
      Create(1, 0x5000 + i * 0x10, {{0x100, Link::kCancelable}}, healthy);
    }
    t_ += absl::Seconds(10);
    graph_ = BuildSiteGraph(lin_, lin_.Evaluate(t_, FindingOptions{}), t_);
  }
  void Create(uint64_t goid, uint64_t addr, std::vector<ParentLink> parents, SiteId site) {
    lin_.OnContextCreated(
        {t_, goid, addr, ContextKind::kCancel, absl::InfiniteFuture(), parents, site});
  }
  absl::Time t_ = absl::FromUnixSeconds(1795564800);
  ProcessLineage lin_{7};
  SiteId req_, audit_;
  SiteGraph graph_;
};

TEST_F(TopViewTest, FitsTheTerminalWithFindingsFirst) {
  for (TerminalSize size : {TerminalSize{80, 24}, TerminalSize{200, 50}}) {
    std::string screen = RenderTop(graph_, std::string(300, 'h'), size);
    std::vector<std::string> lines = absl::StrSplit(screen, '\n', absl::SkipEmpty());
    EXPECT_LE(static_cast<int>(lines.size()), size.rows - 1) << screen;
    for (const std::string& l : lines) EXPECT_LE(static_cast<int>(l.size()), size.columns) << l;
    ASSERT_GE(lines.size(), 3u);
    EXPECT_THAT(lines[2], HasSubstr("broken_chain")) << screen;
    EXPECT_THAT(lines[2], HasSubstr("audit.go:7"));
    EXPECT_THAT(screen, HasSubstr("more sites")) << screen;  // 40 healthy sites do not all fit
  }
}

TEST_F(TopViewTest, TreeShowsTheBrokenLinkOnTheSiteItCutsOff) {
  std::string tree = RenderSiteTree(graph_, 200, 100);
  std::vector<std::string> lines = absl::StrSplit(tree, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 5u);
  // The most urgent subtree first: main's root, the request site, its `go audit`, the audits.
  EXPECT_THAT(lines[1], HasSubstr("main.go:10"));
  EXPECT_THAT(lines[2], HasSubstr("main.go:30"));
  EXPECT_THAT(lines[3], HasSubstr("go main.go:32 main.audit"));
  EXPECT_THAT(lines[4], ::testing::StartsWith("!"));  // the mark of a finding, first column
  EXPECT_THAT(lines[4], HasSubstr("audit.go:7"));
  EXPECT_THAT(lines[4], HasSubstr("cut from main.go:30"));
  EXPECT_THAT(lines[2], ::testing::StartsWith("    main.go:30"));  // indented under main's root
  EXPECT_THAT(tree, Not(HasSubstr("more sites")));
}

TEST_F(TopViewTest, DotDrawsSitesAndTheBrokenLinkRedDashed) {
  std::string dot = RenderSiteDot(graph_);
  EXPECT_THAT(dot, HasSubstr("digraph sites"));
  const std::string broken_edge = absl::StrCat("s", req_, " -> s", audit_);
  EXPECT_THAT(dot, HasSubstr(broken_edge + " [color=red, style=dashed"));
  EXPECT_THAT(dot, HasSubstr("color=\"#2a9d3a\""));  // derivations
  // One node per site, not per context.
  const long lines = std::count(dot.begin(), dot.end(), '\n');
  EXPECT_EQ(lines, 3 + 44 + static_cast<long>(graph_.edges.size()) + 1) << dot;
}

TEST(TopViewFitTest, NoFindingsSaysSo) {
  ProcessLineage lin(3);
  SiteGraph g = BuildSiteGraph(lin, {}, absl::Now());
  std::string screen = RenderTop(g, "header", TerminalSize{80, 24});
  EXPECT_THAT(screen, HasSubstr("no findings"));
}

}  // namespace
}  // namespace ctxagent
