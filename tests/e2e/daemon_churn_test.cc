// `ctxagent daemon` under process churn: one long-lived Go process, then 200 short-lived Go
// processes (two toolchains, direct and through `sh -c 'exec …'`) mixed with non-Go processes. The
// daemon must stay up, forget every process that exited (exit events, rescans), keep tracing the
// long-lived one, and give back the memory the short-lived ones cost.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

namespace fs = std::filesystem;
using testing::HttpGet;

const std::string kFixtures = std::string(CTXAGENT_GO_FIXTURE_DIR) + "/ctxprog";

// fork+exec with stdin/stdout/stderr on /dev/null.
pid_t Spawn(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Our traced processes (binary names starting with "ctxchurn") listed by /processes.
std::vector<nlohmann::json> Ours(const nlohmann::json& processes) {
  std::vector<nlohmann::json> out;
  if (!processes.is_array()) return out;
  for (const auto& p : processes) {
    if (absl::StartsWith(p.value("binary", ""), "ctxchurn")) out.push_back(p);
  }
  return out;
}

double AttachedTotal(int port) {
  testing::HttpResult m = HttpGet(port, "/metrics");
  double sum = 0;
  for (const auto& s :
       testing::Find(testing::ParseMetrics(m.body), "ctxagent_attached_processes")) {
    sum += s.value;
  }
  return sum;
}

TEST(DaemonChurnTest, ForgetsExitedProcessesAndGivesBackMemory) {
  CTXAGENT_REQUIRE_BPF();
  const absl::Time start = absl::Now();
  const std::string dir =
      ::testing::TempDir() + "/ctxagent_daemon_churn_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  // Copies under names of our own, so that the daemon can be limited to them (other tests' Go
  // programs may run meanwhile) and the not-Go path is taken for a selected binary too.
  const std::map<std::string, std::string> sources = {
      {"ctxchurn_a", kFixtures + "/go1.27/stripped"},  // long-lived and short-lived processes
      {"ctxchurn_b", kFixtures + "/go1.19/default"},   // short-lived only
      {"ctxchurn_c", kFixtures + "/go1.19/stripped"},  // short-lived only
      {"ctxchurn_true", "/bin/true"},                  // not Go
  };
  for (const auto& [name, src] : sources) {
    ASSERT_TRUE(fs::exists(src)) << src << " missing (target go_fixtures)";
    fs::copy_file(src, dir + "/" + name);
    fs::permissions(dir + "/" + name, fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
  }
  const std::string a = dir + "/ctxchurn_a", b = dir + "/ctxchurn_b", c = dir + "/ctxchurn_c";

  // Full tracing (--budget=0): counts and memory are compared exactly.
  testing::DaemonHandle daemon =
      testing::StartDaemon(CTXAGENT_BIN,
                           {"--refresh=1s", "--rescan=3s", "--grace=1s", "--leak_after=2s",
                            "--include=binary:ctxchurn*", "--budget=0"},
                           dir + "/daemon.log");
  ASSERT_GT(daemon.port, 0) << "daemon not ready:\n" << daemon.process->Log();
  const pid_t dpid = daemon.process->pid();

  testing::Child longlived = testing::Child::Start({a, "-loop"});
  ASSERT_TRUE(longlived.WaitForLine("ready", absl::Seconds(10)));
  // Attached (exec event) and evaluated a few times before the baseline is taken.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (
      absl::Now() < deadline &&
      !testing::ProcessEntry(testing::Processes(daemon.detail_port), longlived.pid()).has_value()) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(
      testing::ProcessEntry(testing::Processes(daemon.detail_port), longlived.pid()).has_value())
      << testing::Processes(daemon.detail_port).dump() << "\n"
      << daemon.process->Log();
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(AttachedTotal(daemon.port), 1);
  const long baseline_kib = testing::VmRssKiB(dpid);
  ASSERT_GT(baseline_kib, 0);

  // 200 short-lived Go processes, 4 at a time, interleaved with non-Go ones. Every 10th goes
  // through `sh -c 'exec …'` (seen first as sh, then as the Go program after the exec); every 5th
  // runs 100 rounds (tens of ms) so that some are attached while they run, the rest only 1.
  constexpr int kGo = 200, kParallel = 4;
  const absl::Time churn_start = absl::Now();
  std::set<pid_t> short_pids;
  std::map<pid_t, std::string> running;  // pid -> what
  int go_started = 0, non_go = 0, execs = 0, failures = 0;
  std::string failed;
  long peak_kib = baseline_kib;
  std::set<pid_t> seen_attached;
  auto reap = [&](bool block) {
    while (!running.empty()) {
      int status;
      pid_t p = waitpid(-1, &status, block ? 0 : WNOHANG);
      if (p <= 0) return;
      auto it = running.find(p);
      if (it == running.end()) continue;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ++failures;
        absl::StrAppend(&failed, it->second, " status ", status, "; ");
      }
      running.erase(it);
      if (!block) continue;
      return;
    }
  };
  const std::string go_bins[] = {a, b, c};
  for (int i = 0; i < kGo; ++i) {
    while (static_cast<int>(running.size()) >= kParallel) reap(true);
    const std::string& bin = go_bins[i % 3];
    const std::string rounds = i % 5 == 0 ? "100" : "1";
    pid_t pid;
    if (i % 10 == 3) {
      pid = Spawn({"/bin/sh", "-c", absl::StrCat("exec ", bin, " -n ", rounds)});
      ++execs;
    } else {
      pid = Spawn({bin, "-n", rounds});
    }
    ASSERT_GT(pid, 0);
    running[pid] = absl::StrCat(bin, " -n ", rounds);
    short_pids.insert(pid);
    ++go_started;
    if (i % 2 == 0) {  // non-Go: a selected one (ctxchurn_true) and an unselected one
      pid_t t = Spawn({i % 4 == 0 ? dir + "/ctxchurn_true" : "/bin/true"});
      running[t] = "true";
      short_pids.insert(t);
      ++non_go;
    }
    if (i % 20 == 0) {
      for (const auto& p : Ours(testing::Processes(daemon.detail_port))) {
        if (p["pid"].get<pid_t>() != longlived.pid()) seen_attached.insert(p["pid"].get<pid_t>());
      }
      peak_kib = std::max(peak_kib, testing::VmRssKiB(dpid));
    }
    reap(false);
  }
  while (!running.empty()) reap(true);
  const absl::Duration churn_time = absl::Now() - churn_start;
  EXPECT_EQ(failures, 0) << "short-lived programs failed: " << failed;
  peak_kib = std::max(peak_kib, testing::VmRssKiB(dpid));

  // A couple of refreshes and a rescan later, only the long-lived process is left.
  std::vector<nlohmann::json> ours;
  deadline = absl::Now() + absl::Seconds(15);
  do {
    absl::SleepFor(absl::Seconds(1));
    ours = Ours(testing::Processes(daemon.detail_port));
  } while (absl::Now() < deadline && !(ours.size() == 1 && AttachedTotal(daemon.port) == 1));
  ASSERT_TRUE(daemon.process->Running()) << daemon.process->Log();
  EXPECT_EQ(HttpGet(daemon.port, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(daemon.port, "/readyz").status, 200);
  ASSERT_EQ(ours.size(), 1u) << nlohmann::json(ours).dump();
  EXPECT_EQ(ours[0]["pid"].get<pid_t>(), longlived.pid());
  for (const auto& p : ours) EXPECT_FALSE(short_pids.count(p["pid"].get<pid_t>())) << p.dump();
  EXPECT_EQ(AttachedTotal(daemon.port), 1);
  testing::HttpResult m = HttpGet(daemon.port, "/metrics");
  std::vector<testing::Sample> samples = testing::ParseMetrics(m.body);
  auto attached = testing::Find(samples, "ctxagent_attached_processes", {{"binary", "ctxchurn_a"}});
  ASSERT_EQ(attached.size(), 1u) << m.body;
  EXPECT_EQ(attached[0].value, 1);
  // The long-lived process is still traced: its contexts keep being counted.
  auto created = [&] {
    double n = 0;
    for (const auto& s :
         testing::Find(testing::ParseMetrics(HttpGet(daemon.port, "/metrics").body),
                       "ctxagent_contexts_created_total", {{"binary", "ctxchurn_a"}})) {
      n += s.value;
    }
    return n;
  };
  const double before = created();
  absl::SleepFor(absl::Seconds(2));
  EXPECT_GT(created(), before) << "the long-lived process is no longer traced";

  // Some short-lived processes were traced while they ran (their contexts were counted).
  double short_contexts = 0;
  for (const char* name : {"ctxchurn_b", "ctxchurn_c"}) {
    for (const auto& s :
         testing::Find(samples, "ctxagent_contexts_created_total", {{"binary", name}})) {
      short_contexts += s.value;
    }
  }
  const long after_kib = testing::VmRssKiB(dpid);
  fprintf(
      stderr,
      "churn: %d Go processes (%d via sh -c exec), %d non-Go, %d short-lived seen in /processes "
      "snapshots, %.0f contexts counted from go1.19 short-lived ones, churn took %.1fs\n"
      "daemon VmRSS: baseline %ld KiB, peak sampled %ld KiB, after %ld KiB (%+ld KiB)\n",
      go_started, execs, non_go, static_cast<int>(seen_attached.size()), short_contexts,
      absl::ToDoubleSeconds(churn_time), baseline_kib, peak_kib, after_kib,
      after_kib - baseline_kib);
  EXPECT_LE(after_kib, baseline_kib + 8 * 1024) << "daemon memory did not come back";
  EXPECT_GT(short_contexts, 0) << "no short-lived go1.19 process was counted\n" << m.body;

  // Binaries whose processes all came and went are still traceable: a new process of each is
  // attached (a process that vanished mid-attach must not get its binary written off as not Go).
  for (const std::string& bin : {b, c}) {
    testing::Child again = testing::Child::Start({bin, "-loop"});
    ASSERT_TRUE(again.WaitForLine("ready", absl::Seconds(10)));
    deadline = absl::Now() + absl::Seconds(10);
    while (
        absl::Now() < deadline &&
        !testing::ProcessEntry(testing::Processes(daemon.detail_port), again.pid()).has_value()) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(
        testing::ProcessEntry(testing::Processes(daemon.detail_port), again.pid()).has_value())
        << bin << " is no longer traced after the churn\n"
        << daemon.process->Log();
    again.Kill(SIGTERM);
    EXPECT_EQ(again.Wait(absl::Seconds(10)), 0);
  }

  // The long-lived target was not harmed, and the daemon stops cleanly.
  longlived.Kill(SIGTERM);
  EXPECT_TRUE(longlived.WaitForLine("ctxprog done", absl::Seconds(10)));
  EXPECT_EQ(longlived.Wait(absl::Seconds(10)), 0);
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
  fprintf(stderr, "test took %.1fs\n", absl::ToDoubleSeconds(absl::Now() - start));
  fprintf(stderr, "daemon log:\n%s", daemon.process->Log().c_str());
  fs::remove_all(dir);
}

double CounterSum(int port, const std::string& name, const std::string& binary) {
  double n = 0;
  for (const auto& s : testing::Find(testing::ParseMetrics(HttpGet(port, "/metrics").body), name,
                                     {{"binary", binary}})) {
    n += s.value;
  }
  return n;
}

// Processes that exit between two refreshes still count in the context counters (they used to be
// forgotten on exit before their counts were exported).
TEST(DaemonChurnTest, ProcessesShorterThanARefreshAreCounted) {
  CTXAGENT_REQUIRE_BPF();
  const std::string dir =
      ::testing::TempDir() + "/ctxagent_daemon_short_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = dir + "/ctxshort_b";
  fs::copy_file(kFixtures + "/go1.19/default", bin);
  fs::permissions(bin, fs::perms::owner_all);
  // Full tracing (--budget=0): every short process must be counted.
  testing::DaemonHandle daemon = testing::StartDaemon(
      CTXAGENT_BIN, {"--refresh=1s", "--include=binary:ctxshort*", "--budget=0"},
      dir + "/daemon.log");
  ASSERT_GT(daemon.port, 0) << "daemon not ready:\n" << daemon.process->Log();
  // An anchor process keeps the binary attached: one round, then it sleeps.
  testing::Child anchor = testing::Child::Start({bin, "-loop", "-n", "1", "-sleep", "1h"});
  ASSERT_TRUE(anchor.WaitForLine("ready", absl::Seconds(10)));
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline &&
         !testing::ProcessEntry(testing::Processes(daemon.detail_port), anchor.pid()).has_value()) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(
      testing::ProcessEntry(testing::Processes(daemon.detail_port), anchor.pid()).has_value());
  absl::SleepFor(absl::Milliseconds(2500));
  const double created0 = CounterSum(daemon.port, "ctxagent_contexts_created_total", "ctxshort_b");
  const double cancelled0 =
      CounterSum(daemon.port, "ctxagent_contexts_cancelled_total", "ctxshort_b");
  // 5 runs of 20 rounds, each over in a few ms; a go1.19 round makes 2 cancel and 2 timer contexts
  // and cancels all four (three by their own cancel, one by its deadline).
  constexpr int kRuns = 5, kRounds = 20, kPerRound = 4;
  for (int i = 0; i < kRuns; ++i) {
    testing::Child c = testing::Child::Start({bin, "-n", std::to_string(kRounds)});
    ASSERT_EQ(c.Wait(absl::Seconds(10)), 0);
  }
  absl::SleepFor(absl::Milliseconds(2500));
  // None lost. (At least: the anchor's own first round may race its attach and add a late count.)
  const double created =
      CounterSum(daemon.port, "ctxagent_contexts_created_total", "ctxshort_b") - created0;
  const double cancelled =
      CounterSum(daemon.port, "ctxagent_contexts_cancelled_total", "ctxshort_b") - cancelled0;
  fprintf(stderr,
          "short-lived processes: %.0f contexts created and %.0f cancelled counted, %d made\n",
          created, cancelled, kRuns * kRounds * kPerRound);
  EXPECT_GE(created, kRuns * kRounds * kPerRound) << HttpGet(daemon.port, "/metrics").body;
  EXPECT_GE(cancelled, kRuns * kRounds * kPerRound) << HttpGet(daemon.port, "/metrics").body;
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ctxagent
