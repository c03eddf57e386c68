#include "agent/lineage/lineage.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/lineage/lineage_test_fixture.h"

namespace ctxagent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST(SiteTableTest, InternsOnceAndKeepsUnknownAtZero) {
  SiteTable t;
  SiteId a = t.Intern(Site{"main.f", "main.go", 10});
  SiteId b = t.Intern(Site{"main.g", "main.go", 10});
  EXPECT_NE(a, kNoSite);
  EXPECT_NE(a, b);
  EXPECT_EQ(t.Intern(Site{"main.f", "main.go", 10}), a);
  EXPECT_EQ(t.Get(a).line, 10);
  EXPECT_EQ(t.Get(kNoSite).file, "?");
  EXPECT_EQ(t.Get(999).file, "?");
  EXPECT_EQ(t.size(), 3u);
}

TEST(NamesTest, Stable) {
  EXPECT_STREQ(FindingKindName(FindingKind::kOrphanedDone), "orphaned_done");
  EXPECT_STREQ(FindingKindName(FindingKind::kLostCancel), "lost_cancel");
  EXPECT_STREQ(FindingKindName(FindingKind::kBrokenChain), "broken_chain");
  EXPECT_STREQ(FindingKindName(FindingKind::kIgnoredCancel), "ignored_cancel");
  EXPECT_STREQ(FindingKindName(FindingKind::kTimerBuildup), "timer_buildup");
  EXPECT_STREQ(ContextKindName(ContextKind::kTimer), "timer");
  EXPECT_STREQ(RootKindName(RootKind::kWithoutCancel), "without_cancel");
  EXPECT_STREQ(CancelCauseName(CancelCause::kDeadline), "deadline");
}

TEST_F(LineageTest, ParentFoundThroughValueAndWithoutCancelLinks) {
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  EXPECT_EQ(Node(root).parent, 0u);
  EXPECT_EQ(Node(root).root, RootKind::kBackground);

  // WithCancel(WithValue(WithValue(root))): the parent is root.
  uint64_t via_value = Create(kMain, At(11),
                              {{0xc0000a0000, Link::kValue},
                               {0xc0000a0100, Link::kValue},
                               {root, Link::kCancelable},
                               {kBackgroundAddr, Link::kBackground}});
  EXPECT_EQ(Node(via_value).parent, Id(root));

  // WithCancel(WithValue(WithoutCancel(root))): detached, rooted at WithoutCancel.
  uint64_t detached = Create(kMain, At(12),
                             {{0xc0000a0200, Link::kValue},
                              {0xc0000a0300, Link::kWithoutCancel},
                              {root, Link::kCancelable},
                              {kBackgroundAddr, Link::kBackground}});
  EXPECT_EQ(Node(detached).parent, 0u);
  EXPECT_EQ(Node(detached).root, RootKind::kWithoutCancel);

  // A custom Context wrapping root: root still resolves; alone it is a custom root.
  uint64_t custom_over =
      Create(kMain, At(13), {{0xc0000a0400, Link::kOther}, {root, Link::kCancelable}});
  EXPECT_EQ(Node(custom_over).parent, Id(root));
  uint64_t custom = Create(kMain, At(14), {{0xc0000a0500, Link::kOther}});
  EXPECT_EQ(Node(custom).parent, 0u);
  EXPECT_EQ(Node(custom).root, RootKind::kCustom);
  // Over Background, a custom Context stays the root: it may have a Done of its own.
  uint64_t custom_bg =
      Create(kMain, At(16), {{0xc0000a0600, Link::kOther}, {kBackgroundAddr, Link::kBackground}});
  EXPECT_EQ(Node(custom_bg).root, RootKind::kCustom);

  // A cancelable parent made before attach: not Background (it may still cancel).
  uint64_t pre_attach = Create(kMain, At(15), Under(0xc0000bbb00));
  EXPECT_EQ(Node(pre_attach).parent, 0u);
  EXPECT_EQ(Node(pre_attach).root, RootKind::kCustom);

  EXPECT_THAT(Node(root).children, ElementsAre(Id(via_value), Id(custom_over)));
  // The creator of new roots (at Background or below WithoutCancel) records its first and last.
  const GoroutineNode* g = lin_.FindGoroutine(kMain);
  ASSERT_NE(g, nullptr);
  EXPECT_THAT(g->rooted, ElementsAre(Id(root), Id(detached)));
}

TEST_F(LineageTest, CancelAttributionOwnParentDeadline) {
  SiteId cancel_site = At(40);
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  uint64_t req = Create(5, At(20), Under(root));
  uint64_t db = Create(5, At(21), Under(req), ContextKind::kTimer, absl::Seconds(30));
  uint64_t grandchild = Create(5, At(22), {{db, Link::kCancelable}, {req, Link::kCancelable}});
  uint64_t quick = Create(5, At(23), Under(root), ContextKind::kTimer, absl::Milliseconds(50));

  Advance(absl::Milliseconds(50));
  Cancel(quick, 0, CancelCause::kDeadline);
  Advance(absl::Milliseconds(10));
  Cancel(req, 5, CancelCause::kOwnCancel, cancel_site);
  Cancel(db, 5, CancelCause::kParent);
  Cancel(grandchild, 5, CancelCause::kParent);
  Cancel(req, 9, CancelCause::kOwnCancel, At(41));  // second cancel: a no-op in Go
  Cancel(0xdeadbeef, 5);                            // never created (before attach)

  EXPECT_EQ(Node(quick).cause, CancelCause::kDeadline);
  EXPECT_EQ(Node(req).cause, CancelCause::kOwnCancel);
  EXPECT_EQ(Node(req).cancel_site, cancel_site);
  EXPECT_EQ(Node(req).cancel_goid, 5u);
  // The timer child was ended by its parent before its own deadline.
  EXPECT_EQ(Node(db).cause, CancelCause::kParent);
  EXPECT_EQ(Node(db).cancelled_by, Id(req));
  EXPECT_LT(*Node(db).cancelled, Node(db).deadline);
  // Nearest cancelled ancestor: db (itself cancelled by req).
  EXPECT_EQ(Node(grandchild).cancelled_by, Id(db));
  EXPECT_FALSE(Node(root).cancelled.has_value());

  LineageStats st = lin_.stats();
  EXPECT_EQ(st.contexts_created, 5u);
  EXPECT_EQ(st.cancelled_own, 1u);
  EXPECT_EQ(st.cancelled_parent, 2u);
  EXPECT_EQ(st.cancelled_deadline, 1u);
  EXPECT_EQ(st.live_contexts, 1u);
  EXPECT_EQ(st.unknown_cancels, 1u);
}

TEST_F(LineageTest, GcAddressReuseMakesANewNode) {
  constexpr uint64_t kAddr = 0xc000200000;
  SiteId leak = At(30);
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(7, kMain, At(50));
  Create(7, leak, Bg(), ContextKind::kCancel, absl::InfiniteDuration(), kAddr);
  ContextId first = Id(kAddr);
  Exit(7);
  // The GC freed it (uncancelled) and a new context lands at the same address.
  Go(8, kMain, At(51));
  Create(8, At(31), Under(root), ContextKind::kCancel, absl::InfiniteDuration(), kAddr);
  ContextId second = Id(kAddr);
  EXPECT_NE(first, second);
  EXPECT_EQ(lin_.stats().address_reuses, 1u);
  EXPECT_EQ(lin_.FindContext(first), nullptr);  // unreachable and unreferenced: dropped at once
  EXPECT_EQ(lin_.stats().live_contexts, 2u);

  // A cancel at the address is the new context's.
  Cancel(kAddr, 8, CancelCause::kOwnCancel, At(32));
  EXPECT_TRUE(Node(kAddr).cancelled.has_value());
  EXPECT_EQ(Node(kAddr).id, second);

  // A cancelled context still referenced by a running goroutine stays tracked after reuse.
  constexpr uint64_t kAddr2 = 0xc000300000;
  Create(8, At(33), Under(root), ContextKind::kCancel, absl::InfiniteDuration(), kAddr2);
  ContextId held = Id(kAddr2);
  Go(9, 8, At(52), {kAddr2});
  Cancel(kAddr2, 8);
  Create(8, At(34), Under(root), ContextKind::kCancel, absl::InfiniteDuration(), kAddr2);
  EXPECT_NE(lin_.FindContext(held), nullptr);
  EXPECT_NE(Id(kAddr2), held);
  Go(10, 8, At(53), {kAddr2});
  EXPECT_THAT(lin_.FindGoroutine(10)->bound, ElementsAre(Id(kAddr2)));
}

TEST_F(LineageTest, UncancelledRootedContextsAreNotLostCancels) {
  // `ctx, _ := context.WithCancel(context.Background())` (or under WithoutCancel, as net/http's
  // dial contexts) in short-lived goroutines: no parent's children map holds them, so the GC frees
  // them (and reuses their addresses). Sloppy, but nothing leaks.
  SiteId leak = At(30);
  for (int i = 0; i < 4; ++i) {
    uint64_t g = 100 + i;
    Go(g, kMain, At(50));
    uint64_t addr = Create(g, leak, Bg());
    Exit(g);
    Advance(absl::Seconds(1));
    if (i % 2 == 0) {
      uint64_t reused =
          Create(kMain, At(31), Bg(), ContextKind::kCancel, absl::InfiniteDuration(), addr);
      Cancel(reused, kMain);
    }
  }
  Advance(absl::Seconds(10));
  auto f = Eval();
  EXPECT_TRUE(f.empty()) << Describe(f);
  EXPECT_EQ(lin_.stats().address_reuses, 2u);
}

// The leak checked on real binaries (docs/mechanisms): a session context kept in a struct, its
// watcher blocked on <-ctx.Done(), and the handler returns without ever calling cancel.
TEST_F(LineageTest, OrphanedDoneChannel) {
  SiteId session = At(18, "main.newSession");
  SiteId watch_go = At(20, "main.newSession");
  SiteId handler_go = At(60, "main.main");
  for (uint64_t i = 0; i < 3; ++i) {
    uint64_t handler = 10 + i;
    Go(handler, kMain, handler_go, {}, "main.handle");
    uint64_t ctx = Create(handler, session, Bg());
    Go(100 + i, handler, watch_go, {ctx}, "main.(*session).watch");
    Advance(absl::Milliseconds(100));
    Exit(handler);
  }
  Advance(absl::Seconds(2));
  EXPECT_THAT(Eval(), IsEmpty()) << "reported before the grace period";
  Advance(absl::Seconds(5));
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kOrphanedDone);
  EXPECT_EQ(f[0].site, session);
  EXPECT_EQ(f[0].count, 3);
  EXPECT_THAT(f[0].goroutines, UnorderedElementsAre(100, 101, 102));
  EXPECT_THAT(f[0].go_sites, ElementsAre(watch_go));
  EXPECT_NE(f[0].example, 0u);
  EXPECT_GE(f[0].oldest_age, f[0].newest_age);
  EXPECT_THAT(f[0].explanation, HasSubstr("never wake"));
}

TEST_F(LineageTest, NotOrphanedWhileSomethingCanStillCancel) {
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  // 1. Parent is main's live root: main can still cancel it.
  Go(10, kMain, At(60));
  uint64_t under_root = Create(10, At(18), Under(root));
  Go(100, 10, At(20), {under_root});
  Exit(10);
  // 2. Its deadline is due within the grace period.
  Go(11, kMain, At(60));
  uint64_t timed = Create(11, At(19), Bg(), ContextKind::kTimer, absl::Seconds(9));
  Go(101, 11, At(21), {timed});
  Exit(11);
  // 3. A custom parent may cancel it.
  Go(12, kMain, At(60));
  uint64_t custom = Create(12, At(22), {{0xc0000cc000, Link::kOther}});
  Go(102, 12, At(23), {custom});
  Exit(12);
  // 4. The creator is still running (it may call cancel later).
  Go(13, kMain, At(60));
  uint64_t alive = Create(13, At(24), Bg());
  Go(103, 13, At(25), {alive});
  Advance(absl::Seconds(6));
  EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
}

TEST_F(LineageTest, LostCancelGrowingIsReportedSingleLongLivedIsNot) {
  SiteId root_site = At(10, "main.main");
  SiteId leak = At(30, "main.handle");
  uint64_t root = Create(kMain, root_site, Bg());
  Go(2, kMain, At(11, "main.main"), {root}, "main.serve");
  uint64_t next = 1000;
  auto requests = [&](int n) {
    for (int i = 0; i < n; ++i) {
      uint64_t g = next++;
      Go(g, 2, At(70, "main.serve"), {}, "main.handle");
      Create(g, leak, Under(root));  // cancel func stored and never called
      Advance(absl::Milliseconds(200));
      Exit(g);
    }
  };
  requests(3);
  Advance(absl::Seconds(6));
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kLostCancel);
  EXPECT_EQ(f[0].site, leak);
  EXPECT_EQ(f[0].count, 3);
  EXPECT_THAT(f[0].explanation, HasSubstr("never cancelled"));

  // Holding between traced windows is the same leak: still reported, nothing more since.
  Advance(absl::Seconds(5));
  f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].count, 3);
  EXPECT_THAT(f[0].explanation, HasSubstr("0 more since the last check"));
  requests(2);
  Advance(absl::Seconds(6));
  f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].count, 5);
  EXPECT_GT(f[0].oldest_age, f[0].newest_age);

  // An hour later and many evaluations on: the leak holds, main's root is never a finding.
  for (int i = 0; i < 12; ++i) {
    Advance(absl::Minutes(5));
    EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair(std::string("lost_cancel"), 30)));
  }
}

// A set that drains is not accumulating: once some of its contexts are cancelled after all, the
// site is withdrawn until it grows again.
TEST_F(LineageTest, LostCancelWithdrawnWhenItsCountFalls) {
  SiteId leak = At(30, "main.handle");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  std::vector<uint64_t> made;
  for (uint64_t g = 1000; g < 1004; ++g) {
    Go(g, kMain, At(70, "main.main"), {}, "main.handle");
    made.push_back(Create(g, leak, Under(root)));
    Exit(g);
  }
  Advance(absl::Seconds(6));
  EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair(std::string("lost_cancel"), 30)));
  Cancel(made[0], kMain, CancelCause::kOwnCancel, At(80, "main.cleanup"));
  Advance(absl::Seconds(1));
  EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
}

TEST_F(LineageTest, LostCancelInMainLoopNeedsGrowthNotExit) {
  // main never exits: its contexts count once old, and only when it holds several from one site.
  SiteId once = At(10, "main.main");
  SiteId loop = At(12, "main.main");
  uint64_t root = Create(kMain, once, Bg());
  for (int i = 0; i < 4; ++i) {
    Create(kMain, loop, Under(root));
    Advance(absl::Seconds(10));
  }
  EXPECT_THAT(Eval(), IsEmpty()) << "not old enough yet: " << Describe(Eval());
  Advance(absl::Seconds(31));
  auto f = Eval();
  EXPECT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("lost_cancel"), 12))) << Describe(f);
}

// A request handler starts a background goroutine that builds its own context from Background: the
// request's cancellation cannot reach it (spawner site -> goroutine -> new root site).
TEST_F(LineageTest, BrokenChain) {
  SiteId request = At(30, "main.serve");
  SiteId reroot = At(90, "main.refresh");
  SiteId refresh_go = At(45, "main.handle");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(2, kMain, At(11, "main.main"), {}, "main.serve");
  uint64_t req = Create(2, request, Under(root));
  Go(3, 2, At(31, "main.serve"), {req}, "main.handle");
  uint64_t db = Create(3, At(40), Under(req), ContextKind::kTimer, absl::Seconds(2));
  Cancel(db, 3);  // a DB call, done: the handler still works under req
  // The refresher also captured the request context (it reads values from it), then re-roots.
  Go(4, 3, refresh_go, {req}, "main.handle.func1");
  Create(4, reroot, Bg(), ContextKind::kTimer, absl::Hours(1));
  EXPECT_EQ(lin_.FindGoroutine(4)->spawner_context, Id(req));
  Exit(3);
  Cancel(req, 2, CancelCause::kOwnCancel, At(33, "main.serve"));
  Advance(absl::Seconds(3));
  EXPECT_THAT(Eval(), IsEmpty());
  Advance(absl::Seconds(3));
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << "one goroutine, one finding: " << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kBrokenChain);
  EXPECT_EQ(f[0].site, reroot);
  EXPECT_EQ(f[0].related_site, request);
  EXPECT_THAT(f[0].goroutines, ElementsAre(4));
  EXPECT_THAT(f[0].go_sites, ElementsAre(refresh_go));
  EXPECT_EQ(f[0].count, 1);
  EXPECT_EQ(f[0].example_kind, ContextKind::kTimer);
  EXPECT_THAT(f[0].explanation, HasSubstr("Background"));
}

// `context.WithTimeout(context.WithoutCancel(req), time.Hour)`: a new root as much as Background.
TEST_F(LineageTest, RerootingBelowWithoutCancelIsABrokenChain) {
  SiteId request = At(30, "main.serve");
  SiteId reroot = At(90, "main.audit");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  uint64_t req = Create(kMain, request, Under(root));
  Go(4, kMain, At(45, "main.serve"), {req}, "main.serve.func1");
  Create(4, reroot, {{0xc000990000, Link::kWithoutCancel}}, ContextKind::kTimer, absl::Hours(1));
  Cancel(req, kMain, CancelCause::kOwnCancel, At(33, "main.serve"));
  Advance(absl::Seconds(6));
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kBrokenChain);
  EXPECT_EQ(f[0].site, reroot);
  EXPECT_EQ(f[0].related_site, request);
  EXPECT_THAT(f[0].explanation, HasSubstr("WithoutCancel"));
}

TEST_F(LineageTest, RerootingUnderANeverCancelledContextIsNotBroken) {
  // `go srv.Serve()` from main: Serve makes its own base context; main's root is never cancelled.
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(2, kMain, At(11, "main.main"), {}, "net/http.(*Server).Serve");
  EXPECT_EQ(lin_.FindGoroutine(2)->spawner_context, Id(root));
  Create(2, At(3000, "net/http.(*Server).Serve"), Bg());
  // A re-rooting goroutine that finishes within the grace period after its spawner's cancel.
  uint64_t req = Create(2, At(30), Under(root));
  Go(3, 2, At(31), {}, "main.handle");
  Create(3, At(90), Bg());
  Cancel(req, 2);
  Advance(absl::Seconds(2));
  Exit(3);
  Advance(absl::Minutes(2));
  EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
}

TEST_F(LineageTest, IgnoredCancellationVersusExitWithinGrace) {
  SiteId job = At(30, "main.runJob");
  SiteId step = At(33, "main.runJob");
  SiteId cancel_site = At(38, "main.runJob");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(2, kMain, At(11), {}, "main.runJob");
  uint64_t ctx = Create(2, job, Under(root));
  uint64_t child = Create(2, step, Under(ctx));
  Go(3, 2, At(35), {ctx}, "main.poll");    // loops on time.Sleep, never checks ctx
  Go(4, 2, At(36), {ctx}, "main.wait");    // select on <-ctx.Done(): exits right away
  Go(5, 2, At(37), {child}, "main.step");  // bound to a descendant; ignores it too
  Advance(absl::Seconds(1));
  Cancel(ctx, 2, CancelCause::kOwnCancel, cancel_site);
  Cancel(child, 2, CancelCause::kParent);
  Advance(absl::Milliseconds(300));
  Exit(4);
  Advance(absl::Seconds(3));
  EXPECT_THAT(Eval(), IsEmpty()) << "within grace";
  Advance(absl::Seconds(3));
  auto f = Eval();
  EXPECT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("ignored_cancel"), 30),
                                    std::make_pair(std::string("ignored_cancel"), 33)))
      << Describe(f);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_THAT(f[0].goroutines, ElementsAre(3));
  EXPECT_EQ(f[0].related_site, cancel_site);
  EXPECT_THAT(f[0].explanation, HasSubstr("cancelled 6s ago but 1 goroutine"));
  EXPECT_THAT(f[1].goroutines, ElementsAre(5));
  EXPECT_EQ(f[1].related_site, cancel_site) << "the cancel came from the parent";
  // Once they exit, nothing is left.
  Exit(3);
  Exit(5);
  EXPECT_THAT(Eval(), IsEmpty());
}

TEST_F(LineageTest, TimerBuildupVersusTimeoutsThatFire) {
  SiteId cache = At(50, "main.cacheGet");
  SiteId quick = At(51, "main.query");
  SiteId handled = At(52, "main.query");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  uint64_t next = 1000;
  auto requests = [&](int n) {
    for (int i = 0; i < n; ++i) {
      uint64_t g = next++;
      Go(g, kMain, At(70), {}, "main.handle");
      // WithTimeout(ctx, time.Hour) with the cancel func dropped.
      Create(g, cache, Under(root), ContextKind::kTimer, absl::Hours(1));
      // A short timeout that fires.
      uint64_t q = Create(g, quick, Under(root), ContextKind::kTimer, absl::Milliseconds(100));
      // A long timeout cancelled by the handler.
      uint64_t h = Create(g, handled, Under(root), ContextKind::kTimer, absl::Hours(1));
      Advance(absl::Milliseconds(100));
      Cancel(q, 0, CancelCause::kDeadline);
      Cancel(h, g, CancelCause::kOwnCancel);
      Exit(g);
    }
  };
  requests(4);
  Advance(absl::Seconds(6));
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kTimerBuildup);
  EXPECT_EQ(f[0].site, cache);
  EXPECT_EQ(f[0].count, 4);
  EXPECT_EQ(f[0].example_kind, ContextKind::kTimer);
  Advance(absl::Seconds(5));
  EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair(std::string("timer_buildup"), 50)))
      << "holding";
  requests(1);
  Advance(absl::Seconds(6));
  EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair(std::string("timer_buildup"), 50)));
}

TEST_F(LineageTest, OneFindingPerSiteGoroutinesCapped) {
  SiteId site = At(30);
  SiteId go_site = At(31);
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  for (int i = 0; i < 25; ++i) {
    uint64_t c = Create(kMain, site, Under(root));
    Go(100 + i, kMain, go_site, {c});
    Cancel(c, kMain);
  }
  Advance(absl::Seconds(6));
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].count, 25);
  EXPECT_EQ(f[0].goroutines.size(), 20u);
  EXPECT_THAT(f[0].go_sites, ElementsAre(go_site));
  EXPECT_THAT(f[0].explanation, HasSubstr("25 goroutines"));
}

// A service doing everything right for two minutes: no finding in any evaluation window.
TEST_F(LineageTest, HealthyProgramsProduceNoFindings) {
  SiteId s_root = At(10, "main.main"), s_pool = At(12, "main.main");
  SiteId s_conn = At(3001, "net/http.(*conn).serve"),
         s_req = At(3002, "net/http.(*conn).readRequest");
  SiteId s_db = At(40, "main.handle"), s_group = At(41, "main.handle");
  SiteId s_after = At(42, "main.handle"), s_flush = At(80, "main.flush");
  SiteId s_sub = At(47, "main.handle");
  SiteId s_fire = At(43, "main.handle"), s_client = At(3100, "net/http.setRequestCancel");
  uint64_t root = Create(kMain, s_root, Bg());  // signal.NotifyContext-like root held by main
  uint64_t pool = Create(kMain, s_pool, Under(root));
  for (uint64_t w = 0; w < 4; ++w) Go(10 + w, kMain, At(13), {pool}, "main.worker");
  Go(2, kMain, At(14), {}, "net/http.(*Server).Serve");
  uint64_t goid = 1000;
  std::vector<uint64_t> conns;
  std::vector<uint64_t> flushes;
  for (int i = 0; i < 5; ++i) {  // keep-alive connections: one long-lived context each
    uint64_t c = goid++;
    Go(c, 2, At(3000), {}, "net/http.(*conn).serve");
    Create(c, s_conn, {{0xc0000d0000, Link::kValue}, {kBackgroundAddr, Link::kBackground}});
    conns.push_back(c);
  }
  for (int r = 0; r < 240; ++r) {
    uint64_t conn = conns[r % conns.size()];
    // Server side: per-request context, cancelled when the handler returns.
    uint64_t req =
        Create(conn, s_req,
               {{0xc0000d1000, Link::kValue},
                {lin_.FindContext(lin_.FindGoroutine(conn)->rooted[0])->addr, Link::kCancelable}});
    uint64_t h = goid++;
    Go(h, conn, At(3003), {req}, "main.handle");
    // A DB call with a timeout, through WithValue layers, cancelled by defer.
    uint64_t db = Create(h, s_db, {{0xc0000d2000, Link::kValue}, {req, Link::kCancelable}},
                         ContextKind::kTimer, absl::Seconds(2));
    // errgroup: WithCancelCause + workers that return, Wait cancels.
    uint64_t group = Create(h, s_group, Under(req));
    const uint64_t workers = goid;
    goid += 3;
    for (int k = 0; k < 3; ++k) Go(workers + k, h, At(44), {group}, "errgroup.(*Group).Go.func1");
    // AfterFunc registered and stopped: never cancelled, not a leak; the GC recycles its address.
    Create(h, s_after, Under(req), ContextKind::kAfterFunc, absl::InfiniteDuration(),
           0xc0000e0000 + (r % 16) * 0x80);
    // A sub-context left to its parent: cancelled by the request's cancel; its goroutine exits
    // then.
    uint64_t sub = Create(h, s_sub, Under(req));
    const uint64_t sub_worker = goid++;
    Go(sub_worker, h, At(46), {sub}, "main.stream");
    // A short timeout that fires.
    uint64_t fire = Create(h, s_fire, Under(req), ContextKind::kTimer, absl::Milliseconds(5));
    // HTTP client request with a deadline, cancelled after the response.
    uint64_t client = Create(h, s_client, Under(db), ContextKind::kTimer, absl::Seconds(1));
    Advance(absl::Milliseconds(5));
    Cancel(fire, 0, CancelCause::kDeadline);
    Cancel(client, h);
    for (int k = 0; k < 3; ++k) Exit(workers + k);
    Cancel(group, h);
    Cancel(db, h);
    // A flush that must outlive the request: WithoutCancel, finishes a bit later.
    uint64_t f = goid++;
    Go(f, h, At(45), {0xc0000d3000}, "main.flush");
    flushes.push_back(Create(f, s_flush,
                             {{0xc0000d3000, Link::kWithoutCancel}, {req, Link::kCancelable}},
                             ContextKind::kTimer, absl::Seconds(3)));
    Advance(absl::Milliseconds(100));
    Exit(h);
    Cancel(req, conn);  // the server cancels the request context after the handler returns
    Cancel(sub, conn, CancelCause::kParent);
    Advance(absl::Milliseconds(20));
    Exit(sub_worker);
    if (r >= 4) {  // the flush from four requests (2s) ago finishes now; goid stride is 6
      Cancel(flushes[r - 4], f - 4 * 6);
      Exit(f - 4 * 6);
    }
    Advance(absl::Milliseconds(375));
    if (r % 10 == 9) {
      auto findings = Eval();
      EXPECT_THAT(findings, IsEmpty()) << "at request " << r << ":\n" << Describe(findings);
      lin_.Collect(now_, opts_);
    }
  }
  LineageStats st = lin_.stats();
  EXPECT_EQ(st.contexts_created, 2u + 5u + 240u * 8u);
  EXPECT_EQ(st.cancelled_parent, 240u);
  EXPECT_LT(st.tracked_contexts, 200u) << "Collect keeps the finished requests out of memory";
}

TEST_F(LineageTest, CollectKeepsWhatFindingsNeed) {
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  uint64_t done = Create(kMain, At(31), Under(root));
  uint64_t c = Create(kMain, At(30), Under(root));
  Go(4, kMain, At(36), {done});
  Go(3, kMain, At(35), {c});  // main works under c: c is also its spawner context
  Cancel(c, kMain);
  Cancel(done, kMain);
  Exit(4);
  Advance(absl::Minutes(5));
  lin_.Collect(now_, opts_);
  EXPECT_EQ(Id(done), 0u) << "finished: freed";
  EXPECT_EQ(lin_.FindGoroutine(4), nullptr);
  EXPECT_NE(Id(c), 0u) << "a running goroutine still holds it";
  EXPECT_NE(Id(root), 0u);
  EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair(std::string("ignored_cancel"), 30)));
  EXPECT_EQ(lin_.stats().freed_contexts, 1u);
}

TEST_F(LineageTest, MemoryStaysBoundedWithCollect) {
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  SiteId s = At(30), go_site = At(31);
  ContextCreated e;
  e.goid = kMain;
  e.kind = ContextKind::kCancel;
  e.site = s;
  e.parents = Under(root);
  uint64_t max_tracked = 0;
  uint64_t goid = 100;
  for (int i = 1; i <= 1'000'000; ++i) {
    e.time = now_;
    e.addr = 0xc000400000 + (i % 4096) * 0x80;  // the GC recycles a bounded heap
    lin_.OnContextCreated(e);
    if (i % 10 == 0) {
      Go(goid, kMain, go_site, {e.addr});
      Exit(goid++);
    }
    lin_.OnContextCancelled(ContextCancelled{now_, kMain, e.addr, CancelCause::kOwnCancel, s});
    Advance(absl::Microseconds(500));
    if (i % 10'000 == 0) {
      lin_.Collect(now_, opts_);
      max_tracked = std::max(max_tracked, lin_.stats().tracked_contexts);
    }
  }
  LineageStats st = lin_.stats();
  std::printf(
      "[ memory ] 1e6 create+cancel: max tracked after Collect %lu, freed %lu, reuses %lu\n",
      static_cast<unsigned long>(max_tracked), static_cast<unsigned long>(st.freed_contexts),
      static_cast<unsigned long>(st.address_reuses));
  // Cancelled 2*grace = 10s ago at most: 20k contexts at 2k/s, plus root.
  EXPECT_LE(max_tracked, 20'100u);
  EXPECT_GE(st.freed_contexts, 970'000u);
  size_t goroutines = 0;
  lin_.ForEachGoroutine([&](const GoroutineNode&) { ++goroutines; });
  EXPECT_LE(goroutines, 2'100u);
  EXPECT_THAT(Eval(), IsEmpty());
}

// The fingerprint is kept as nodes go live and end: every way a node ends (cancel, an address
// reused, memory read after a pause, an exit, collection) must take back exactly what it added.
TEST_F(LineageTest, LiveFingerprintComesBackWhenTheSameNodesAreLive) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(2, kMain, At(11));
  const uint64_t f0 = lin_.LiveFingerprint();
  Cancel(Create(2, At(20), Under(root)), 2);
  EXPECT_EQ(lin_.LiveFingerprint(), f0) << "cancelled";
  const uint64_t reused = Create(2, At(21), Under(root));
  Cancel(Create(2, At(22), Under(root), ContextKind::kCancel, absl::InfiniteDuration(), reused), 2);
  EXPECT_EQ(lin_.LiveFingerprint(), f0) << "gone (address reused), then the new one cancelled";
  Go(3, 2, At(12));
  const uint64_t g3_root = Create(3, At(23), Bg());  // goroutine 3's first rooted at Background
  const uint64_t f1 = lin_.LiveFingerprint();
  EXPECT_NE(f1, f0);
  Cancel(Create(3, At(24), Bg()), 3);  // a later root changes nothing
  EXPECT_EQ(lin_.LiveFingerprint(), f1);
  lin_.OnProbesPaused();
  FakeMemory memory;
  memory.goroutines[GAddr(3)] = LivenessOracle::State::kEnded;
  memory.contexts[g3_root] = LivenessOracle::State::kEnded;
  lin_.Reconcile(now_, memory);
  EXPECT_EQ(lin_.LiveFingerprint(), f0) << "ended in memory";
  Go(4, 2, At(13));
  EXPECT_NE(lin_.LiveFingerprint(), f0);
  Exit(4);
  EXPECT_EQ(lin_.LiveFingerprint(), f0) << "exited";
  Advance(absl::Minutes(5));
  lin_.Collect(now_, opts_);
  EXPECT_EQ(lin_.LiveFingerprint(), f0) << "collected";
  EXPECT_EQ(lin_.stats().live_contexts, 1u);
}

// A window without the goroutine-exit probes: its goroutines' ends are read from memory at the
// next Reconcile, before any pause; goroutines whose exits the probes see are not read.
TEST_F(LineageTest, GoroutinesStartedWithoutTheirExitProbeEndFromMemory) {
  Go(2, kMain, At(11));
  GoroutineCreated e;
  e.time = now_;
  e.goid = 3;
  e.parent_goid = kMain;
  e.g = GAddr(3);
  e.exit_unseen = true;
  lin_.OnGoroutineCreated(e);
  EXPECT_EQ(lin_.stats().live_goroutines, 2u);
  FakeMemory memory;
  memory.goroutines[GAddr(2)] = LivenessOracle::State::kEnded;  // not asked: its exit is probed
  memory.goroutines[GAddr(3)] = LivenessOracle::State::kEnded;
  Advance(absl::Seconds(1));
  lin_.Reconcile(now_, memory);
  EXPECT_EQ(memory.goroutine_queries, 1);
  EXPECT_EQ(lin_.stats().live_goroutines, 1u);
  EXPECT_EQ(lin_.stats().inferred_exits, 1u);
  EXPECT_EQ(lin_.stats().pauses, 0u);
}

// Sampling: a window sees leaked contexts created and their creators still running; the probes are
// detached; memory then says the creators exited and the contexts were never cancelled.
TEST_F(LineageTest, OrphanedDoneFoundFromMemoryAfterAPause) {
  SiteId session = At(18, "main.newSession");
  SiteId watch_go = At(20, "main.newSession");
  std::vector<uint64_t> ctxs;
  for (uint64_t i = 0; i < 3; ++i) {
    Go(10 + i, kMain, At(60, "main.main"), {}, "main.handle");
    ctxs.push_back(Create(10 + i, session, Bg()));
    Go(100 + i, 10 + i, watch_go, {ctxs.back()}, "main.(*session).watch");
  }
  lin_.OnProbesPaused();
  FakeMemory memory;
  for (uint64_t i = 0; i < 3; ++i) memory.goroutines[GAddr(10 + i)] = LivenessOracle::State::kEnded;
  Advance(absl::Seconds(1));
  lin_.Reconcile(now_, memory);
  EXPECT_EQ(memory.context_queries, 3);
  EXPECT_EQ(memory.goroutine_queries, 6);  // handlers and watchers
  EXPECT_THAT(Eval(), IsEmpty()) << "the exits were found now: grace runs from here";
  Advance(absl::Seconds(6));
  lin_.Reconcile(now_, memory);
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kOrphanedDone);
  EXPECT_EQ(f[0].count, 3);
  EXPECT_THAT(f[0].goroutines, UnorderedElementsAre(100, 101, 102));
  EXPECT_EQ(lin_.stats().inferred_exits, 3u);
  EXPECT_EQ(lin_.stats().inferred_cancels, 0u);
  EXPECT_EQ(lin_.stats().pauses, 1u);
}

TEST_F(LineageTest, CancelsFoundInMemoryEndContextsWithTheirCause) {
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  uint64_t req = Create(2, At(30), Under(root));
  uint64_t timer = Create(2, At(31), Under(req), ContextKind::kTimer, absl::Seconds(1));
  uint64_t child = Create(2, At(32), Under(req));
  Go(3, 2, At(33), {child}, "main.work");
  // By id: an ended context's address is forgotten (it may be reused unseen).
  const ContextId req_id = Id(req), timer_id = Id(timer), child_id = Id(child);
  lin_.OnProbesPaused();
  FakeMemory memory;
  memory.contexts[req] = memory.contexts[timer] = memory.contexts[child] =
      LivenessOracle::State::kEnded;
  Advance(absl::Seconds(2));
  lin_.Reconcile(now_, memory);
  EXPECT_EQ(lin_.FindContext(req_id)->cause, CancelCause::kOwnCancel);
  EXPECT_EQ(lin_.FindContext(timer_id)->cause, CancelCause::kDeadline);
  EXPECT_EQ(lin_.FindContext(child_id)->cause, CancelCause::kParent);
  EXPECT_EQ(*lin_.FindContext(child_id)->cancelled, now_) << "the latest it can have happened";
  EXPECT_EQ(lin_.ContextAt(req), 0u);
  EXPECT_FALSE(Node(root).cancelled.has_value());
  EXPECT_EQ(lin_.stats().inferred_cancels, 3u);
  // The worker is still running grace after its context was found cancelled: it ignores it.
  Advance(absl::Seconds(6));
  lin_.Reconcile(now_, memory);
  EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair("ignored_cancel", 32)));
  // Ended nodes are not asked again; the root, still live, is.
  const int asked = memory.context_queries;
  lin_.Reconcile(now_, memory);
  EXPECT_EQ(memory.context_queries, asked + 1);
}

TEST_F(LineageTest, UnreadableOrReusedMemoryNeverMakesAFinding) {
  SiteId lost = At(40);
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  std::vector<uint64_t> ctxs;
  for (uint64_t i = 0; i < 4; ++i) ctxs.push_back(Create(10 + i, lost, Under(root)));
  Go(50, kMain, At(41), {}, "main.unknown");
  lin_.OnProbesPaused();
  FakeMemory memory;
  for (uint64_t i = 0; i < 4; ++i) memory.goroutines[GAddr(10 + i)] = LivenessOracle::State::kEnded;
  memory.contexts[ctxs[0]] = memory.contexts[ctxs[1]] = LivenessOracle::State::kUnknown;
  memory.contexts[ctxs[2]] = LivenessOracle::State::kGone;
  Advance(absl::Seconds(40));
  lin_.Reconcile(now_, memory);
  // One context is still readable and uncancelled: under min_count (3), nothing to report.
  EXPECT_THAT(Eval(), IsEmpty());
  EXPECT_EQ(lin_.stats().live_contexts, 4u) << "root, the two unreadable ones, the readable one";
}

// `go watch(ctx)` where watch does `<-ctx.Done()`: the goroutine keeps only the channel, so the GC
// frees the dropped context. Freed uncancelled means nothing can ever cancel it, whatever its
// ancestors, whether the reuse of its address is seen by a probe or in memory after a pause.
TEST_F(LineageTest, FreedUncancelledContextWithAWaiterIsOrphaned) {
  SiteId session = At(18, "main.newSession");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  const uint64_t a = Create(2, session, Under(root));  // its creator (2) is still running
  Go(100, 2, At(20), {a}, "main.watch");
  const uint64_t b = Create(2, session, Under(root));
  Go(101, 2, At(20), {b}, "main.watch");
  Advance(absl::Seconds(1));
  Create(2, At(30), Bg(), ContextKind::kCancel, absl::InfiniteDuration(), a);  // a's memory reused
  lin_.OnProbesPaused();
  FakeMemory memory;
  memory.contexts[b] = LivenessOracle::State::kGone;
  lin_.Reconcile(now_, memory);
  EXPECT_THAT(Eval(), IsEmpty()) << "within grace of their creation";
  Advance(absl::Seconds(5));
  lin_.Reconcile(now_, memory);
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kOrphanedDone);
  EXPECT_EQ(f[0].count, 2);
  EXPECT_THAT(f[0].goroutines, UnorderedElementsAre(100, 101));
}

// While detached, the GC may free a cancelled context and a new, unseen context take its address: a
// context created in the next window under that address must not hang under the cancelled one.
// A window after a pause: no new context hangs under a context that ended before the pause or while
// it lasted (the address may hold another by now).
TEST_F(LineageTest, NoContextHangsUnderAnAddressAPauseMayHaveReused) {
  const uint64_t old_req = Create(2, At(30), Bg());
  Cancel(old_req, 2);
  const uint64_t live_req = Create(3, At(30), Bg());
  lin_.OnProbesPaused();
  FakeMemory memory;
  memory.contexts[live_req] = LivenessOracle::State::kEnded;
  Advance(absl::Seconds(10));
  lin_.Reconcile(now_, memory);
  // The next window: contexts at both addresses, now other requests' (made unseen).
  const uint64_t child = Create(4, At(40), Under(old_req));
  const uint64_t child2 = Create(5, At(40), Under(live_req));
  Go(6, 4, At(41), {child, child2}, "main.work");
  Advance(absl::Seconds(10));
  lin_.Reconcile(now_, memory);
  EXPECT_THAT(Eval(), IsEmpty()) << "a goroutine under a live context is not ignoring a cancel";
  EXPECT_EQ(Node(child).parent, 0u);
  EXPECT_EQ(Node(child2).parent, 0u);
  EXPECT_EQ(Node(child).root, RootKind::kCustom) << "something unseen may still cancel it";
}

TEST_F(LineageTest, LostCancelsFoundAcrossPausesAsWithFullTracing) {
  SiteId lost = At(40);
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  for (uint64_t i = 0; i < 4; ++i) {
    Go(10 + i, kMain, At(41), {}, "main.job");
    Create(10 + i, lost, Under(root));
    Exit(10 + i);
  }
  lin_.OnProbesPaused();
  FakeMemory memory;
  Advance(absl::Seconds(40));
  lin_.Reconcile(now_, memory);
  EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair("lost_cancel", 40)));
}

// Goroutine state as the memory reader reports it.
class FakeGoroutines : public GoroutineStateReader {
 public:
  std::vector<GoroutineState> all;
  absl::flat_hash_map<uint64_t, uint64_t> done;  // context address -> its Done channel
  int reads = 0;

  GoroutineState& Add(uint64_t goid, const std::string& state, std::vector<uint64_t> channels = {},
                      bool select = false) {
    GoroutineState st;
    st.goid = goid;
    st.g = 0xc000800000 + goid * 0x200;
    st.known = true;
    st.waiting = state != "running" && state != "runnable";
    st.state = state;
    st.channels = std::move(channels);
    st.in_select = select;
    st.start_function = "main.worker";
    all.push_back(st);
    return all.back();
  }
  std::vector<GoroutineState> Read(const std::vector<Query>& q) override {
    std::vector<GoroutineState> out;
    for (const Query& x : q) {
      GoroutineState st;
      for (const auto& a : all) {
        if (a.goid == x.goid) st = a;
      }
      out.push_back(st);
    }
    return out;
  }
  std::vector<GoroutineState> ReadAll() override {
    ++reads;
    return all;
  }
  std::vector<uint64_t> DoneChannels(const std::vector<ContextQuery>& q) override {
    std::vector<uint64_t> out;
    for (const ContextQuery& c : q) out.push_back(done.contains(c.addr) ? done[c.addr] : 0);
    return out;
  }
};

// The demo's false finding (issue 10): a session context (never cancelled) is freed by the GC while
// the probes are detached and a connection context takes its address unseen; the connection's
// cancel in the next window must not be taken for the session's, which would make its watcher an
// ignored cancellation of a context nobody cancelled.
TEST_F(LineageTest, CancelOfAContextReusingAnAddressIsNotTheOldOnes) {
  SiteId session = At(48, "main.handleSession");
  Go(2, kMain, At(3000, "net/http.(*Server).Serve"), {}, "net/http.(*conn).serve");
  const uint64_t a = Create(2, session, Bg());
  Go(100, 2, At(50, "main.handleSession"), {a}, "main.(*session).watch");
  lin_.OnProbesPaused();
  Advance(absl::Seconds(3));
  // Next window: the connection context now at `a` (its parent word differs) is cancelled.
  Cancel(a, 7, CancelCause::kOwnCancel, At(2159, "net/http.(*conn).serve"), 0xc000777000);
  Advance(absl::Seconds(6));
  auto f = Eval();
  for (const Finding& x : f) EXPECT_NE(x.kind, FindingKind::kIgnoredCancel) << Describe(f);
  EXPECT_EQ(lin_.stats().unknown_cancels, 1u);
  EXPECT_EQ(lin_.ContextAt(a), 0u) << "its address holds another context now";
  // The same parent word is the context itself: its cancel counts.
  const uint64_t b = Create(3, At(60), Bg());
  Go(101, 3, At(61), {b}, "main.sleeper");
  Cancel(b, 3, CancelCause::kOwnCancel, At(62), kBackgroundAddr);
  Advance(absl::Seconds(6));
  EXPECT_THAT(Kinds(Eval()), testing::Contains(std::make_pair(std::string("ignored_cancel"), 60)));
}

// Class 1 of issue 10: contexts under a long-lived root, their cancel funcs dropped with the struct
// that held them, each with a goroutine parked on its Done channel.
TEST_F(LineageTest, LostCancelCountsGoroutinesParkedOnTheDoneChannels) {
  SiteId conn = At(60, "main.(*server).open");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  FakeGoroutines mem;
  std::vector<uint64_t> ctxs;
  auto leak = [&](uint64_t i) {
    Go(10 + i, kMain, At(70, "main.main"), {}, "main.(*server).open");
    ctxs.push_back(Create(10 + i, conn, Under(root)));
    Go(100 + i, 10 + i, At(62, "main.(*server).open"), {ctxs.back()}, "main.(*conn).wait");
    Exit(10 + i);
    mem.done[ctxs.back()] = 0xc000900000 + i * 0x60;
    mem.Add(100 + i, "chan receive", {mem.done[ctxs.back()]});
  };
  for (uint64_t i = 0; i < 4; ++i) leak(i);
  Advance(absl::Seconds(31));
  EXPECT_THAT(Eval(), IsEmpty()) << "bound goroutines, state unknown: they may still cancel";
  lin_.ObserveGoroutines(now_, mem);
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kLostCancel);
  EXPECT_EQ(f[0].count, 4);
  EXPECT_EQ(f[0].parked, 4);
  EXPECT_THAT(f[0].goroutines, UnorderedElementsAre(100, 101, 102, 103));
  EXPECT_THAT(f[0].explanation, HasSubstr("4 goroutines are parked on their Done channels"));
  EXPECT_EQ(lin_.FindGoroutine(100)->parked_on, std::vector<ContextId>{Id(ctxs[0])});
  EXPECT_EQ(lin_.FindGoroutine(100)->state->state, "chan receive");
  // A running goroutine (not parked on it) may still cancel: its context is not counted.
  leak(4);
  mem.all.back().waiting = false;
  mem.all.back().state = "running";
  leak(5);
  Advance(absl::Seconds(31));
  lin_.ObserveGoroutines(now_, mem);
  f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].count, 5);
}

// go1.26's net/http dial context (WithCancel over WithoutCancel, its cancel kept in a struct and
// never called once the dial succeeded) is freed by the GC unseen; its Done channel's memory goes
// to another context's channel, on which an unrelated goroutine parks. That goroutine must not be
// taken for a waiter of the freed context (the false orphaned_done at transport.go:1529 in CI).
TEST_F(LineageTest, ChannelReusedAfterItsContextWasFreedIsNotItsDoneChannel) {
  SiteId dial = At(1529, "net/http.(*Transport).getConn");
  FakeGoroutines mem;
  Go(2, kMain, At(66, "main.main"), {}, "main.client");
  const uint64_t d = Create(2, dial, Bg());
  Go(3, 2, At(1530), {d}, "net/http.(*Transport).dialConnFor");
  const uint64_t chan = 0xc000900000;
  mem.done[d] = chan;
  mem.Add(3, "chan receive", {chan});  // waits during the dial
  // A real orphan for contrast: its watcher parks before the context is freed, and stays.
  SiteId session = At(43, "main.handleSession");
  Go(4, kMain, At(67, "main.main"), {}, "main.handleSession");
  const uint64_t o = Create(4, session, Bg());
  Go(5, 4, At(45, "main.handleSession"), {o}, "main.(*session).watch");
  mem.done[o] = 0xc000a00000;
  mem.Add(5, "chan receive", {mem.done[o]});
  Advance(absl::Milliseconds(100));
  lin_.ObserveGoroutines(now_, mem);
  EXPECT_EQ(lin_.FindGoroutine(3)->parked_on, std::vector<ContextId>{Id(d)});
  // The dial is done and its goroutine gone; the client returns; the GC frees the context and
  // its channel, whose memory another context's channel takes: an audit goroutine parks on it.
  Exit(3);
  Exit(2);
  Exit(4);
  mem.all.erase(mem.all.begin());  // goroutine 3
  mem.done[d] = 0;
  mem.done[o] = 0;  // freed too, while its watcher stays parked
  mem.Add(200, "chan receive", {chan});
  Advance(absl::Seconds(10));
  lin_.ObserveGoroutines(now_, mem);
  auto f = Eval();
  EXPECT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("orphaned_done"), 43)))
      << Describe(f);
  EXPECT_EQ(lin_.FindGoroutine(5)->parked_on, std::vector<ContextId>{Id(o)});
}

// Healthy counterpart: connection contexts held by live handlers, a heartbeat honouring Done.
TEST_F(LineageTest, LiveHandlersWithHeartbeatsParkedInSelectAreHealthy) {
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  FakeGoroutines mem;
  for (uint64_t i = 0; i < 4; ++i) {
    Go(10 + i, kMain, At(70, "main.main"), {}, "main.handle");
    const uint64_t c = Create(10 + i, At(60), Under(root));
    Go(100 + i, 10 + i, At(62), {c}, "main.heartbeat");
    mem.done[c] = 0xc000900000 + i * 0x60;
    mem.Add(100 + i, "select", {mem.done[c], 0xc000a00000 + i}, true);
    mem.Add(10 + i, "IO wait");
  }
  for (int k = 0; k < 3; ++k) {
    Advance(absl::Seconds(20));
    lin_.ObserveGoroutines(now_, mem);
    EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
  }
}

// Class 2 of issue 10: `go worker(context.WithValue(context.Background(), k, v))` from a handler
// working under a request context that is then cancelled.
TEST_F(LineageTest, GoroutineHandedABackgroundValueChainIsABrokenChain) {
  SiteId request = At(30, "main.serve");
  SiteId go_site = At(45, "main.handle");
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(2, kMain, At(11, "main.main"), {}, "main.serve");
  uint64_t req = Create(2, request, Under(root));
  Go(3, 2, At(31, "main.serve"), {req}, "main.handle");
  GoroutineCreated e;
  e.time = now_;
  e.goid = 4;
  e.parent_goid = 3;
  e.go_site = go_site;
  e.start_function = "main.worker";
  e.g = GAddr(4);
  e.captured_uncancelable = true;
  lin_.OnGoroutineCreated(e);
  // A goroutine handed the same chain that ends within grace is fine.
  e.goid = 5;
  e.g = GAddr(5);
  lin_.OnGoroutineCreated(e);
  Cancel(req, 2, CancelCause::kOwnCancel, At(33, "main.serve"));
  Exit(3);
  Advance(absl::Seconds(1));
  Exit(5);
  Advance(absl::Seconds(5));
  auto f = Eval();
  ASSERT_EQ(f.size(), 1u) << Describe(f);
  EXPECT_EQ(f[0].kind, FindingKind::kBrokenChain);
  EXPECT_EQ(f[0].site, go_site);
  EXPECT_EQ(f[0].related_site, request);
  EXPECT_THAT(f[0].goroutines, ElementsAre(4));
  EXPECT_THAT(f[0].explanation, HasSubstr("context.Background()"));
}

TEST_F(LineageTest, IgnoredCancellationSaysWhatTheGoroutineDoes) {
  uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  uint64_t ctx = Create(kMain, At(30), Under(root));
  Go(3, kMain, At(35), {ctx}, "main.poll");
  uint64_t ctx2 = Create(kMain, At(40), Under(root));
  Go(4, kMain, At(45), {ctx2}, "main.loop");
  FakeGoroutines mem;
  mem.Add(3, "sleep");
  mem.done[ctx2] = 0xc000900000;
  mem.Add(4, "select", {0xc000a00000, 0xc000a00100}, true);
  Cancel(ctx, kMain);
  Cancel(ctx2, kMain);
  Advance(absl::Seconds(6));
  lin_.ObserveGoroutines(now_, mem);
  auto f = Eval();
  ASSERT_EQ(f.size(), 2u) << Describe(f);
  EXPECT_THAT(f[0].explanation, HasSubstr("sleeping in time.Sleep"));
  EXPECT_THAT(f[1].explanation, HasSubstr("blocked in select without this context's Done"));
}

// Goroutines that predate the attach join the tree from memory at the first look, with their
// state; later looks only refresh states.
TEST_F(LineageTest, GoroutinesBeforeTheAttachComeFromMemory) {
  FakeGoroutines mem;
  mem.Add(7, "chan receive", {0xc000900000}).go_site = At(50, "main.main");
  mem.Add(8, "running");
  mem.all.back().system = true;
  lin_.ObserveGoroutines(now_, mem);
  const GoroutineNode* g = lin_.FindGoroutine(7);
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(g->before_attach);
  EXPECT_EQ(lin_.sites().Get(g->go_site).line, 50);
  ASSERT_NE(g->state, nullptr);
  EXPECT_EQ(g->state->state, "chan receive");
  EXPECT_EQ(lin_.FindGoroutine(8), nullptr) << "system goroutines stay out";
  mem.Add(9, "sleep");
  lin_.ObserveGoroutines(now_, mem);
  EXPECT_EQ(lin_.FindGoroutine(9), nullptr) << "made unseen after the attach: no node";
  int states = 0;
  lin_.ForEachGoroutineState([&](const GoroutineState& st, const GoroutineNode* n) {
    ++states;
    if (st.goid == 7) EXPECT_NE(n, nullptr);
  });
  EXPECT_EQ(states, 2);
  EXPECT_THAT(Eval(), IsEmpty());
}

}  // namespace
}  // namespace ctxagent
