#include "agent/sampling.h"

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

TEST(SamplingTest, UnderBudgetStaysAttached) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c(0.003, absl::Seconds(10), t);
  for (int i = 1; i <= 100; ++i) EXPECT_TRUE(c.Update(t + absl::Seconds(i), 0.001));
  EXPECT_EQ(c.ratio(), 1.0);
  EXPECT_NEAR(c.observed_ratio(t + absl::Seconds(100)), 1.0, 1e-9);
}

TEST(SamplingTest, OverBudgetDutyCyclesToTheBudget) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c(0.003, absl::Seconds(10), t);
  double spent = 0;
  const double full_cost = 0.012;  // four times the budget
  for (int i = 1; i <= 400; ++i) {
    bool was_attached = c.attached();
    c.Update(t + absl::Seconds(i), was_attached ? full_cost : 0);
    if (was_attached) spent += full_cost;
  }
  EXPECT_NEAR(c.ratio(), 0.25, 1e-9);
  EXPECT_EQ(c.window(), absl::Seconds(10));
  EXPECT_EQ(c.period(), absl::Seconds(40));
  // Average cost over the run: the budget, within one window's worth of rounding.
  EXPECT_NEAR(spent / 400, 0.003, 0.0005);
  EXPECT_NEAR(c.observed_ratio(t + absl::Seconds(400)), 0.25, 0.03);
}

TEST(SamplingTest, NeverStopsMeasuring) {
  absl::Time t = absl::FromUnixSeconds(1000);
  SamplingController c(0.003, absl::Seconds(5), t);
  int attached_seconds = 0;
  for (int i = 1; i <= 1000; ++i) attached_seconds += c.Update(t + absl::Seconds(i), c.attached() ? 10.0 : 0) ? 1 : 0;
  EXPECT_GT(attached_seconds, 0);
  EXPECT_NEAR(c.ratio(), 0.02, 1e-9);
}

}  // namespace
}  // namespace ctxagent
