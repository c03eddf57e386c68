#include "agent/control/work_pacer.h"

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

TEST(WorkPacerTest, PausesInProportionToWhatARunCost) {
  WorkPacer p;
  const absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(p.Due(t));
  p.set_allowance(0.001);  // a thousandth of a core
  p.Ran(t, 0.002);         // 2 ms of CPU: 2 s of pause
  EXPECT_EQ(p.pause(), absl::Seconds(2));
  EXPECT_FALSE(p.Due(t + absl::Milliseconds(1999)));
  EXPECT_TRUE(p.Due(t + absl::Seconds(2)));
  // A larger allowance (a traced process fewer) shortens the pause at once.
  p.set_allowance(0.002);
  EXPECT_EQ(p.pause(), absl::Seconds(1));
  EXPECT_TRUE(p.Due(t + absl::Seconds(1)));
  // However costly, at most kMaxWorkPause (5 minutes).
  p.Ran(t, 10);
  EXPECT_EQ(p.pause(), kMaxWorkPause);
  // Without a limit nothing waits.
  p.set_allowance(0);
  EXPECT_TRUE(p.Due(t));
  p.Ran(t, 10);
  EXPECT_TRUE(p.Due(t));
  EXPECT_EQ(p.pause(), absl::ZeroDuration());
}

TEST(WorkPacerTest, AllowanceSharesHalfTheBudgetAmongProcesses) {
  // 0.3% of a 2-core node: 0.006 cores, half of it for per-process work, split among 3.
  EXPECT_DOUBLE_EQ(ProcessWorkAllowance(0.003, 2, 3), 0.001);
  EXPECT_DOUBLE_EQ(ProcessWorkAllowance(0.003, 2, 0), 0.003);
  EXPECT_EQ(ProcessWorkAllowance(0, 2, 3), 0);  // --budget=0: no limit
}

TEST(WorkPacerTest, ThreadCpuTimeAdvancesWithWork) {
  const double before = ThreadCpuSeconds();
  volatile double x = 0;
  for (int i = 0; i < 5'000'000; ++i) x = x + i;
  EXPECT_GT(ThreadCpuSeconds(), before);
}

}  // namespace
}  // namespace ctxagent
