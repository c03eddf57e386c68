// Findings decided from heap marks (ProcessLineage::ObserveMark): lost cancel and timer build-up, a
// fact per context whatever its creator did (the history rule before two marks and after they
// stop), and ignored cancellation by goroutines found holding a cancelled context.
#include <algorithm>
#include <string>
#include <vector>

#include "agent/lineage/lineage_test_fixture.h"

namespace ctxagent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class MarkFactsTest : public LineageTest {
 protected:
  // A mark now, finding `facts` for each tracked context: those of `addrs` get `listed`, the others
  // `rest`; goroutine `holder` (if any) holds the context at `held`.
  void Mark(const std::vector<uint64_t>& addrs, uint8_t listed, uint8_t rest, uint64_t holder = 0,
            uint64_t held = 0) {
    const std::vector<uint64_t> tracked = lin_.ContextAddresses();
    std::vector<uint8_t> facts;
    std::vector<std::pair<uint64_t, uint32_t>> holds;
    for (uint64_t a : tracked) {
      if (holder != 0 && a == held) holds.emplace_back(holder, facts.size());
      facts.push_back(std::find(addrs.begin(), addrs.end(), a) != addrs.end() ? listed : rest);
    }
    lin_.ObserveMark(now_, tracked, facts, holds);
  }
  static constexpr uint8_t kHeld = kContextReached | kCancelHeld;
  static constexpr uint8_t kDropped = kContextReached;

  // Contexts under `root` made at `site` by short-lived goroutines that exit: what the history
  // rule reports once their count grows.
  std::vector<uint64_t> MadeByExitedCreators(uint64_t root, SiteId site, int n) {
    std::vector<uint64_t> out;
    for (int i = 0; i < n; ++i) {
      const uint64_t g = next_goid_++;
      Go(g, kMain, At(70, "main.main"), {}, "main.subscribe");
      out.push_back(Create(g, site, Under(root)));
      Exit(g);
    }
    return out;
  }
  uint64_t next_goid_ = 1000;
};

// A registry of subscriptions whose cancel funcs it keeps (to unsubscribe): the history rule calls
// it a lost cancel once it has grown; the marks see every cancel func held.
TEST_F(MarkFactsTest, BoundedSetHoldingItsCancelFuncsIsHealthy) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  const std::vector<uint64_t> subs = MadeByExitedCreators(root, At(30), 8);
  Advance(absl::Seconds(6));
  ASSERT_THAT(Kinds(Eval()), ElementsAre(std::make_pair(std::string("lost_cancel"), 30)))
      << "the history rule's false positive this replaces";
  Mark(subs, kHeld, kHeld);
  Advance(absl::Seconds(10));
  Mark(subs, kHeld, kHeld);
  EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
}

// main lives on and overwrites its cancel func every iteration: the history rule waits for the
// contexts to age past leak_after; two marks prove each one.
TEST_F(MarkFactsTest, CancelFuncsDroppedByALiveCreatorAreLost) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  std::vector<uint64_t> dropped;
  for (int i = 0; i < 4; ++i) dropped.push_back(Create(kMain, At(12, "main.main"), Under(root)));
  Advance(absl::Seconds(6));
  EXPECT_THAT(Eval(), IsEmpty()) << "history: too young";
  const absl::Time first = now_;
  Mark(dropped, kDropped, kHeld);
  Advance(absl::Seconds(10));
  EXPECT_THAT(Eval(), IsEmpty()) << "one mark proves nothing";
  Mark(dropped, kDropped, kHeld);
  std::vector<Finding> f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("lost_cancel"), 12))) << Describe(f);
  EXPECT_EQ(f[0].count, 4);
  EXPECT_THAT(f[0].proof_marks, ElementsAre(first, now_));
  EXPECT_THAT(f[0].explanation, HasSubstr("no cancel func of theirs was reachable in the marks "
                                          "10s ago and just now"));

  // Reported while it holds, without growing.
  Advance(absl::Seconds(10));
  Mark(dropped, kDropped, kHeld);
  EXPECT_THAT(Kinds(Eval()), ElementsAre(std::make_pair(std::string("lost_cancel"), 12)));
  // A cancel func found held again (it was stored somewhere the last mark reached) withdraws it.
  Advance(absl::Seconds(10));
  Mark({dropped[0], dropped[1]}, kDropped, kHeld);
  EXPECT_THAT(Eval(), IsEmpty()) << "2 contexts: under min_count";
}

TEST_F(MarkFactsTest, UnreachedOrOnceUnheldContextsAreNotLost) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  std::vector<uint64_t> garbage, flapping;
  for (int i = 0; i < 3; ++i) garbage.push_back(Create(kMain, At(20, "main.main"), Under(root)));
  for (int i = 0; i < 3; ++i) flapping.push_back(Create(kMain, At(21, "main.main"), Under(root)));
  Advance(absl::Seconds(6));
  // Nothing reaches the first three (garbage: nothing it holds is kept alive); the others' cancel
  // funcs are held in one mark of the two.
  Mark(garbage, 0, kHeld);
  Advance(absl::Seconds(10));
  Mark(flapping, kDropped, 0);
  EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
}

TEST_F(MarkFactsTest, TimersFartherThanLeakAfterBuildUpNearOnesFire) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  std::vector<uint64_t> timers;
  for (int i = 0; i < 3; ++i) {
    timers.push_back(
        Create(kMain, At(40, "main.main"), Under(root), ContextKind::kTimer, absl::Minutes(2)));
    timers.push_back(
        Create(kMain, At(41, "main.main"), Under(root), ContextKind::kTimer, absl::Seconds(25)));
  }
  Advance(absl::Seconds(6));
  Mark(timers, kDropped, kHeld);
  Advance(absl::Seconds(10));
  Mark(timers, kDropped, kHeld);
  std::vector<Finding> f = Eval();
  EXPECT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("timer_buildup"), 40)))
      << Describe(f);
}

// Marks that stop (a failed mark) leave the history rule: their facts no longer stand.
TEST_F(MarkFactsTest, StoppedMarksLeaveTheHistoryRule) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  const std::vector<uint64_t> subs = MadeByExitedCreators(root, At(30), 4);
  Advance(absl::Seconds(6));
  Mark(subs, kHeld, kHeld);
  Advance(absl::Seconds(10));
  Mark(subs, kHeld, kHeld);
  EXPECT_THAT(Eval(), IsEmpty());
  lin_.OnMarksStopped();
  MadeByExitedCreators(root, At(30), 1);
  Advance(absl::Seconds(6));
  std::vector<Finding> f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("lost_cancel"), 30)));
  EXPECT_THAT(f[0].proof_marks, IsEmpty());
}

// main lives on and keeps one session open whose cancel func it dropped; its watcher waits on
// Done. No creator exited, so history blames nothing; the marks prove nothing can cancel it. The
// same session with its cancel func held stays silent.
TEST_F(MarkFactsTest, DoneNoCancelFuncCanCloseIsOrphanedWhateverItsCreator) {
  const uint64_t dropped = Create(kMain, At(18, "main.main"), Bg());
  const uint64_t held = Create(kMain, At(19, "main.main"), Bg());
  Go(100, kMain, At(20, "main.main"), {dropped}, "main.watch");
  Go(101, kMain, At(21, "main.main"), {held}, "main.watch");
  Advance(absl::Seconds(6));
  EXPECT_THAT(Eval(), IsEmpty()) << "history: the creator lives";
  Mark({dropped}, 0, kCancelHeld);  // reached by no goroutine that can run
  Advance(absl::Seconds(10));
  Mark({dropped}, 0, kCancelHeld);
  std::vector<Finding> f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("orphaned_done"), 18)))
      << Describe(f);
  EXPECT_THAT(f[0].goroutines, ElementsAre(100u));
  EXPECT_EQ(f[0].proof_marks.size(), 2u);
  EXPECT_THAT(f[0].explanation, HasSubstr("no cancel func of it or of a cancelable ancestor"));
}

// A worker started under main's root (which is never cancelled) is handed a request's context over
// a channel: no probe relates the two, the marks find it in the worker's stack.
TEST_F(MarkFactsTest, GoroutineHoldingACancelledContextIgnoresIt) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(2, kMain, At(11, "main.main"), {root}, "main.worker");
  const uint64_t request = Create(kMain, At(20, "main.main"), Under(root));
  Advance(absl::Milliseconds(200));
  Cancel(request, kMain, CancelCause::kOwnCancel, At(21, "main.main"));
  Advance(absl::Milliseconds(500));
  Mark({}, kHeld, kHeld, 2, request);  // within the grace period (5 s)
  Advance(absl::Seconds(6));
  Mark({}, kHeld, kHeld, 2, request);
  EXPECT_THAT(Eval(), IsEmpty()) << "the earlier mark was within grace: " << Describe(Eval());
  Advance(absl::Seconds(6));
  lin_.Collect(now_, opts_);  // cancelled 2 x grace ago: kept, the last mark found it held
  Mark({}, kHeld, kHeld, 2, request);
  std::vector<Finding> f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("ignored_cancel"), 20)))
      << Describe(f);
  EXPECT_THAT(f[0].goroutines, ElementsAre(2u));
  EXPECT_THAT(f[0].explanation, HasSubstr("holding it (in the marks 6s ago and just now)"));
  EXPECT_EQ(f[0].proof_marks.size(), 2u);
  // Dropped by the next mark (it returned): no longer ignoring anything.
  Advance(absl::Seconds(6));
  Mark({}, kHeld, kHeld);
  EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
}

// Sampling: the probes pause after a request was cancelled; its address is kept, so the marks still
// find the worker holding it, until a read finds no cancelled context there any more.
TEST_F(MarkFactsTest, HeldCancelledContextIsFoundAcrossAPause) {
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  Go(2, kMain, At(11, "main.main"), {root}, "main.worker");
  const uint64_t request = Create(kMain, At(20, "main.main"), Under(root));
  Cancel(request, kMain, CancelCause::kOwnCancel, At(21, "main.main"));
  lin_.OnProbesPaused();
  FakeMemory memory;
  Advance(absl::Seconds(6));
  lin_.Reconcile(now_, memory);
  Mark({}, kHeld, kHeld, 2, request);
  Advance(absl::Seconds(2));
  lin_.Reconcile(now_, memory);
  Mark({}, kHeld, kHeld, 2, request);
  std::vector<Finding> f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("ignored_cancel"), 20)))
      << Describe(f);
  EXPECT_GE(memory.context_queries, 2) << "the kept address is checked at every read";
  // A new context, live, at that address now (freed and reused while detached): not ours.
  memory.contexts[request] = LivenessOracle::State::kLive;
  Advance(absl::Seconds(2));
  lin_.Reconcile(now_, memory);
  Mark({}, kHeld, kHeld, 2, request);
  Advance(absl::Seconds(2));
  Mark({}, kHeld, kHeld, 2, request);
  EXPECT_THAT(Eval(), IsEmpty()) << Describe(Eval());
}

// A goroutine started under a request that re-roots at Background (a broken chain by history), but
// the marks find it holding a context derived from the request: the cancellation reaches it, it
// ignores it.
TEST_F(MarkFactsTest, RerootedGoroutineHoldingTheChainIgnoresItsCancel) {
  const SiteId reroot = At(40, "main.refresh");
  const uint64_t root = Create(kMain, At(10, "main.main"), Bg());
  const uint64_t request = Create(kMain, At(20, "main.main"), Under(root));
  const uint64_t call = Create(kMain, At(25, "main.main"), Under(request));
  Go(2, kMain, At(30, "main.main"), {}, "main.refresh");
  Create(2, reroot, Bg(), ContextKind::kTimer, absl::Hours(1));
  Cancel(request, kMain, CancelCause::kOwnCancel, At(21, "main.main"));
  Advance(absl::Seconds(6));
  std::vector<Finding> f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("broken_chain"), 40)))
      << "history alone: " << Describe(f);
  EXPECT_TRUE(f[0].proof_marks.empty());
  // Marks that find it holding nothing under the request confirm the break.
  Mark({}, kHeld, kHeld);
  Advance(absl::Seconds(2));
  Mark({}, kHeld, kHeld);
  f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("broken_chain"), 40)));
  EXPECT_EQ(f[0].proof_marks.size(), 2u);
  EXPECT_THAT(f[0].explanation, HasSubstr("just now it held no context derived from it"));
  Advance(absl::Seconds(2));
  Mark({}, kHeld, kHeld, 2, call);
  Advance(absl::Seconds(2));
  Mark({}, kHeld, kHeld, 2, call);
  f = Eval();
  ASSERT_THAT(Kinds(f), ElementsAre(std::make_pair(std::string("ignored_cancel"), 25)))
      << Describe(f);
  EXPECT_THAT(f[0].goroutines, ElementsAre(2u));
}

}  // namespace
}  // namespace ctxagent
