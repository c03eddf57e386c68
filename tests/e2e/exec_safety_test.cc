// Probes planned for one binary never land in another: a traced process exec()s another Go
// binary mid-sampling (under `attach`, and under the daemon with unrelated processes of the second
// binary running), and a traced pid is reused inside a pid namespace. Every process checks its own
// results (execprog exits non-zero on a wrong one, a corrupted instruction crashes it), and its
// text in memory is compared with its file: no byte may differ but an int3 at a probe site planned
// for that very file.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/process_runner.h"
#include "tests/e2e/text_check.h"

namespace ctxagent {
namespace {

namespace fs = std::filesystem;
using testing::Child;
using ::testing::HasSubstr;

constexpr int kTrials = 20;
constexpr int kParallel = 5;
const std::string kFixtures = std::string(CTXAGENT_GO_FIXTURE_DIR) + "/execprog/";

// First binary -> the one it execs: other Go releases, layouts and link modes.
struct Pair {
  std::string from, to;
};
const std::vector<Pair> kPairs = {{"go1.27/default", "go1.22/pie"},
                                  {"go1.19/stripped", "go1.24/default"},
                                  {"go1.24/pie", "go1.27/stripped"},
                                  {"go1.22/default", "go1.19/pie"},
                                  {"go1.21/pieext", "go1.26/stripped"}};

// Runs trial(0..n-1), `kParallel` at a time.
void RunTrials(int n, const std::function<void(int)>& trial) {
  for (int first = 0; first < n; first += kParallel) {
    std::vector<std::thread> batch;
    for (int i = first; i < std::min(n, first + kParallel); ++i) batch.emplace_back(trial, i);
    for (std::thread& t : batch) t.join();
  }
}

void ExpectCleanText(pid_t pid, const std::string& when) {
  absl::StatusOr<std::vector<std::string>> foreign = testing::ForeignTextBytes(pid);
  ASSERT_TRUE(foreign.ok()) << when << ": " << foreign.status();
  EXPECT_TRUE(foreign->empty()) << when << ", pid " << pid << ": foreign bytes in its text:\n"
                                << absl::StrJoin(*foreign, "\n");
}

// A private copy named `name` (the daemon selects by name; a pid reuse trial needs its own file).
std::string Copy(const std::string& from, const std::string& dir, const std::string& name) {
  const std::string to = dir + "/" + name;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms::owner_all);
  return to;
}

std::string TempDirFor(const std::string& what) {
  const std::string dir = ::testing::TempDir() + what + "_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(ExecSafetyTest, AttachStopsWhenItsTargetExecsAnotherBinary) {
  CTXAGENT_REQUIRE_BPF();
  RunTrials(kTrials, [](int i) {
    SCOPED_TRACE(absl::StrCat("trial ", i));
    const Pair& p = kPairs[i % kPairs.size()];
    Child target =
        // The new program lives 4 s: the agent must see the exec before it exits, and a detach
        // can wait seconds for the kernel when the machine is loaded (docs/internals.md).
        Child::Start({kFixtures + p.from, "-exec", kFixtures + p.to, "--", "-for", "4s"});
    ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
    const std::string pid = std::to_string(target.pid());
    // A budget far below the cost of a busy target: short windows, re-attached again and again.
    Child agent = Child::Start({CTXAGENT_BIN, "attach", pid, "-o", "json", "--budget=0.0002",
                                "--refresh=500ms", "--duration=30s"},
                               /*merge_stderr=*/true);
    ASSERT_TRUE(agent.WaitForLine("attached to pid", absl::Seconds(20)));
    absl::SleepFor(absl::Milliseconds(400 + 150 * (i % 5)));
    ExpectCleanText(target.pid(), "before the exec");
    target.Kill(SIGUSR1);
    ASSERT_TRUE(target.WaitForLine("exec", absl::Seconds(5)));
    ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
    ExpectCleanText(target.pid(), "right after the exec");
    const std::string out = agent.ReadAll(absl::Seconds(20));
    EXPECT_EQ(agent.Wait(absl::Seconds(5)), 1) << out;
    EXPECT_THAT(out, HasSubstr("ctxagent attach: pid " + pid + " now runs another binary")) << out;
    ExpectCleanText(target.pid(), "after the agent stopped");
    EXPECT_TRUE(target.WaitForLine("execprog done", absl::Seconds(10)));
    EXPECT_EQ(target.Wait(absl::Seconds(10)), 0) << "target harmed";
  });
}

// The daemon traces every process of the files it selected. A traced process that execs an
// unselected binary is forgotten and that binary never gets a probe, though other processes run
// it; one that execs a selected binary is traced again, with that binary's own plan.
TEST(ExecSafetyTest, DaemonReplansAnExecAndNeverTouchesOtherBinaries) {
  CTXAGENT_REQUIRE_BPF();
  const std::string dir = TempDirFor("ctxagent_exec_daemon");
  std::vector<std::string> firsts, unselected, selected;
  for (size_t k = 0; k < kPairs.size(); ++k) {
    firsts.push_back(Copy(kFixtures + kPairs[k].from, dir, absl::StrCat("execsafe_a", k)));
    unselected.push_back(Copy(kFixtures + kPairs[k].to, dir, absl::StrCat("execsafe_b", k)));
    selected.push_back(Copy(kFixtures + kPairs[k].to, dir, absl::StrCat("execsafe_c", k)));
  }
  testing::DaemonHandle daemon =
      testing::StartDaemon(CTXAGENT_BIN,
                           {"--include=binary:execsafe_a*,binary:execsafe_c*", "--budget=0.0002",
                            "--refresh=500ms", "--rescan=2s"},
                           dir + "/daemon.log");
  ASSERT_GT(daemon.port, 0) << "daemon not ready:\n" << daemon.process->Log();
  // Unrelated processes of every second binary, running throughout.
  std::vector<Child> others;
  for (size_t k = 0; k < kPairs.size(); ++k) {
    for (const std::string& path : {unselected[k], selected[k]}) {
      others.push_back(Child::Start({path, "-workers", "1"}));
      ASSERT_TRUE(others.back().WaitForLine("ready", absl::Seconds(10)));
    }
  }
  const int port = daemon.detail_port;  // /processes is served on the detail port
  RunTrials(kTrials, [&](int i) {
    SCOPED_TRACE(absl::StrCat("trial ", i));
    const size_t k = i % kPairs.size();
    const bool to_selected = i % 2 == 1;
    const std::string& next = to_selected ? selected[k] : unselected[k];
    Child target = Child::Start({firsts[k], "-exec", next, "--", "-for", "2s"});
    ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
    const pid_t pid = target.pid();
    absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (absl::Now() < deadline &&
           !testing::ProcessEntry(testing::Processes(port), pid).has_value()) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(testing::ProcessEntry(testing::Processes(port), pid).has_value())
        << "never traced: " << testing::Processes(port).dump();
    absl::SleepFor(absl::Milliseconds(300 + 150 * (i % 5)));
    ExpectCleanText(pid, "before the exec");
    target.Kill(SIGUSR1);
    ASSERT_TRUE(target.WaitForLine("exec", absl::Seconds(5)));
    ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(10)));
    // Re-identified: forgotten, or traced again as the binary it runs now.
    const std::string want_version = kPairs[k].to.substr(0, kPairs[k].to.find('/'));
    deadline = absl::Now() + absl::Seconds(10);
    bool reidentified = false;
    while (!reidentified && absl::Now() < deadline) {
      std::optional<nlohmann::json> e = testing::ProcessEntry(testing::Processes(port), pid);
      reidentified =
          to_selected ? e.has_value() && absl::StartsWith(e->value("go_version", ""), want_version)
                      : !e.has_value();
      ExpectCleanText(pid, "after the exec");
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(reidentified) << (to_selected ? "not traced as " + want_version : "not forgotten")
                              << ": " << testing::Processes(port).dump();
    ExpectCleanText(others[2 * k].pid(), "unselected process of the second binary");
    ExpectCleanText(others[2 * k + 1].pid(), "selected process of the second binary");
    EXPECT_TRUE(target.WaitForLine("execprog done", absl::Seconds(10)));
    EXPECT_EQ(target.Wait(absl::Seconds(10)), 0) << "target harmed";
  });
  for (Child& c : others) {
    ExpectCleanText(c.pid(), "unrelated process at the end");
    c.Kill(SIGTERM);
    EXPECT_TRUE(c.WaitForLine("execprog done", absl::Seconds(10)));
    EXPECT_EQ(c.Wait(absl::Seconds(10)), 0) << "unrelated process harmed";
  }
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
  fs::remove_all(dir);
}

// The host pid of the process whose executable is `exe` and whose pid in its own namespace is
// `ns_pid`; 0 if none.
pid_t HostPidOf(const std::string& exe, pid_t ns_pid) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    pid_t pid;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::error_code ec;
    if (fs::read_symlink(entry.path() / "exe", ec) != exe || ec) continue;
    std::ifstream status(entry.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (!absl::StartsWith(line, "NSpid:")) continue;
      std::vector<std::string> ids = absl::StrSplit(line.substr(6), '\t', absl::SkipEmpty());
      if (ids.size() >= 2 && ids.back() == std::to_string(ns_pid)) return pid;
    }
  }
  return 0;
}

// Inside a new pid namespace (with its own /proc), where ns_last_pid can choose the next pid: a
// traced target at pid 100 is killed and another program is started as pid 100. The agent (in the
// namespace too) must not attach to it: it reports the target gone.
const std::string kUnshare = "/usr/bin/unshare";  // util-linux, like setpriv
constexpr char kReuseScript[] = R"(
first=$1 second=$2 agent=$3 log=$4
echo 99 > /proc/sys/kernel/ns_last_pid
"$first" >/dev/null & target=$!
[ "$target" = 100 ] || { echo "setup: the target got pid $target"; exit 90; }
"$agent" attach 100 -o json --budget=0.0002 --refresh=300ms --duration=30s >"$log" 2>&1 & agent_pid=$!
for i in $(seq 200); do grep -q "attached to pid" "$log" && break; sleep 0.1; done
grep -q "attached to pid" "$log" || { echo "setup: agent did not attach"; cat "$log"; exit 91; }
sleep 0.$((RANDOM % 6 + 2))
kill -9 $target; wait $target 2>/dev/null
echo 99 > /proc/sys/kernel/ns_last_pid
"$second" -for 4s & reused=$!
[ "$reused" = 100 ] || { echo "setup: the new process got pid $reused"; exit 92; }
wait $agent_pid; echo "agent rc $?" >>"$log"
wait $reused; echo "reused rc $?"
)";

TEST(ExecSafetyTest, PidReusedInAPidNamespaceIsNeverAttached) {
  CTXAGENT_REQUIRE_BPF();
  ASSERT_TRUE(fs::exists(kUnshare)) << kUnshare << " missing (util-linux)";
  const std::string dir = TempDirFor("ctxagent_pid_reuse");
  // Copied before any trial starts: a copy still open for writing when another trial forks would
  // be inherited, and exec'ing it would fail (ETXTBSY).
  std::vector<std::string> firsts, seconds;
  for (int i = 0; i < kTrials; ++i) {
    const Pair& p = kPairs[i % kPairs.size()];
    firsts.push_back(Copy(kFixtures + p.from, dir, absl::StrCat("first", i)));
    // Odd trials: the same file again, which only the start time tells apart.
    seconds.push_back(i % 2 == 1 ? firsts.back()
                                 : Copy(kFixtures + p.to, dir, absl::StrCat("second", i)));
  }
  RunTrials(kTrials, [&](int i) {
    SCOPED_TRACE(absl::StrCat("trial ", i));
    const std::string& first = firsts[i];
    const std::string& second = seconds[i];
    const std::string log = absl::StrCat(dir, "/agent", i, ".log");
    Child ns = Child::Start({kUnshare, "--pid", "--fork", "--mount-proc", "/bin/bash", "-c",
                             kReuseScript, "reuse", first, second, CTXAGENT_BIN, log},
                            /*merge_stderr=*/true);
    auto agent_log = [&] {
      std::ifstream in(log);
      return std::string((std::istreambuf_iterator<char>(in)), {});
    };
    ASSERT_TRUE(ns.WaitForLine("ready", absl::Seconds(30))) << agent_log();
    // The new pid-100 process, seen from here: untouched.
    pid_t host = 0;
    for (int t = 0; t < 50 && host == 0; ++t) {
      host = HostPidOf(second, 100);
      if (host == 0) absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_GT(host, 0);
    // While the agent may still try (it stops when it sees the pid taken), until the process ends.
    int checked = 0;
    for (; checked < 8; ++checked) {
      absl::StatusOr<std::vector<std::string>> foreign = testing::ForeignTextBytes(host);
      if (!foreign.ok()) break;  // it ran its time
      EXPECT_TRUE(foreign->empty()) << "foreign bytes in the text of the process that reused the "
                                       "pid:\n"
                                    << absl::StrJoin(*foreign, "\n");
      absl::SleepFor(absl::Milliseconds(150));
    }
    EXPECT_GE(checked, 2);
    const std::string out = ns.ReadAll(absl::Seconds(30));
    EXPECT_EQ(ns.Wait(absl::Seconds(5)), 0) << out;
    const std::string agent_out = agent_log();
    EXPECT_THAT(agent_out, HasSubstr("agent rc 0")) << out << agent_out;
    EXPECT_THAT(agent_out, HasSubstr("ctxagent: pid 100 exited")) << agent_out;
    EXPECT_THAT(out, HasSubstr("execprog done")) << out;
    EXPECT_THAT(out, HasSubstr("reused rc 0")) << out << agent_out;
  });
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ctxagent
