// Series that outlive their workloads (issue 25): waves of short-lived Go programs, each wave under
// new binary names, under one daemon. A wave's series must be exported while it runs and gone
// --series_ttl after it exits; the scrape's size and the daemon's RSS must stay flat across the
// waves, and the exposition must pass `promtool check metrics`.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

namespace fs = std::filesystem;
using testing::HttpGet;

constexpr int kWaves = 10, kPerWave = 8;

// `promtool check metrics` on `text`: its output, empty when lint-clean.
std::string PromtoolLint(const std::string& dir, const std::string& text, int* code) {
  const std::string file = dir + "/metrics.txt";
  std::ofstream(file) << text;
  testing::Child p = testing::Child::Start({"/bin/sh", "-c", "promtool check metrics < " + file},
                                           /*merge_stderr=*/true);
  std::string out = p.ReadAll(absl::Seconds(20));
  *code = p.Wait(absl::Seconds(5));
  return out;
}

// Names of the wave's binaries with a created-contexts series in `metrics`.
int WithSeries(const std::string& metrics, const std::vector<std::string>& names) {
  const auto samples = testing::ParseMetrics(metrics);
  return static_cast<int>(std::count_if(names.begin(), names.end(), [&](const std::string& n) {
    return !testing::Find(samples, "ctxagent_contexts_created_total", {{"binary", n}}).empty();
  }));
}

TEST(DaemonSeriesTest, ExitedWorkloadsSeriesGoAndNothingGrowsAcrossWaves) {
  CTXAGENT_REQUIRE_BPF();
  const std::string dir =
      ::testing::TempDir() + "/ctxagent_daemon_series_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  // One copy of our own (probes go on its inode, not on the shared fixture's), hard-linked under a
  // new name per program: the daemon names a workload by the path the program was run as.
  const std::string src = std::string(CTXAGENT_GO_FIXTURE_DIR) + "/ctxprog/go1.27/stripped";
  ASSERT_TRUE(fs::exists(src)) << src << " missing (target go_fixtures)";
  const std::string copy = dir + "/ctxwave";
  fs::copy_file(src, copy);
  fs::permissions(copy, fs::perms::owner_all);

  const absl::Duration ttl = absl::Seconds(2);
  testing::DaemonHandle daemon = testing::StartDaemon(
      CTXAGENT_BIN,
      {"--refresh=1s", "--rescan=3s", absl::StrCat("--series_ttl=", absl::FormatDuration(ttl)),
       "--include=binary:ctxwave_*", "--budget=0"},
      dir + "/daemon.log");
  ASSERT_GT(daemon.port, 0) << "daemon not ready:\n" << daemon.process->Log();
  const pid_t dpid = daemon.process->pid();

  std::vector<size_t> sizes;
  std::vector<long> rss;
  for (int w = 0; w < kWaves; ++w) {
    std::vector<std::string> names;
    std::vector<testing::Child> wave;
    for (int i = 0; i < kPerWave; ++i) {
      names.push_back(absl::StrCat("ctxwave_", w, "_", i));
      fs::create_hard_link(copy, dir + "/" + names.back());
      wave.push_back(testing::Child::Start({dir + "/" + names.back(), "-loop", "-sleep", "50ms"}));
      ASSERT_TRUE(wave.back().WaitForLine("ready", absl::Seconds(10))) << names.back();
    }
    // Exported while the wave runs: otherwise its absence afterwards would prove nothing.
    std::string m;
    const absl::Time seen_by = absl::Now() + absl::Seconds(20);
    do {
      absl::SleepFor(absl::Milliseconds(250));
      m = HttpGet(daemon.port, "/metrics").body;
    } while (absl::Now() < seen_by && WithSeries(m, names) < kPerWave);
    ASSERT_EQ(WithSeries(m, names), kPerWave) << "wave " << w << "\n" << m;
    if (w == 0) {
      int code = 0;
      const std::string lint = PromtoolLint(dir, m, &code);
      EXPECT_EQ(code, 0) << lint;
      EXPECT_EQ(lint, "") << "promtool check metrics, wave running";
    }
    for (testing::Child& c : wave) c.Kill(SIGTERM);
    for (testing::Child& c : wave) EXPECT_EQ(c.Wait(absl::Seconds(10)), 0);
    for (const std::string& n : names) fs::remove(dir + "/" + n);

    // Gone after the ttl and a refresh (and a rescan, should an exit event be missed).
    const absl::Time exited = absl::Now();
    const absl::Time gone_by = exited + ttl + absl::Seconds(8);
    do {
      absl::SleepFor(absl::Milliseconds(250));
      m = HttpGet(daemon.port, "/metrics").body;
    } while (absl::Now() < gone_by && absl::StrContains(m, "binary=\"ctxwave"));
    EXPECT_GE(absl::Now() - exited, ttl) << "series dropped before --series_ttl";
    ASSERT_FALSE(absl::StrContains(m, "binary=\"ctxwave")) << "wave " << w << "\n" << m;
    const auto samples = testing::ParseMetrics(m);
    const auto tracked = testing::Find(samples, "ctxagent_workloads_tracked");
    ASSERT_EQ(tracked.size(), 1u) << m;
    EXPECT_EQ(tracked[0].value, 0);
    sizes.push_back(m.size());
    rss.push_back(testing::VmRssKiB(dpid));
    printf("wave %d: %d programs, series gone %.1f s after exit; /metrics %zu bytes, RSS %ld KiB\n",
           w, kPerWave, absl::ToDoubleSeconds(absl::Now() - exited), m.size(), rss.back());
  }
  int code = 0;
  const std::string final_metrics = HttpGet(daemon.port, "/metrics").body;
  const std::string lint = PromtoolLint(dir, final_metrics, &code);
  EXPECT_EQ(code, 0) << lint;
  EXPECT_EQ(lint, "") << "promtool check metrics, after the waves";
  // Flat: only counter values' digits may change the size; memory settles after the first waves
  // (allocator pools, the binary's symbol tables read once).
  const auto [min_size, max_size] = std::minmax_element(sizes.begin(), sizes.end());
  EXPECT_LE(*max_size - *min_size, 64u) << "/metrics grew across waves";
  const long settled = *std::max_element(rss.begin(), rss.begin() + 3);
  EXPECT_LE(rss.back(), settled + 4 * 1024) << "daemon RSS grew across waves";
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ctxagent
