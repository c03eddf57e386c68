#include "agent/view/site_graph.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using Link = ParentLink::Type;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// main's root (g1) -> request contexts (g2, one per request) -> each request's `go audit` (g3..)
// roots a timer at Background; the requests are cancelled: a broken chain. Plus a session site
// whose contexts nobody cancels, each watched by a goroutine.
class SiteGraphTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SiteTable& s = lin_.sites();
    root_ = s.Intern({"main.main", "/src/app/main.go", 10});
    req_ = s.Intern({"main.handle", "/src/app/main.go", 30});
    go_audit_ = s.Intern({"main.handle", "/src/app/main.go", 32});
    audit_ = s.Intern({"main.audit", "/src/app/audit.go", 7});
    Create(1, 0x100, ContextKind::kCancel, {{0x1, Link::kBackground}}, root_);
    for (int i = 0; i < 3; ++i) {
      const uint64_t req = 0x1000 + i * 0x10, goid = 10 + i;
      Create(2, req, ContextKind::kCancel, {{0x100, Link::kCancelable}}, req_);
      lin_.OnGoroutineCreated({t_, goid, 2, go_audit_, "main.audit", {}});
      Create(goid, 0x2000 + i * 0x10, ContextKind::kTimer, {{0x1, Link::kBackground}}, audit_);
      lin_.OnContextCancelled({t_, 2, req, CancelCause::kOwnCancel, req_});
    }
    t_ += absl::Seconds(10);
    findings_ = lin_.Evaluate(t_, FindingOptions{});
  }
  void Create(uint64_t goid, uint64_t addr, ContextKind kind, std::vector<ParentLink> parents,
              SiteId site) {
    lin_.OnContextCreated(
        {t_, goid, addr, kind,
         kind == ContextKind::kTimer ? t_ + absl::Hours(1) : absl::InfiniteFuture(), parents,
         site});
    t_ += absl::Milliseconds(1);
  }
  const SiteEdge* EdgeOf(const SiteGraph& g, const std::string& from, const std::string& to,
                         SiteEdgeType type) {
    for (const SiteEdge& e : g.edges) {
      if (g.nodes[e.from].id == from && g.nodes[e.to].id == to && e.type == type) return &e;
    }
    return nullptr;
  }
  std::string S(SiteId site) { return absl::StrCat("s", site); }
  std::string G(SiteId site) { return absl::StrCat("g", site); }

  absl::Time t_ = absl::FromUnixSeconds(1795564800);
  ProcessLineage lin_{7};
  SiteId root_, req_, go_audit_, audit_;
  std::vector<Finding> findings_;
};

TEST_F(SiteGraphTest, NodesAreSitesWithTheirCounts) {
  SiteGraph g = BuildSiteGraph(lin_, findings_, t_);
  EXPECT_EQ(g.nodes.size(), 4u);  // three context sites, one goroutine group
  const SiteNode* req = g.Find(S(req_));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->type, SiteNodeType::kContexts);
  EXPECT_EQ(req->site.line, 30);
  EXPECT_EQ(req->created, 3u);
  EXPECT_EQ(req->cancelled, 3u);
  EXPECT_EQ(req->cancelled_own, 3u);
  EXPECT_EQ(req->live, 0u);
  const SiteNode* audit = g.Find(S(audit_));
  ASSERT_NE(audit, nullptr);
  EXPECT_EQ(audit->live, 3u);
  EXPECT_EQ(audit->rooted, 3u);
  EXPECT_EQ(audit->kind, ContextKind::kTimer);
  const SiteNode* group = g.Find(G(go_audit_));
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->type, SiteNodeType::kGoroutines);
  EXPECT_EQ(group->function, "main.audit");
  EXPECT_EQ(group->goroutines, 3u);
  EXPECT_EQ(g.live_goroutines, 5u);  // g1 and g2 (seen as creators) and the three audits
}

TEST_F(SiteGraphTest, EdgesDeriveSpawnCreateAndBreak) {
  SiteGraph g = BuildSiteGraph(lin_, findings_, t_);
  const SiteEdge* derived = EdgeOf(g, S(root_), S(req_), SiteEdgeType::kDerived);
  ASSERT_NE(derived, nullptr);
  EXPECT_EQ(derived->count, 3u);
  const SiteEdge* spawned = EdgeOf(g, S(req_), G(go_audit_), SiteEdgeType::kSpawned);
  ASSERT_NE(spawned, nullptr);
  EXPECT_EQ(spawned->count, 3u);
  const SiteEdge* creates = EdgeOf(g, G(go_audit_), S(audit_), SiteEdgeType::kCreates);
  ASSERT_NE(creates, nullptr);
  EXPECT_EQ(creates->count, 3u);
  // The finding turns the re-rooting edge into the broken link, and attaches to both.
  ASSERT_EQ(findings_.size(), 1u);
  ASSERT_EQ(findings_[0].kind, FindingKind::kBrokenChain);
  const SiteEdge* broken = EdgeOf(g, S(req_), S(audit_), SiteEdgeType::kBroken);
  ASSERT_NE(broken, nullptr);
  EXPECT_EQ(broken->count, 3u);
  EXPECT_THAT(broken->findings, ElementsAre(0u));
  EXPECT_EQ(EdgeOf(g, S(req_), S(audit_), SiteEdgeType::kRerooted), nullptr);
  EXPECT_THAT(g.Find(S(audit_))->findings, ElementsAre(0u));
  EXPECT_THAT(g.Find(G(go_audit_))->findings, ElementsAre(0u));
  EXPECT_THAT(g.Find(S(req_))->findings, IsEmpty());
}

TEST_F(SiteGraphTest, ReRootingWithoutAFindingIsNotBroken) {
  SiteGraph g = BuildSiteGraph(lin_, {}, t_);
  EXPECT_NE(EdgeOf(g, S(req_), S(audit_), SiteEdgeType::kRerooted), nullptr);
  EXPECT_EQ(EdgeOf(g, S(req_), S(audit_), SiteEdgeType::kBroken), nullptr);
}

// A proven goroutine leak sits on its goroutines' `go` statement (made when the lineage never
// tracked them), not on a context node for the line they block on.
TEST_F(SiteGraphTest, GoroutineLeaksSitOnTheirGoStatement) {
  const SiteId blocked = lin_.sites().Intern({"main.worker.func1", "/src/app/worker.go", 77});
  const SiteId go = lin_.sites().Intern({"main.worker", "/src/app/worker.go", 75});
  Finding leak;
  leak.kind = FindingKind::kGoroutineLeak;
  leak.site = blocked;
  leak.go_sites = {go};
  leak.count = 3;
  findings_.push_back(leak);
  SiteGraph g = BuildSiteGraph(lin_, findings_, t_);
  EXPECT_EQ(g.index.count(S(blocked)), 0u);
  ASSERT_EQ(g.index.count(G(go)), 1u);
  const SiteNode& n = g.nodes[g.index.at(G(go))];
  EXPECT_EQ(n.type, SiteNodeType::kGoroutines);
  EXPECT_EQ(n.function, "main.worker.func1");
  ASSERT_EQ(n.findings.size(), 1u);
  EXPECT_EQ(g.findings[n.findings[0]].kind, FindingKind::kGoroutineLeak);
}

TEST_F(SiteGraphTest, AttentionPutsFindingsFirst) {
  SiteGraph g = BuildSiteGraph(lin_, findings_, t_);
  std::vector<size_t> order = g.ByAttention();
  ASSERT_EQ(order.size(), g.nodes.size());
  EXPECT_EQ(g.nodes[order[0]].findings.size(), 1u);
  EXPECT_EQ(g.nodes[order.back()].findings.size(), 0u);
}

TEST_F(SiteGraphTest, GrowthIsTheLiveCountsChangePerSecond) {
  SiteGrowth growth(absl::Seconds(10), absl::Seconds(1));
  SiteGraph first = BuildSiteGraph(lin_, findings_, t_);
  growth.Update(first);
  EXPECT_EQ(first.Find(S(audit_))->growth_per_s, 0);
  for (int i = 0; i < 4; ++i) {
    lin_.OnGoroutineCreated({t_, 100u + i, 2, go_audit_, "main.audit", {}});
    Create(100 + i, 0x9000 + i * 0x10, ContextKind::kTimer, {{0x1, Link::kBackground}}, audit_);
  }
  SiteGraph later = BuildSiteGraph(lin_, findings_, t_ + absl::Seconds(2));
  growth.Update(later);
  EXPECT_NEAR(later.Find(S(audit_))->growth_per_s, 2.0, 0.01);     // 4 more contexts in 2 s
  EXPECT_NEAR(later.Find(G(go_audit_))->growth_per_s, 2.0, 0.01);  // 4 more goroutines
  EXPECT_EQ(later.Find(S(req_))->growth_per_s, 0);
}

TEST_F(SiteGraphTest, DetailListsASitesContextsAndGoroutines) {
  SiteGraph g = BuildSiteGraph(lin_, findings_, t_);
  SiteDetail d = DetailOf(lin_, *g.Find(S(audit_)), 2);
  ASSERT_EQ(d.contexts.size(), 2u);
  EXPECT_EQ(d.more_contexts, 1u);
  EXPECT_GT(d.contexts[0].id, d.contexts[1].id);  // newest first
  EXPECT_EQ(d.contexts[0].site, audit_);
  ASSERT_EQ(d.goroutines.size(), 2u);  // their creators, the audits
  EXPECT_EQ(d.more_goroutines, 1u);
  EXPECT_EQ(d.goroutines[0].go_site, go_audit_);
  EXPECT_EQ(d.wait_states.size(), 2u);

  SiteDetail group = DetailOf(lin_, *g.Find(G(go_audit_)), 10);
  EXPECT_THAT(group.contexts, IsEmpty());
  ASSERT_EQ(group.goroutines.size(), 3u);
  EXPECT_EQ(group.goroutines[0].start_function, "main.audit");
}

TEST_F(SiteGraphTest, DetailsOfEveryNodeMatchOneByOne) {
  SiteGraph g = BuildSiteGraph(lin_, findings_, t_);
  std::vector<SiteDetail> all = DetailsOf(lin_, g, 2);
  ASSERT_EQ(all.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    SiteDetail one = DetailOf(lin_, g.nodes[i], 2);
    ASSERT_EQ(all[i].contexts.size(), one.contexts.size()) << g.nodes[i].id;
    for (size_t k = 0; k < one.contexts.size(); ++k) {
      EXPECT_EQ(all[i].contexts[k].id, one.contexts[k].id);
    }
    ASSERT_EQ(all[i].goroutines.size(), one.goroutines.size()) << g.nodes[i].id;
    for (size_t k = 0; k < one.goroutines.size(); ++k) {
      EXPECT_EQ(all[i].goroutines[k].goid, one.goroutines[k].goid);
    }
    EXPECT_EQ(all[i].more_contexts, one.more_contexts);
    EXPECT_EQ(all[i].more_goroutines, one.more_goroutines);
  }
  // The request site's goroutines: g2 (their creator) and the audits started under them.
  const SiteDetail& req = all[g.index.at(S(req_))];
  EXPECT_EQ(req.goroutines.size() + req.more_goroutines, 4u);
}

TEST(SiteGraphScaleTest, SizeFollowsSitesNotContexts) {
  ProcessLineage lin(1);
  absl::Time t = absl::FromUnixSeconds(1795564800);
  std::vector<SiteId> sites;
  for (int i = 0; i < 5; ++i) sites.push_back(lin.sites().Intern({"main.f", "main.go", 100 + i}));
  for (int i = 0; i < 5000; ++i) {
    lin.OnContextCreated({t,
                          1,
                          0x10000 + i * 0x40ull,
                          ContextKind::kCancel,
                          absl::InfiniteFuture(),
                          {{0x1, Link::kBackground}},
                          sites[i % 5]});
  }
  SiteGraph g = BuildSiteGraph(lin, {}, t);
  EXPECT_EQ(g.nodes.size(), 5u);
  EXPECT_EQ(g.tracked_contexts, 5000u);
  EXPECT_EQ(g.Find(absl::StrCat("s", sites[0]))->live, 1000u);
}

}  // namespace
}  // namespace ctxagent
