// The daemon's limits. Memory: past --max_contexts_per_process a process's new contexts are not
// tracked, the drops are counted (ctxagent_evictions_total), and the gap produces no finding. CPU:
// over its --budget the daemon duty-cycles the probes and still finds recurring leaks.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/control/work_pacer.h"
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
  testing::Child target = testing::Child::Start(
      {std::string(CTXAGENT_SCENARIO_BIN) + "/go1.27/lost_cancel", "-rate", "400"});
  ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
  testing::DaemonHandle d = testing::StartDaemon(
      // Full tracing: the eviction count is exact.
      CTXAGENT_BIN,
      {"--include=binary:lost_cancel", "--refresh=500ms", "--max_contexts_per_process=300",
       "--grace=1s", "--leak_after=2s", "--budget=0"},
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
  auto entry = testing::ProcessEntry(testing::Processes(d.detail_port), target.pid());
  ASSERT_TRUE(entry.has_value());
  // What was tracked before the cap is uncertain now: no finding from the gap.
  EXPECT_EQ((*entry)["findings"], 0) << entry->dump();
  EXPECT_EQ(d.process->Stop(absl::Seconds(10)), 0) << d.process->Log();
}

TEST(DaemonLimitsTest, OverBudgetSamplesAndStillFindsTheLeak) {
  CTXAGENT_REQUIRE_BPF();
  const std::string log = ::testing::TempDir() + "/ctxagent_daemon_budget.log";
  // 2000 orphaned sessions a second cost far more than a 0.01% budget.
  testing::Child target = testing::Child::Start(
      {std::string(CTXAGENT_SCENARIO_BIN) + "/go1.27/orphaned_done", "-rate", "2000"});
  ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
  testing::DaemonHandle d =
      testing::StartDaemon(CTXAGENT_BIN,
                           {"--include=binary:orphaned_done", "--refresh=500ms", "--grace=1s",
                            "--leak_after=2s", "--budget=0.0001"},
                           log);
  ASSERT_GT(d.port, 0) << d.process->Log();
  // Reading its thousands of parked goroutines and evaluating cost far more than the budget too:
  // that work is paced (agent/control/work_pacer.h), so the leak is found within the longest pause.
  std::optional<nlohmann::json> entry;
  double paused_s = 0;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + kMaxWorkPause + absl::Seconds(30);
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(500));
    entry = testing::ProcessEntry(testing::Processes(d.detail_port), target.pid());
    if (entry.has_value()) paused_s = std::max(paused_s, (*entry)["work_pause_s"].get<double>());
    if (entry.has_value() && (*entry)["findings"].get<int>() > 0) break;
  }
  ASSERT_TRUE(entry.has_value()) << d.process->Log();
  EXPECT_GT((*entry)["findings"].get<int>(), 0) << entry->dump();
  EXPECT_GT(paused_s, 1) << "its memory reads and evaluations were not paced";
  fprintf(stderr, "found after %.1f s, work paused up to %.1f s\n",
          absl::ToDoubleSeconds(absl::Now() - start), paused_s);
  auto metrics = testing::ParseMetrics(testing::HttpGet(d.port, "/metrics").body);
  auto ratio = testing::Find(metrics, "ctxagent_sampling_ratio", {{"binary", "orphaned_done"}});
  ASSERT_EQ(ratio.size(), 1u);
  EXPECT_LT(ratio[0].value, 0.9) << "the probes were never paused";
  EXPECT_GT(ratio[0].value, 0.0);
  auto findings = testing::Find(metrics, "ctxagent_findings",
                                {{"binary", "orphaned_done"}, {"kind", "orphaned_done"}});
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_GT(findings[0].value, 0);
  // What tracing cost, as a counter: some, and not more than the node had.
  auto spent = testing::Find(metrics, "ctxagent_overhead_cpu_seconds_total", {});
  ASSERT_EQ(spent.size(), 1u);
  EXPECT_GT(spent[0].value, 0);
  EXPECT_LT(spent[0].value,
            absl::ToDoubleSeconds(absl::Now() - start) * sysconf(_SC_NPROCESSORS_ONLN));
  // The trap cost it counts with, and where that comes from (measured on the target, or the
  // calibration until enough on/off windows agree).
  auto trap = testing::Find(metrics, "ctxagent_probe_trap_seconds", {});
  ASSERT_EQ(trap.size(), 1u);
  EXPECT_GT(trap[0].value, 0);
  EXPECT_TRUE(trap[0].labels.at("source") == "targets" ||
              trap[0].labels.at("source") == "calibration");
  EXPECT_EQ(d.process->Stop(absl::Seconds(10)), 0) << d.process->Log();
  // At its stop the daemon says where the counter stands: at least where it was scraped.
  double at_stop = -1;
  for (absl::string_view line : absl::StrSplit(d.process->Log(), '\n')) {
    if (absl::ConsumePrefix(&line, "ctxagent daemon: tracing cost ")) {
      ASSERT_TRUE(absl::SimpleAtod(line.substr(0, line.find(' ')), &at_stop)) << line;
    }
  }
  EXPECT_GE(at_stop + 1e-4, spent[0].value) << d.process->Log();  // printed to 4 decimals
}

}  // namespace
}  // namespace ctxagent
