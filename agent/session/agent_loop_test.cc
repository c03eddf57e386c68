#include "agent/session/agent_loop.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

class FakeClock : public Clock {
 public:
  absl::Time Now() override { return now; }
  absl::Time now = absl::UnixEpoch();
};

// Records what the loop asked for; its state is what a test sets.
class FakeDriver : public AgentLoop::Driver {
 public:
  explicit FakeDriver(FakeClock& clock) : clock_(clock) {}
  absl::StatusOr<bool> Poll(absl::Time now, bool ending) override {
    polls.push_back(now);
    endings += ending;
    if (now >= state_.next_due) state_.next_due = absl::InfiniteFuture();  // ran what was due
    state_.handled += events_per_poll;
    clock_.now += drain_takes;
    return poll_result;
  }
  absl::StatusOr<bool> Refresh(absl::Time now) override {
    refreshes.push_back(now);
    return refresh_result;
  }
  State state() const override { return state_; }

  State state_;
  uint64_t events_per_poll = 0;
  absl::Duration drain_takes = absl::ZeroDuration();
  absl::StatusOr<bool> poll_result = true, refresh_result = true;
  std::vector<absl::Time> polls, refreshes;
  int endings = 0;

 private:
  FakeClock& clock_;
};

class AgentLoopTest : public ::testing::Test {
 protected:
  // Steps and waits until the wake time (no ring event) `n` times; returns the wake times.
  std::vector<absl::Time> Run(AgentLoop& loop, int n) {
    std::vector<absl::Time> wakes;
    for (int i = 0; i < n && !loop.stopped(); ++i) {
      absl::StatusOr<AgentLoop::Wake> wake = loop.Step();
      EXPECT_TRUE(wake.ok()) << wake.status();
      if (!wake.ok() || loop.stopped()) break;
      wakes.push_back(wake->at);
      clock_.now = std::max(clock_.now, wake->at);
    }
    return wakes;
  }
  absl::Time T(double s) { return absl::UnixEpoch() + absl::Milliseconds(std::round(s * 1000)); }

  FakeClock clock_;
  FakeDriver driver_{clock_};
};

// With nothing traced the loop wakes only to refresh, and for the driver's own deadlines.
TEST_F(AgentLoopTest, IdleWakesOnlyForRefreshesAndDeadlines) {
  driver_.state_.next_due = T(2.5);
  AgentLoop loop({.refresh = absl::Seconds(1), .first_refresh = T(0)}, clock_, driver_);
  EXPECT_EQ(Run(loop, 5), (std::vector<absl::Time>{T(1), T(2), T(2.5), T(3), T(4)}));
  EXPECT_EQ(driver_.refreshes, (std::vector<absl::Time>{T(0), T(1), T(2), T(3)}));
  EXPECT_EQ(driver_.polls.size(), 5u);
}

// The first refresh comes when the driver asks (attach: one period after the start).
TEST_F(AgentLoopTest, FirstRefreshAtItsTime) {
  AgentLoop loop({.refresh = absl::Seconds(1), .first_refresh = T(1)}, clock_, driver_);
  EXPECT_EQ(Run(loop, 2), (std::vector<absl::Time>{T(1), T(2)}));
  EXPECT_EQ(driver_.refreshes, (std::vector<absl::Time>{T(1)}));
}

// While events can wait in the ring, it is drained every poll at least.
TEST_F(AgentLoopTest, DrainsEveryPollWhileTracing) {
  driver_.state_.draining = true;
  AgentLoop loop({.refresh = absl::Seconds(1), .first_refresh = T(0), .poll = absl::Seconds(0.25)},
                 clock_, driver_);
  EXPECT_EQ(Run(loop, 5), (std::vector<absl::Time>{T(0.25), T(0.5), T(0.75), T(1), T(1.25)}));
  EXPECT_EQ(driver_.refreshes.size(), 2u);
}

// Few events: each drain waits twice as long as the last, up to the refresh period; many: back to
// the poll at once.
TEST_F(AgentLoopTest, DrainsStretchWhileEventsAreFew) {
  driver_.state_.draining = true;
  AgentLoop loop({.refresh = absl::Seconds(5),
                  .first_refresh = T(0),
                  .poll = absl::Milliseconds(250),
                  .quiet_events_per_second = 100},
                 clock_, driver_);
  EXPECT_EQ(Run(loop, 6), (std::vector<absl::Time>{T(0.5), T(1.5), T(3.5), T(5), T(10), T(15)}));
  driver_.events_per_poll = 1000;
  EXPECT_EQ(Run(loop, 2), (std::vector<absl::Time>{T(15.25), T(15.5)}));
  EXPECT_EQ(loop.drain_every(), absl::Milliseconds(250));
}

// The refresh runs at the clock's time after the drain: what the drain decoded is not newer.
TEST_F(AgentLoopTest, RefreshesAfterTheDrain) {
  driver_.drain_takes = absl::Milliseconds(30);
  AgentLoop loop({.refresh = absl::Seconds(1), .first_refresh = T(0)}, clock_, driver_);
  EXPECT_EQ(Run(loop, 1), (std::vector<absl::Time>{T(1.03)}));
  EXPECT_EQ(driver_.polls, (std::vector<absl::Time>{T(0)}));
  EXPECT_EQ(driver_.refreshes, (std::vector<absl::Time>{T(0.03)}));
}

// Past the end: one last drain, no refresh, and the loop stops.
TEST_F(AgentLoopTest, DrainsOnceMoreAtTheEnd) {
  AgentLoop loop({.refresh = absl::Seconds(1), .first_refresh = T(1), .end = T(2.5)}, clock_,
                 driver_);
  EXPECT_EQ(Run(loop, 10), (std::vector<absl::Time>{T(1), T(2), T(2.5)}));
  EXPECT_TRUE(loop.stopped());
  EXPECT_EQ(driver_.endings, 1);
  EXPECT_EQ(driver_.polls.back(), T(2.5));
  EXPECT_EQ(driver_.refreshes, (std::vector<absl::Time>{T(1), T(2)}));
}

// A driver stops the loop (the target exited) or fails it (it exec'd); nothing runs after.
TEST_F(AgentLoopTest, TheDriverStopsOrFails) {
  AgentLoop loop({.refresh = absl::Seconds(1), .first_refresh = T(0)}, clock_, driver_);
  driver_.refresh_result = false;
  ASSERT_TRUE(loop.Step().ok());
  EXPECT_TRUE(loop.stopped());

  FakeDriver failing(clock_);
  failing.poll_result = absl::FailedPreconditionError("exec");
  AgentLoop failed({.refresh = absl::Seconds(1), .first_refresh = T(0)}, clock_, failing);
  EXPECT_TRUE(absl::IsFailedPrecondition(failed.Step().status()));
  EXPECT_TRUE(failing.refreshes.empty());
}

// Two ring wakeups closer than the gap batch the next wait, once; not while a binary is probed.
TEST_F(AgentLoopTest, BatchesABurstOfRingWakeups) {
  AgentLoop loop(
      {.refresh = absl::Seconds(5), .first_refresh = T(0), .min_wake_gap = absl::Milliseconds(50)},
      clock_, driver_);
  EXPECT_EQ(loop.Step()->batch, absl::Milliseconds(50));  // no wakeups yet to tell apart
  loop.RingWoke(T(0.1));
  loop.RingWoke(T(1));
  EXPECT_EQ(loop.Step()->batch, absl::ZeroDuration());
  loop.RingWoke(T(1.01));
  EXPECT_EQ(loop.Step()->batch, absl::Milliseconds(50));
  EXPECT_EQ(loop.Step()->batch, absl::ZeroDuration());
  loop.RingWoke(T(1.02));
  loop.RingWoke(T(1.03));
  driver_.state_.probing = true;
  EXPECT_EQ(loop.Step()->batch, absl::ZeroDuration());
}

}  // namespace
}  // namespace ctxagent
