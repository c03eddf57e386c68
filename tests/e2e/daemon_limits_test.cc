// The daemon's memory caps: past --max_contexts_per_process a process's new contexts are not tracked,
// the drops are counted (ctxagent_evictions_total), and the gap produces no finding.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

TEST(DaemonLimitsTest, CapsTrackedContextsAndCountsEvictions) {
  CTXAGENT_REQUIRE_BPF();
  const std::string log = ::testing::TempDir() + "/ctxagent_daemon_limits.log";
  // lost_cancel keeps every context alive under its root: tracked contexts only grow.
  testing::Child target =
      testing::Child::Start({std::string(CTXAGENT_SCENARIO_BIN) + "/go1.27/lost_cancel", "-rate", "400"});
  ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
  testing::DaemonHandle d = testing::StartDaemon(
      CTXAGENT_BIN, {"--include=binary:lost_cancel", "--refresh=500ms", "--max_contexts_per_process=300",
                     "--grace=1s", "--leak_after=2s"},
      log);
  ASSERT_GT(d.port, 0) << d.process->Log();
  absl::SleepFor(absl::Seconds(4));  // ~1600 contexts: well past the cap

  auto metrics = testing::ParseMetrics(testing::HttpGet(d.port, "/metrics").body);
  auto evictions = testing::Find(metrics, "ctxagent_evictions_total");
  ASSERT_EQ(evictions.size(), 1u);
  EXPECT_GT(evictions[0].value, 500) << "new contexts past the cap must be counted";
  auto live = testing::Find(metrics, "ctxagent_contexts_live", {{"binary", "lost_cancel"}});
  ASSERT_EQ(live.size(), 1u);
  EXPECT_LE(live[0].value, 300) << "tracked contexts exceed the cap";
  auto entry = testing::ProcessEntry(testing::Processes(d.port), target.pid());
  ASSERT_TRUE(entry.has_value());
  // What was tracked before the cap is uncertain now: no finding from the gap.
  EXPECT_EQ((*entry)["findings"], 0) << entry->dump();
  EXPECT_EQ(d.process->Stop(absl::Seconds(10)), 0) << d.process->Log();
}

}  // namespace
}  // namespace ctxagent
