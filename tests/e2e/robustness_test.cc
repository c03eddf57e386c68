// `ctxagent attach` under hostile conditions: targets that exit mid-attach, a busy target attached
// and detached 100 times, and a ring buffer too small for the event rate.
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bpf/bpf_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

using testing::Child;

const std::string kTarget = std::string(CTXAGENT_GO_FIXTURE_DIR) + "/ctxprog/go1.27/stripped";

// The agent's JSON Lines: findings and the summary.
struct AgentOutput {
  std::vector<nlohmann::json> findings;
  nlohmann::json summary;
};

AgentOutput Parse(const std::string& raw) {
  AgentOutput out;
  for (absl::string_view line : absl::StrSplit(raw, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    if (j["type"] == "finding") out.findings.push_back(j);
    if (j["type"] == "summary") out.summary = j;
  }
  return out;
}

TEST(RobustnessTest, TargetExitingDuringAttachIsAClearErrorOrACleanReport) {
  CTXAGENT_REQUIRE_BPF();
  for (int i = 0; i < 15; ++i) {
    Child target = Child::Start({kTarget, "-n", std::to_string(1 + i * 20)});
    Child agent = Child::Start(
        {CTXAGENT_BIN, "attach", std::to_string(target.pid()), "-o", "json", "--duration=2s"},
        true);
    std::string out = agent.ReadAll(absl::Seconds(20));
    int rc = agent.Wait(absl::Seconds(5));
    EXPECT_EQ(target.Wait(absl::Seconds(10)), 0) << "target harmed, round " << i;
    // Either it attached (report with a summary) or it said in one line why not; never a crash.
    ASSERT_TRUE(rc == 0 || rc == 1) << "round " << i << " rc " << rc << ":\n" << out;
    if (rc == 1) {
      EXPECT_THAT(out, ::testing::StartsWith("ctxagent attach: ")) << out;
      EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    } else {
      EXPECT_FALSE(Parse(out).summary.is_null()) << out;
    }
  }
}

TEST(RobustnessTest, BusyTargetSurvives100AttachDetachCycles) {
  CTXAGENT_REQUIRE_BPF();
  Child target = Child::Start({kTarget, "-loop", "-n", "5", "-sleep", "1ms"});
  ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
  uint64_t contexts = 0;
  for (int i = 0; i < 100; ++i) {
    Child agent = Child::Start(
        {CTXAGENT_BIN, "attach", std::to_string(target.pid()), "-o", "json", "--duration=30ms"});
    std::string out = agent.ReadAll(absl::Seconds(20));
    ASSERT_EQ(agent.Wait(absl::Seconds(5)), 0) << "cycle " << i << ":\n" << out;
    AgentOutput o = Parse(out);
    ASSERT_FALSE(o.summary.is_null()) << out;
    EXPECT_TRUE(o.findings.empty()) << out;
    contexts += o.summary["contexts_created"].get<uint64_t>();
  }
  EXPECT_GT(contexts, 100u) << "the probes saw nothing";
  // Its own checks of every context's behaviour passed throughout, and it stops cleanly.
  target.Kill(SIGTERM);
  EXPECT_TRUE(target.WaitForLine("ctxprog done", absl::Seconds(10)));
  EXPECT_EQ(target.Wait(absl::Seconds(10)), 0);
}

TEST(RobustnessTest, RingBufferOverflowIsReportedAndCausesNoFalseFindings) {
  CTXAGENT_REQUIRE_BPF();
  Child target = Child::Start({kTarget, "-loop", "-n", "200", "-sleep", "1ms"});
  ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
  // 8 KiB of ring drained once a second: most events cannot be written.
  Child agent = Child::Start({CTXAGENT_BIN, "attach", std::to_string(target.pid()), "-o", "json",
                              "--duration=5s", "--ring_buffer_kb=8", "--poll=1s", "--grace=1s",
                              "--leak_after=2s", "--refresh=500ms", "--budget=0"});
  std::string out = agent.ReadAll(absl::Seconds(30));
  ASSERT_EQ(agent.Wait(absl::Seconds(5)), 0) << out;
  AgentOutput o = Parse(out);
  ASSERT_FALSE(o.summary.is_null()) << out;
  EXPECT_GT(o.summary["events_lost"].get<uint64_t>(), 0u) << out;
  EXPECT_GT(o.summary["events_lost_by_reason"]["ringbuf_full"].get<uint64_t>(), 0u) << out;
  EXPECT_FALSE(o.summary["counts_exact"].get<bool>()) << out;
  EXPECT_GT(o.summary["events"].get<uint64_t>(), 0u) << out;
  EXPECT_TRUE(o.findings.empty()) << out;
  target.Kill(SIGTERM);
  EXPECT_EQ(target.Wait(absl::Seconds(10)), 0);
}

TEST(RobustnessTest, SamplingUnderABudgetStillFindsTheLeak) {
  CTXAGENT_REQUIRE_BPF();
  // Thousands of leaked sessions a second: full tracing costs far more than the 0.1% budget.
  Child target = Child::Start({CTXAGENT_ORPHANED_DONE, "-rate", "2000"});
  ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
  Child agent = Child::Start({CTXAGENT_BIN, "attach", std::to_string(target.pid()), "-o", "json",
                              "--duration=12s", "--budget=0.001", "--grace=1s", "--leak_after=2s",
                              "--refresh=500ms"});
  std::string out = agent.ReadAll(absl::Seconds(60));
  ASSERT_EQ(agent.Wait(absl::Seconds(5)), 0) << out;
  AgentOutput o = Parse(out);
  ASSERT_FALSE(o.summary.is_null()) << out;
  const double ratio = o.summary["sampling_ratio"].get<double>();
  EXPECT_LT(ratio, 0.9) << "the probes were never paused";
  EXPECT_GT(ratio, 0.0);
  EXPECT_FALSE(o.summary["counts_exact"].get<bool>());
  // The finding stands on what memory says after the probes were paused.
  EXPECT_GE(o.summary["pauses"].get<int>(), 1) << out;
  EXPECT_LE(o.summary["sampling"]["window_s"].get<double>(), 15.0);
  EXPECT_LT(o.summary["sampling"]["budget"].get<double>(), 0.0011);
  EXPECT_GT(o.summary["contexts_created_estimate"].get<double>(),
            o.summary["contexts_created"].get<double>());
  ASSERT_EQ(o.findings.size(), 1u) << out;
  EXPECT_EQ(o.findings[0]["kind"], "orphaned_done");
  target.Kill(SIGKILL);
}

TEST(RobustnessTest, RefusesWhatItCannotTrace) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"attach", "999999999"}, {"attach", "1"}, {"attach", "abc"}}) {
    Child agent = Child::Start(
        [&] {
          std::vector<std::string> v = {CTXAGENT_BIN};
          v.insert(v.end(), args.begin(), args.end());
          return v;
        }(),
        true);
    std::string out = agent.ReadAll(absl::Seconds(10));
    int rc = agent.Wait(absl::Seconds(5));
    EXPECT_NE(rc, 0) << args[1];
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    EXPECT_THAT(out, ::testing::StartsWith("ctxagent attach: ")) << out;
  }
}

}  // namespace
}  // namespace ctxagent
