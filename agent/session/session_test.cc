// TracingSession against a real Go process (no probes: the events are what a test feeds it).
#include "agent/session/session.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override { Start("ctxprog", {"-loop", "-n", "1", "-sleep", "1s"}); }
  // Runs the go1.22 build of the fixture `name` with `args`.
  void Start(const std::string& name, std::vector<std::string> args) {
    const std::string path = std::string(CTXAGENT_GO_FIXTURE_DIR) + "/" + name + "/go1.22/default";
    auto bin = symbols::GoBinary::Open(path);
    ASSERT_TRUE(bin.ok()) << path << ": " << bin.status();
    bin_ = *std::move(bin);
    args.insert(args.begin(), path);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      if (name == "gostates") freopen("/dev/null", "w", stdout);
      execv(path.c_str(), argv.data());
      _exit(127);
    }
    // Until the child has exec'd, its executable is this test.
    for (int i = 0; i < 200; ++i) {
      if (Process(pid_).LoadBias(bin_->elf()).ok()) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // A process whose goroutines are all parked for good: what memory reads find never changes.
  void StartQuiet() {
    TearDown();
    Start("gostates", {});
    absl::SleepFor(absl::Milliseconds(300));
  }
  // A session on the running fixture, refreshed every second.
  std::unique_ptr<TracingSession> NewSession(absl::Duration grace, absl::Duration leak_after) {
    SessionOptions o;
    o.refresh = absl::Seconds(1);
    // These tests count evaluations and reads of the lineage; a proven leak is evaluated at once
    // (its own test: goroutine_leaks_test), so the heap marks stay off here.
    o.mark_every = absl::ZeroDuration();
    o.findings.grace = grace;
    o.findings.leak_after = leak_after;
    auto session = TracingSession::Create(pid_, *bin_, o);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *std::move(session) : nullptr;
  }
  std::unique_ptr<symbols::GoBinary> bin_;
  pid_t pid_ = 0;
};

TEST_F(SessionTest, EvaluatesOnlyWhatCanHaveChanged) {
  auto session = NewSession(absl::Seconds(2), absl::Seconds(3));
  ASSERT_NE(session, nullptr);
  TracingSession& s = *session;
  absl::Time t = absl::Now();
  // A new session evaluates, then keeps evaluating until every threshold counted from the last
  // change (2 x grace = 4 s here) plus one refresh has passed.
  int evaluated = 0;
  for (int i = 0; i <= 5; ++i) evaluated += s.Refresh(t + absl::Seconds(i), true);
  EXPECT_EQ(evaluated, 6);
  EXPECT_FALSE(s.Refresh(t + absl::Seconds(6), true));
  EXPECT_FALSE(s.Refresh(t + absl::Seconds(30), true));
  // A change (here lost events) makes the next refresh evaluate again.
  s.OnEventsLost();
  EXPECT_TRUE(s.Refresh(t + absl::Seconds(31), true));
  EXPECT_TRUE(s.Refresh(t + absl::Seconds(32), true));
  EXPECT_FALSE(s.Refresh(t + absl::Seconds(37), true));
  // With nothing changed, one evaluation a minute still sees deadlines come near.
  EXPECT_TRUE(s.Refresh(t + absl::Seconds(93), true));
  // Detached, nothing is evaluated until memory was read, whatever changed.
  s.OnEventsLost();
  EXPECT_FALSE(s.Refresh(t + absl::Seconds(94), false));
  EXPECT_EQ(s.evaluations(), 9u);
}

// Under a CPU allowance an evaluation waits as long as the last one's cost needs, then still runs.
TEST_F(SessionTest, EvaluationsArePacedByTheirCost) {
  SessionOptions o;
  o.refresh = absl::Seconds(1);
  o.mark_every = absl::ZeroDuration();  // evaluations alone are paced here
  auto session = TracingSession::Create(pid_, *bin_, o);
  ASSERT_TRUE(session.ok()) << session.status();
  TracingSession& s = **session;
  // 2e-7 cores, half for evaluations: one costing 0.1 us or more pauses the next 1 s, up to
  // kMaxWorkPause.
  s.set_work_allowance(2e-7);
  absl::Time t = absl::Now();
  EXPECT_TRUE(s.Refresh(t, true));
  EXPECT_GE(s.work_pause(), absl::Seconds(1));
  s.OnEventsLost();
  EXPECT_FALSE(s.Refresh(t + absl::Milliseconds(999), true));
  EXPECT_TRUE(s.Refresh(t + kMaxWorkPause, true));
  EXPECT_EQ(s.evaluations(), 2u);
  // Without a limit it evaluates at every refresh that can differ.
  s.set_work_allowance(0);
  s.OnEventsLost();
  EXPECT_TRUE(s.Refresh(t + absl::Seconds(1001), true));
  EXPECT_EQ(s.work_pause(), absl::ZeroDuration());
}

// A process whose live nodes stay the same is read less and less often (up to twice a minute),
// and again at the next reconcile once they change.
TEST_F(SessionTest, AQuietProcessIsReadLessOften) {
  StartQuiet();
  auto session = NewSession(absl::Seconds(1), absl::Seconds(30));
  ASSERT_NE(session, nullptr);
  TracingSession& s = *session;
  ASSERT_EQ(s.goroutine_reads(), 1u);  // at attach: every goroutine, those that predate it
  absl::Time t = absl::Now();
  for (int i = 0; i < 120; ++i) s.Refresh(t + absl::Seconds(i), true);
  // At every second while the first reads see something new, then 2, 4, ... 30 s apart.
  EXPECT_GE(s.goroutine_reads(), 6u);
  EXPECT_LE(s.goroutine_reads(), 12u);
  const uint64_t quiet = s.goroutine_reads();
  // A goroutine started (a probe event): read at the next reconcile.
  ctx_event e = {};
  e.type = EV_GO_CREATE;
  e.tgid = static_cast<uint32_t>(pid_);
  e.goid = 100000;
  e.go_create.parent_goid = 1;
  s.Apply(e, EventClock());
  s.Refresh(t + absl::Seconds(120), true);
  EXPECT_EQ(s.goroutine_reads(), quiet + 1);
}

// A goroutine that started and ended between two refreshes changes no finding; one still running
// does.
TEST_F(SessionTest, EventsThatLeaveTheLiveNodesAsTheyWereEvaluateNothing) {
  StartQuiet();
  auto session = NewSession(absl::Seconds(1), absl::Seconds(1));
  ASSERT_NE(session, nullptr);
  TracingSession& s = *session;
  absl::Time t = absl::Now();
  for (int i = 0; i <= 10; ++i) s.Refresh(t + absl::Seconds(i), true);
  ASSERT_FALSE(s.Refresh(t + absl::Seconds(11), true));  // settled
  ctx_event e = {};
  e.tgid = static_cast<uint32_t>(pid_);
  e.goid = 100000;
  e.go_create.parent_goid = 1;
  e.type = EV_GO_CREATE;
  s.Apply(e, EventClock());
  e.type = EV_GO_EXIT;
  s.Apply(e, EventClock());
  EXPECT_FALSE(s.Refresh(t + absl::Seconds(12), true));
  e.goid = 100001;
  e.type = EV_GO_CREATE;
  s.Apply(e, EventClock());
  EXPECT_TRUE(s.Refresh(t + absl::Seconds(13), true));
}

// A mark that finds goroutines leaked but not yet proven is followed half a period later, when the
// second mark may prove them; once every leaked one is proven, marks come a whole period apart.
TEST_F(SessionTest, ALeakFoundIsProvenHalfAPeriodLater) {
  StartQuiet();  // gostates: goroutines parked on channels only they can reach
  SessionOptions o;
  o.mark_every = absl::Seconds(10);
  auto session = TracingSession::Create(pid_, *bin_, o);
  ASSERT_TRUE(session.ok()) << session.status();
  TracingSession& s = **session;
  const absl::Time t = absl::Now();
  s.Refresh(t, false);
  ASSERT_EQ(s.marks(), 1u) << s.mark_status();
  ASSERT_GT(s.leaks().unproven(), 0u);
  s.Refresh(t + absl::Seconds(4), false);
  EXPECT_EQ(s.marks(), 1u);
  s.Refresh(t + absl::Seconds(5), false);
  EXPECT_EQ(s.marks(), 2u);
  EXPECT_FALSE(s.leaks().proven().empty());
  EXPECT_EQ(s.leaks().unproven(), 0u);
  s.Refresh(t + absl::Seconds(14), false);
  EXPECT_EQ(s.marks(), 2u);
  s.Refresh(t + absl::Seconds(15), false);
  EXPECT_EQ(s.marks(), 3u);
}

TEST_F(SessionTest, CountsWhatItCannotDecode) {
  auto session = TracingSession::Create(pid_, *bin_, {});
  ASSERT_TRUE(session.ok()) << session.status();
  ctx_event e = {};
  e.type = 999;
  e.tgid = static_cast<uint32_t>(pid_);
  (*session)->Apply(e, EventClock());
  EXPECT_EQ((*session)->events(), 1u);
  EXPECT_EQ((*session)->undecodable(), 1u);
}

}  // namespace
}  // namespace ctxagent
