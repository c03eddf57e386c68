#include "agent/control/sampling.h"

#include <vector>

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

// A window the simulation saw, and what it had spent by the window's end (node share x seconds).
struct Window {
  absl::Time start, end;
  double spent_at_end = 0;
};

// Runs the controller for `seconds` in 10 ms ticks against a process whose tracing costs `on`
// (share of the node) while attached and `off` while detached, measuring every 0.5 s and at every
// switch as the agent does, and charging what it measured; a detach + attach costs `switch_cost`
// (node share x seconds). Returns the average cost; `windows`, if given, gets the windows.
double Simulate(SamplingController& c, absl::Time& t, int seconds, double on, double off,
                double switch_cost = 0, std::vector<Window>* windows = nullptr) {
  double spent = 0, charged = 0;
  absl::Time segment_start = t;
  bool state = c.attached();
  for (int i = 0; i < seconds * 100; ++i) {
    t += absl::Milliseconds(10);
    spent += (state ? on : off) * 0.01;
    const bool want = c.Tick(t);
    if (want != state || t - segment_start >= absl::Milliseconds(500)) {
      c.Observe(state, state ? on : off, t - segment_start);
      segment_start = t;
      if (want && !state) {
        spent += switch_cost;
        c.ObserveSwitch(switch_cost);
      }
      c.Charge(t, spent - charged);
      charged = spent;
      if (windows != nullptr && want && !state) windows->push_back({t, t});
      if (windows != nullptr && !want && state && !windows->empty()) {
        windows->back().end = t;
        windows->back().spent_at_end = spent;
      }
      state = want;
    }
  }
  return spent / seconds;
}

TEST(SamplingTest, UnderBudgetStaysAttached) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c({.budget = 0.003}, t);
  EXPECT_NEAR(Simulate(c, t, 100, 0.001, 0.0001), 0.001, 1e-9);
  EXPECT_EQ(c.ratio(), 1.0);
  EXPECT_TRUE(c.attached());
  EXPECT_NEAR(c.observed_ratio(t), 1.0, 1e-9);
}

TEST(SamplingTest, OverBudgetDutyCyclesBelowTheBudget) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c({.budget = 0.003}, t);
  const double aim = kSteadyShare * 0.003;
  // Full tracing at 11% of the node (20k contexts/s measured here), the agent idle at 0.02%.
  const double average = Simulate(c, t, 600, 0.11, 0.0002);
  EXPECT_NEAR(c.ratio(), (aim - 0.0002) / (0.11 - 0.0002), 1e-3);
  // Short windows, a period within max_period: a leak gets a window every minute.
  EXPECT_LE(c.window(), absl::Seconds(2));
  EXPECT_GE(c.window(), absl::Milliseconds(900));
  EXPECT_LE(c.period(), absl::Seconds(61));
  // The first window measures at full cost (~1.5 s); over 10 minutes that is within 0.04%.
  EXPECT_LT(average, aim + 0.0004);
  EXPECT_GT(average, aim - 0.0003);
}

TEST(SamplingTest, AttachingCostIsPaidPerPeriod) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c({.budget = 0.003}, t);
  // A cheap target (0.8% of the node when traced) in a big binary: attach + detach take 200 ms of
  // CPU on 2 CPUs. Windows are as long as allowed, to switch rarely.
  const double average = Simulate(c, t, 900, 0.008, 0.0002, 0.1);
  const double aim = kSteadyShare * 0.003;
  EXPECT_NEAR(c.switch_cost(), 0.1, 1e-9);
  EXPECT_GT(c.window(), absl::Seconds(13));
  EXPECT_LT(average, aim + 0.0003);
  EXPECT_GT(average, aim - 0.0005);
  // Without the switch cost in the plan, the ratio would be (aim - 0.0002) / (0.008 - 0.0002).
  EXPECT_LT(c.ratio(), 0.6 * (aim - 0.0002) / (0.008 - 0.0002));
}

TEST(SamplingTest, AVeryExpensiveTargetStretchesThePeriodNotTheBudget) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c({.budget = 0.003}, t);
  Simulate(c, t, 30, 2.0, 0.0002);  // past the first window
  const double average = Simulate(c, t, 1200, 2.0, 0.0002);
  EXPECT_EQ(c.window(), absl::Milliseconds(250));
  EXPECT_GT(c.period(), absl::Seconds(60));
  EXPECT_LT(average, 0.0035);
}

// The first window is as long as keeps the first 20 s within the budget: short for a busy target,
// most of those 20 s for one barely over the budget (a quarter second, then a 20 s wait, missed
// every leak of a cheap program traced for 10 s).
TEST(SamplingTest, TheFirstWindowKeepsTheFirst20SecondsWithinBudget) {
  struct Case {
    double on;
    absl::Duration min_first, max_first;
  };
  // 40% of the budget over 20 s: 0.024 node-seconds at `on`, less the agent's own cost detached
  // for the rest of the span, at least min_first_window (50 ms).
  for (const Case& k : {Case{0.0036, absl::Seconds(6), absl::Seconds(7)},
                        Case{0.11, absl::Milliseconds(150), absl::Milliseconds(220)},
                        Case{1.0, absl::Milliseconds(50), absl::Milliseconds(60)}}) {
    absl::Time t = absl::FromUnixSeconds(1000);
    SamplingController c({.budget = 0.003}, t);
    c.Estimate(k.on, t);
    absl::Duration first = absl::ZeroDuration();
    double spent = 0;  // over 20 s, detached at the agent's own cost
    bool in_first = true;
    for (int i = 0; i < 2000; ++i, t += absl::Milliseconds(10)) {
      const bool on = c.Tick(t);
      in_first = in_first && on;
      if (in_first) first += absl::Milliseconds(10);
      spent += (on ? k.on : 0.0002) * 0.01;
    }
    EXPECT_GE(first, k.min_first) << k.on;
    EXPECT_LE(first, k.max_first) << k.on;
    EXPECT_LE(spent / 20, 0.003) << k.on;
  }
}

// A busy target arriving: what reading and attaching it cost, its probe and its first window are
// repaid before the next window, so no steady window starts inside its first minute, and from the
// arrival the average at every window's end is within the budget. Without the ledger the next
// window came a period after the first, the arrival's cost unpaid.
TEST(SamplingTest, TheFirstPeriodRepaysWhatTheArrivalSpent) {
  const double on = 0.05, off = 0.0002, budget = 0.003;
  absl::Time t = absl::FromUnixSeconds(1000);
  const absl::Time arrival = t;
  SamplingController c({.budget = budget}, t);
  c.Arrive(t);
  c.Charge(t, 0.01);  // reading the binary and attaching its probes: 20 ms of CPU on 2 CPUs
  c.Tick(t += absl::Milliseconds(100));
  c.Charge(t, on * 0.1);
  c.Estimate(on, arrival);  // the 100 ms probe at full cost
  EXPECT_TRUE(c.repaying());
  std::vector<Window> windows = {{arrival, arrival}};
  const double average = Simulate(c, t, 600, on, off, 0, &windows);
  // The first window was short: the first 20 s within the budget, the arrival's cost included.
  const double first_s = absl::ToDoubleSeconds(windows[0].end - arrival);
  EXPECT_LE(0.01 + first_s * on + (20 - first_s) * off, budget * 20);
  EXPECT_GT(first_s, 0.25);
  ASSERT_GE(windows.size(), 3u);
  EXPECT_GE(windows[1].start - arrival, absl::Seconds(60));
  EXPECT_LT(windows[1].start - arrival, absl::Seconds(90));  // leaks are still looked for
  EXPECT_FALSE(c.repaying());
  const double spent_before = 0.01 + on * 0.1;
  for (size_t i = 1; i < windows.size(); ++i) {
    const Window& w = windows[i];
    const double since_arrival = spent_before + w.spent_at_end;
    EXPECT_LE(since_arrival / absl::ToDoubleSeconds(w.end - arrival), budget * 1.01)
        << absl::FormatTime(w.end);
  }
  EXPECT_LT(average, budget);
}

// The first window ends on what the ledger was charged, not on the estimate alone: a target three
// times dearer than its probe said spends the first span's allowance and no more.
TEST(SamplingTest, TheFirstWindowEndsOnWhatItSpent) {
  const double budget = 0.003, estimate = 0.02, actual = 0.06;
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c({.budget = budget}, t);
  c.Arrive(t);
  c.Charge(t, 0.005);
  c.Estimate(estimate, t);
  double spent = 0.005;
  while (c.Tick(t) && spent < 1) {
    t += absl::Milliseconds(10);
    spent += actual * 0.01;  // what each hit alarm charges
    c.Charge(t, actual * 0.01);
  }
  EXPECT_LE(spent, c.first_span_allowance() + actual * 0.01);
  EXPECT_GE(spent, c.first_span_allowance() / 2);
}

TEST(SamplingTest, NeverStopsMeasuring) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c({.budget = 0.003}, t);
  // The agent alone exceeds the budget: detaching saves what it can, one window in 1000 remains.
  Simulate(c, t, 1000, 10.0, 0.004);
  EXPECT_NEAR(c.ratio(), 0.001, 1e-9);
  EXPECT_GT(c.observed_ratio(t), 0.0);
}

TEST(SamplingTest, ATargetBudgetCanBeTheTighterOne) {
  absl::Time t = absl::FromUnixSeconds(1000);
  // 1% of a target that uses 10% of the node = 0.1% of the node, tighter than the node's 0.3%.
  SamplingController c({.budget = 0.003, .target_budget = 0.01}, t);
  absl::Time segment_start = t;
  double spent = 0;
  bool state = c.attached();
  for (int i = 0; i < 60000; ++i) {
    t += absl::Milliseconds(10);
    spent += (state ? 0.02 : 0.0) * 0.01;
    const bool want = c.Tick(t);
    if (want != state || t - segment_start >= absl::Milliseconds(500)) {
      c.Observe(state, state ? 0.02 : 0.0, t - segment_start);
      c.ObserveTarget(0.10, t - segment_start);
      segment_start = t;
      state = want;
    }
  }
  EXPECT_NEAR(c.budget(), 0.001, 1e-6);
  EXPECT_NEAR(spent / 600, kSteadyShare * 0.001, 0.0002);
  // Without a node budget, the target's applies alone.
  SamplingController alone({.budget = 0, .target_budget = 0.05}, t);
  alone.ObserveTarget(0.10, absl::Seconds(1));
  EXPECT_NEAR(alone.budget(), 0.005, 1e-9);
}

// What a hit costs the traced processes follows them: a cost that changes is taken up once the
// newer pairs agree, after the kept pairs are full as well as before.
TEST(SamplingTest, TheMeasuredHitCostFollowsTheTargets) {
  absl::Time t = absl::Now();
  double cpu = 0, trap = 2e-6;
  TrapHits hits{};
  DutyCycle duty({.fixed = {.window = absl::Seconds(1), .period = absl::Seconds(3)}},
                 std::make_unique<OverheadMeter>(TrapCosts{}, -1, 0), t, [&] {
                   return TracedCpu{cpu, 7};
                 });
  auto run = [&](int seconds) {
    for (int i = 0; i < seconds * 4; ++i) {
      t += absl::Milliseconds(250);
      const uint64_t n = duty.attached() ? 10000 : 0;  // 40k hits/s while attached
      hits[TRAP_EMULATED] += n;
      cpu += 0.5 * 0.25 + n * trap;
      const bool want = duty.Tick(t);
      if (want != duty.attached()) {
        duty.Switch(t, hits, want, [] {});
      } else {
        duty.Measure(t, hits);
      }
    }
  };
  run(90);  // 30 pairs: the kept ones are full
  ASSERT_TRUE(duty.trap_costs().measured());
  EXPECT_NEAR(duty.trap_costs().measured_us, 2, 0.1);
  trap = 4e-6;
  run(90);
  EXPECT_NEAR(duty.trap_costs().measured_us, 4, 0.1);
}

// --duty_cycle: the windows it says, whatever tracing costs and the budget allow.
TEST(SamplingTest, AFixedDutyCycleOverridesTheBudget) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c(
      {.budget = 0.003, .fixed = {.window = absl::Milliseconds(500), .period = absl::Seconds(2)}},
      t);
  EXPECT_TRUE(c.attached());
  const double average = Simulate(c, t, 20, 0.0001, 0.0001);  // far under the budget
  EXPECT_EQ(c.ratio(), 0.25);
  EXPECT_NEAR(c.observed_ratio(t), 0.25, 0.01);
  EXPECT_NEAR(average, 0.0001, 1e-9);
  EXPECT_EQ(c.window(), absl::Milliseconds(500));
  EXPECT_EQ(c.period(), absl::Seconds(2));
  c.Estimate(0.5, t);  // a very busy target: still the same cycle
  Simulate(c, t, 20, 0.5, 0.0001);
  EXPECT_NEAR(c.observed_ratio(t), 0.25, 0.01);
}

TEST(SamplingTest, NoBudgetMeansFullTracing) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c({.budget = 0}, t);
  Simulate(c, t, 10, 5.0, 0);
  EXPECT_EQ(c.ratio(), 1.0);
  EXPECT_TRUE(c.attached());
}

}  // namespace
}  // namespace ctxagent
