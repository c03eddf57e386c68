// A target that corrupts its own runtime cannot grow or stall the daemon: hostileprog
// (tests/goroutines/hostileprog) points runtime.allgs at garbage, claims a huge allglen, makes a
// sudog list cyclic, or breaks mheap_.allspans, each in its own process, beside leakprog, whose
// leaks must still be proven. One daemon with a 64 MiB cap traces them all at once: its peak RSS
// stays under a bound, /healthz answers within a second throughout, each process whose runtime
// makes no sense loses its heap marks with one log line (its probes trace on), and the neighbour's
// goroutine_leak findings come as they do alone.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

constexpr int kCapMiB = 64;
// The daemon's peak RSS: its own ~45 MiB (BPF skeletons, symbol tables of two binaries, HTTP)
// plus one cap; measured 49 MiB. Before the goroutine reader was bounded it reached 320 MiB here.
constexpr long kMaxPeakMiB = 45 + kCapMiB;

struct Mode {
  const char* name;
  // The log line's reason when the mark stops; empty: marks go on (a cyclic sudog list reads as
  // a goroutine changing under the read, which is then a root and never reported).
  const char* stops_with;
};
constexpr Mode kModes[] = {
    {"allglen", "runtime.allglen is"}, {"allgs", "are not goroutines"},        {"sudog", ""},
    {"spans", "spans (cap"},           {"span", "in-use spans make no sense"},
};

// How many lines of the daemon's log stop `pid`'s marks, and the last such line.
int MarkStops(const std::string& log, pid_t pid, std::string* line) {
  int n = 0;
  for (absl::string_view l : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(l, absl::StrCat("pid ", pid, " (")) &&
        absl::StrContains(l, "heap marks stopped")) {
      ++n;
      *line = std::string(l);
    }
  }
  return n;
}

// The functions that leakprog's goroutine_leak findings name as where their goroutines block.
std::set<std::string> LeakSites(int detail_port, pid_t pid) {
  std::set<std::string> out;
  const testing::HttpResult r =
      testing::HttpGet(detail_port, absl::StrCat("/processes/", pid, "/findings"));
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_array()) return out;
  for (const auto& f : j) {
    if (f.value("kind", "") == "goroutine_leak") {
      out.insert(f["site"].value("function", ""));
    }
  }
  return out;
}

TEST(HostileTargetTest, DaemonStaysBoundedAndTracesTheNeighbour) {
  CTXAGENT_REQUIRE_BPF();
  const std::string log = ::testing::TempDir() + "/ctxagent_hostile.log";
  // leakprog under a name of its own: the daemon selects by name, and other tests run leakprog.
  const std::string neighbour_bin = ::testing::TempDir() + "/hostile_neighbour";
  std::filesystem::copy_file(std::string(CTXAGENT_LEAKPROG) + "/go1.27/leakprog", neighbour_bin,
                             std::filesystem::copy_options::overwrite_existing);
  testing::Child neighbour = testing::Child::Start({neighbour_bin});
  ASSERT_TRUE(neighbour.WaitForLine("ready", absl::Seconds(20)));
  std::vector<testing::Child> hostile;
  for (const Mode& m : kModes) {
    // Sound long enough for the daemon to attach and mark it once.
    hostile.push_back(
        testing::Child::Start({std::string(CTXAGENT_HOSTILEPROG) + "/go1.27/hostileprog", "-mode",
                               m.name, "-delay", "4s"}));
    ASSERT_TRUE(hostile.back().WaitForLine("ready", absl::Seconds(20))) << m.name;
  }
  testing::DaemonHandle d = testing::StartDaemon(
      CTXAGENT_BIN,
      {"--include=binary:hostileprog,binary:hostile_neighbour", "--refresh=500ms",
       "--mark_every=2s", absl::StrCat("--mark_memory_mb=", kCapMiB), "--budget=0"},
      log);
  ASSERT_GT(d.port, 0) << d.process->Log();
  for (size_t i = 0; i < hostile.size(); ++i) {
    ASSERT_TRUE(hostile[i].WaitForLine("corrupted", absl::Seconds(20))) << kModes[i].name;
  }

  // Until every expected line and the neighbour's leaks are there, then as long again.
  const absl::Time corrupted = absl::Now();
  absl::Time done = absl::InfiniteFuture();
  absl::Duration slowest = absl::ZeroDuration();
  int unanswered = 0;
  std::set<std::string> leak_sites;
  while (absl::Now() < std::min(done, corrupted + absl::Seconds(40))) {
    const absl::Time asked = absl::Now();
    const testing::HttpResult health = testing::HttpGet(d.port, "/healthz", absl::Seconds(1));
    slowest = std::max(slowest, absl::Now() - asked);
    if (health.status != 200) ++unanswered;
    leak_sites = LeakSites(d.detail_port, neighbour.pid());
    bool all = leak_sites.size() >= 5;
    const std::string text = d.process->Log();
    for (size_t i = 0; i < hostile.size(); ++i) {
      std::string line;
      all = all && (MarkStops(text, hostile[i].pid(), &line) > 0) == (*kModes[i].stops_with != 0);
    }
    if (all && done == absl::InfiniteFuture()) done = absl::Now() + (absl::Now() - corrupted);
    absl::SleepFor(absl::Milliseconds(250));
  }
  const long peak_kib = testing::StatusKiB(d.process->pid(), "VmHWM");
  const std::string text = d.process->Log();
  EXPECT_EQ(unanswered, 0) << "/healthz did not answer within 1 s";
  EXPECT_LT(slowest, absl::Seconds(1));
  EXPECT_GT(peak_kib, 0);
  EXPECT_LT(peak_kib, kMaxPeakMiB * 1024) << text;

  const nlohmann::json processes = testing::Processes(d.detail_port);
  for (size_t i = 0; i < hostile.size(); ++i) {
    const Mode& m = kModes[i];
    std::string line;
    const int stops = MarkStops(text, hostile[i].pid(), &line);
    if (*m.stops_with != 0) {
      EXPECT_EQ(stops, 1) << m.name << "\n" << text;
      EXPECT_TRUE(absl::StrContains(line, m.stops_with)) << m.name << ": " << line;
    } else {
      EXPECT_EQ(stops, 0) << m.name << ": " << line;
    }
    // Traced on, alive.
    EXPECT_TRUE(testing::ProcessEntry(processes, hostile[i].pid()).has_value()) << m.name;
    EXPECT_EQ(kill(hostile[i].pid(), 0), 0) << m.name;
    printf("[hostile] %s: %s\n", m.name, line.empty() ? "marks go on" : line.c_str());
  }
  // The neighbour's leaks, every one where leakprog blocks (its channel, select, nil-channel,
  // `select {}` and chain patterns at least).
  for (const std::string& f : leak_sites) EXPECT_TRUE(absl::StartsWith(f, "main.leak")) << f;
  EXPECT_GE(leak_sites.size(), 5u) << text;
  printf(
      "[hostile] daemon peak RSS %.1f MiB (bound %ld), slowest /healthz %s, leakprog: %zu "
      "leak sites, all in %.1f s\n",
      peak_kib / 1024.0, kMaxPeakMiB, absl::FormatDuration(slowest).c_str(), leak_sites.size(),
      absl::ToDoubleSeconds(absl::Now() - corrupted));
  EXPECT_EQ(d.process->Stop(absl::Seconds(10)), 0) << text;
}

}  // namespace
}  // namespace ctxagent
