#include "agent/view/views.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::HasSubstr;

// main's root -> request context in g2 -> g3 re-roots at Background; the request is cancelled.
class ViewsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SiteTable& sites = lin_.sites();
    root_site_ = sites.Intern({"main.main", "/src/app/main.go", 10});
    req_site_ = sites.Intern({"main.serve", "/src/app/main.go", 30});
    reroot_site_ = sites.Intern({"main.refresh", "/src/app/refresh.go", 90});
    using Link = ParentLink::Type;
    lin_.OnContextCreated({t_,
                           1,
                           0x1000,
                           ContextKind::kCancel,
                           absl::InfiniteFuture(),
                           {{0x10, Link::kBackground}},
                           root_site_});
    lin_.OnGoroutineCreated({t_, 2, 1, root_site_, "main.serve", {}});
    lin_.OnContextCreated({t_,
                           2,
                           0x2000,
                           ContextKind::kCancel,
                           absl::InfiniteFuture(),
                           {{0x1000, Link::kCancelable}},
                           req_site_});
    lin_.OnGoroutineCreated({t_, 3, 2, req_site_, "main.refresh", {}});
    lin_.OnContextCreated({t_,
                           3,
                           0x3000,
                           ContextKind::kTimer,
                           t_ + absl::Hours(1),
                           {{0x10, Link::kBackground}},
                           reroot_site_});
    t_ += absl::Milliseconds(10);
    lin_.OnContextCancelled({t_, 2, 0x2000, CancelCause::kOwnCancel, req_site_});
    t_ += absl::Seconds(10);
    findings_ = lin_.Evaluate(t_, FindingOptions{});
  }
  absl::Time t_ = absl::FromUnixSeconds(1795564800);
  ProcessLineage lin_{42};
  SiteId root_site_, req_site_, reroot_site_;
  std::vector<Finding> findings_;
};

TEST_F(ViewsTest, FindingJsonHasTheContract) {
  ASSERT_EQ(findings_.size(), 1u);
  nlohmann::json j = FindingToJson(lin_, findings_[0], t_);
  EXPECT_EQ(j["type"], "finding");
  EXPECT_EQ(j["kind"], "broken_chain");
  EXPECT_EQ(j["site"]["file"], "/src/app/refresh.go");
  EXPECT_EQ(j["site"]["line"], 90);
  EXPECT_EQ(j["site"]["function"], "main.refresh");
  EXPECT_EQ(j["goroutines"][0]["goid"], 3);
  EXPECT_EQ(j["goroutines"][0]["go_site"]["line"], 30);
  EXPECT_EQ(j["context"]["kind"], "timer");
  EXPECT_NEAR(j["context"]["age_s"].get<double>(), 10.01, 0.001);
  EXPECT_EQ(j["context"]["addr"], "0x3000");  // what a test program prints with %p
  EXPECT_EQ(j["related_site"]["line"], 30);
}

TEST_F(ViewsTest, SummaryCountsCauses) {
  nlohmann::json s = SummaryToJson(lin_, RunInfo{absl::Seconds(10), 6, {}});
  EXPECT_EQ(s["type"], "summary");
  EXPECT_EQ(s["contexts_created"], 3);
  EXPECT_EQ(s["cancelled"]["own"], 1);
  EXPECT_EQ(s["live_contexts"], 2);
  EXPECT_EQ(s["events_lost"], 0);
  EXPECT_EQ(s["top_sites"].size(), 3u);
}

TEST_F(ViewsTest, DotDrawsTheBrokenLinkDashedRed) {
  std::string dot = RenderDot(lin_, findings_);
  EXPECT_THAT(dot, HasSubstr("digraph lineage"));
  EXPECT_THAT(dot, HasSubstr("c1 -> c2;"));  // the request under main's root
  EXPECT_THAT(dot, HasSubstr("c2 -> c3 [style=dashed, color=red"));
}

TEST_F(ViewsTest, TreeShowsContextsUnderParents) {
  std::string tree = RenderTree(lin_, t_, 10);
  EXPECT_THAT(tree, HasSubstr("#1 cancel main.go:10 (main.main)"));
  EXPECT_THAT(tree, HasSubstr("  #2 cancel main.go:30 (main.serve)"));  // indented under #1
  EXPECT_THAT(tree, HasSubstr("cancelled 10s ago by its own cancel"));
  EXPECT_THAT(RenderTree(lin_, t_, 1), HasSubstr("... 2 more contexts"));
  nlohmann::json j = TreeToJson(lin_, t_);
  EXPECT_EQ(j["contexts"].size(), 3u);
  EXPECT_EQ(j["contexts"][1]["parent"], 1);
}

}  // namespace
}  // namespace ctxagent
