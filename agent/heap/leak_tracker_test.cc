#include "agent/heap/leak_tracker.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace ctxagent::heap {
namespace {

GoroutineState Parked(uint64_t goid, uint64_t sudog) {
  GoroutineState g;
  g.goid = goid;
  g.g = 0x1000 * goid;
  g.known = true;
  g.waiting = true;
  g.state = "chan send";
  g.wait_reason = 9;
  g.sudogs = {sudog};
  return g;
}

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(LeakTrackerTest, TwoMarksApartProveALeak) {
  LeakTracker t(absl::Seconds(5));
  std::vector<GoroutineState> gs = {Parked(7, 0xa0), Parked(8, 0xb0)};
  EXPECT_TRUE(t.Update(kT0, gs, {0, 1}).empty());
  EXPECT_TRUE(t.proven().empty()) << "one mark proves nothing";
  EXPECT_EQ(t.unproven(), 2u);
  // Too soon after the first: still nothing.
  EXPECT_TRUE(t.Update(kT0 + absl::Seconds(2), gs, {0, 1}).empty());
  EXPECT_EQ(t.unproven(), 2u);
  std::vector<LeakedGoroutine*> fresh = t.Update(kT0 + absl::Seconds(10), gs, {0, 1});
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_EQ(t.unproven(), 0u);
  ASSERT_EQ(t.proven().size(), 2u);
  EXPECT_EQ(t.proven()[0].first_marked, kT0);
  // Proven again: not new.
  EXPECT_TRUE(t.Update(kT0 + absl::Seconds(20), gs, {0, 1}).empty());
  EXPECT_EQ(t.proven().size(), 2u);
}

TEST(LeakTrackerTest, AWaitThatChangedStartsOver) {
  LeakTracker t(absl::Seconds(5));
  std::vector<GoroutineState> gs = {Parked(7, 0xa0)};
  t.Update(kT0, gs, {0});
  gs[0].sudogs = {0xc0};  // woke and parked again elsewhere in between
  EXPECT_TRUE(t.Update(kT0 + absl::Seconds(10), gs, {0}).empty());
  EXPECT_EQ(t.Update(kT0 + absl::Seconds(20), gs, {0}).size(), 1u);
  EXPECT_EQ(t.proven()[0].first_marked, kT0 + absl::Seconds(10));
}

TEST(LeakTrackerTest, AMarkThatFindsItReachableWithdrawsIt) {
  LeakTracker t(absl::Seconds(5));
  std::vector<GoroutineState> gs = {Parked(7, 0xa0)};
  t.Update(kT0, gs, {0});
  t.Update(kT0 + absl::Seconds(10), gs, {0});
  ASSERT_EQ(t.proven().size(), 1u);
  t.Update(kT0 + absl::Seconds(20), gs, {});
  EXPECT_TRUE(t.proven().empty());
}

TEST(LeakTrackerTest, ATornReadWithdrawsNothing) {
  LeakTracker t(absl::Seconds(5));
  std::vector<GoroutineState> gs = {Parked(7, 0xa0)};
  t.Update(kT0, gs, {0});
  t.Update(kT0 + absl::Seconds(10), gs, {0});
  gs[0].known = false;  // changed under the read: a root for that mark
  t.Update(kT0 + absl::Seconds(20), gs, {});
  ASSERT_EQ(t.proven().size(), 1u);
  gs[0].known = true;  // and leaked again at the next: still the same proof
  EXPECT_TRUE(t.Update(kT0 + absl::Seconds(30), gs, {0}).empty());
  EXPECT_EQ(t.proven().size(), 1u);
  EXPECT_EQ(t.proven()[0].first_marked, kT0);
}

TEST(LeakTrackerTest, FindingsGroupByBlockingLineAndGoStatement) {
  ProcessLineage lineage(1);
  const SiteId block = lineage.sites().Intern(Site{"main.worker", "/src/worker.go", 77});
  const SiteId go = lineage.sites().Intern(Site{"main.spawn", "/src/main.go", 30});
  LeakTracker t(absl::Seconds(5));
  std::vector<GoroutineState> gs = {Parked(7, 0xa0), Parked(8, 0xb0), Parked(9, 0xd0)};
  for (auto& g : gs) g.go_site = go;
  t.Update(kT0, gs, {0, 1, 2});
  for (LeakedGoroutine* l : t.Update(kT0 + absl::Seconds(10), gs, {0, 1, 2})) {
    l->blocked_at = block;
  }
  // Goroutine 9 is named by a context finding already: that finding keeps it.
  Finding other;
  other.kind = FindingKind::kOrphanedDone;
  other.goroutines = {9};
  const std::vector<Finding> f =
      GoroutineLeakFindings(kT0 + absl::Seconds(70), t, lineage, {other});
  // A context finding whose goroutines come from the same `go` statement takes them all.
  other.go_sites = {go};
  EXPECT_TRUE(GoroutineLeakFindings(kT0 + absl::Seconds(70), t, lineage, {other}).empty());
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].kind, FindingKind::kGoroutineLeak);
  EXPECT_EQ(f[0].site, block);
  EXPECT_EQ(f[0].go_sites, std::vector<SiteId>{go});
  EXPECT_EQ(f[0].count, 2);
  EXPECT_EQ(f[0].goroutines, (std::vector<uint64_t>{7, 8}));
  EXPECT_EQ(f[0].wait_reason, "chan send");
  EXPECT_EQ(f[0].oldest_age, absl::Seconds(70));
  EXPECT_TRUE(
      absl::StrContains(f[0].explanation, "2 goroutines blocked in chan send at /src/worker.go:77"))
      << f[0].explanation;
  EXPECT_TRUE(absl::StrContains(f[0].explanation, "main.go:30")) << f[0].explanation;
}

}  // namespace
}  // namespace ctxagent::heap
