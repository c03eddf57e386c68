// The least-privilege capability set of deploy/README.md is sufficient and each of its members is
// necessary: `ctxagent daemon` running as user nobody with exactly CAP_BPF, CAP_PERFMON,
// CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (set with util-linux setpriv: inheritable,
// ambient and bounding sets) attaches to a root-owned Go program and reports its leak; with any one
// of them missing it refuses to start, exits non-zero and names the missing capability.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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

struct Cap {
  const char* setpriv_name;
  const char* name;
  int bit;
};
// deploy/README.md, "Capabilities".
const std::vector<Cap> kDocumented = {
    {"bpf", "CAP_BPF", 39},
    {"perfmon", "CAP_PERFMON", 38},
    {"sys_admin", "CAP_SYS_ADMIN", 21},
    {"sys_ptrace", "CAP_SYS_PTRACE", 19},
    {"dac_read_search", "CAP_DAC_READ_SEARCH", 2},
};
constexpr int kNobody = 65534;

// setpriv arguments: user nobody, no supplementary groups, and exactly `caps` (all but `skip`) in
// the inheritable, ambient and bounding sets, so that they are the daemon's effective set after
// exec.
std::vector<std::string> SetprivAs(const char* skip) {
  std::string list = "-all";
  for (const Cap& c : kDocumented) {
    if (skip == nullptr || std::string(c.name) != skip)
      absl::StrAppend(&list, ",+", c.setpriv_name);
  }
  return {CTXAGENT_SETPRIV,
          absl::StrCat("--reuid=", kNobody),
          absl::StrCat("--regid=", kNobody),
          "--clear-groups",
          "--inh-caps=" + list,
          "--ambient-caps=" + list,
          "--bounding-set=" + list};
}

std::string StatusField(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, field + ":")) return std::string(absl::StripAsciiWhitespace(v));
  }
  return "";
}

std::string TempDirFor(const std::string& what) {
  const std::string dir =
      ::testing::TempDir() + "/ctxagent_daemon_caps_" + what + "_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(DaemonCapsTest, DocumentedCapabilitySetSufficesAsNobody) {
  CTXAGENT_REQUIRE_BPF();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(fs::exists(CTXAGENT_SETPRIV)) << CTXAGENT_SETPRIV << " missing (util-linux)";
  const std::string target_bin = std::string(CTXAGENT_SCENARIO_BIN) + "/go1.27/orphaned_done";
  ASSERT_TRUE(fs::exists(target_bin)) << target_bin << " not built (scenario_binaries)";
  const std::string dir = TempDirFor("ok");

  testing::DaemonHandle daemon =
      testing::StartDaemon(CTXAGENT_BIN,
                           {"--refresh=1s", "--grace=1s", "--leak_after=2s", "--min_count=3",
                            "--include=binary:orphaned_done"},
                           dir + "/daemon.log", SetprivAs(nullptr));
  ASSERT_GT(daemon.port, 0) << "daemon not ready as nobody with the documented capabilities:\n"
                            << daemon.process->Log();
  const pid_t dpid = daemon.process->pid();
  // It really runs as nobody with exactly the documented set.
  uint64_t want = 0;
  for (const Cap& c : kDocumented) want |= uint64_t{1} << c.bit;
  uint64_t eff = 0, prm = 0;
  ASSERT_TRUE(absl::SimpleHexAtoi(StatusField(dpid, "CapEff"), &eff));
  ASSERT_TRUE(absl::SimpleHexAtoi(StatusField(dpid, "CapPrm"), &prm));
  EXPECT_EQ(eff, want) << StatusField(dpid, "CapEff");
  EXPECT_EQ(prm, want) << StatusField(dpid, "CapPrm");
  EXPECT_TRUE(absl::StartsWith(StatusField(dpid, "Uid"), "65534\t65534\t65534\t65534"))
      << StatusField(dpid, "Uid");
  EXPECT_TRUE(absl::StartsWith(StatusField(dpid, "Gid"), "65534\t65534\t65534\t65534"))
      << StatusField(dpid, "Gid");
  EXPECT_EQ(StatusField(dpid, "Groups"), "");

  // A root-owned Go program with a leak, started after the daemon (found by its exec event).
  testing::Child target = testing::Child::Start({target_bin});
  ASSERT_TRUE(target.WaitForLine("ready pid=", absl::Seconds(10)));
  ASSERT_EQ(StatusField(target.pid(), "Uid").substr(0, 1), "0");

  std::optional<nlohmann::json> entry;
  const absl::Time deadline = absl::Now() + absl::Seconds(40);
  while (absl::Now() < deadline) {
    entry = testing::ProcessEntry(testing::Processes(daemon.detail_port), target.pid());
    if (entry && (*entry)["findings"].get<int>() > 0) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  ASSERT_TRUE(entry.has_value()) << "the daemon did not attach to pid " << target.pid() << ":\n"
                                 << daemon.process->Log();
  EXPECT_GT((*entry)["findings"].get<int>(), 0) << entry->dump();
  EXPECT_GT((*entry)["contexts_live"].get<int>(), 0) << entry->dump();
  testing::HttpResult f =
      HttpGet(daemon.detail_port, absl::StrCat("/processes/", target.pid(), "/findings"));
  ASSERT_EQ(f.status, 200);
  auto findings = nlohmann::json::parse(f.body, nullptr, false);
  ASSERT_TRUE(findings.is_array()) << f.body;
  std::set<std::string> kinds;
  for (const auto& x : findings) kinds.insert(x.value("kind", ""));
  EXPECT_TRUE(kinds.count("orphaned_done")) << f.body;
  // Reading the target's memory worked: the findings name the Go source site.
  EXPECT_TRUE(absl::StrContains(f.body, "orphaned_done/main.go")) << f.body;
  testing::HttpResult m = HttpGet(daemon.port, "/metrics");
  EXPECT_FALSE(testing::Find(testing::ParseMetrics(m.body), "ctxagent_findings",
                             {{"binary", "orphaned_done"}, {"kind", "orphaned_done"}})
                   .empty())
      << m.body;

  target.Kill(SIGKILL);
  target.Wait(absl::Seconds(5));
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
  // The finding was logged once, as an SRE reads it in `kubectl logs`.
  const std::string log = daemon.process->Log();
  const std::string logged = absl::StrCat("ctxagent daemon: finding: pid ", target.pid(),
                                          " (orphaned_done): orphaned_done: ");
  EXPECT_TRUE(absl::StrContains(log, logged)) << log;
  EXPECT_EQ(log.find(logged), log.rfind(logged)) << log;
  // Nothing was refused on the way (EPERM, cannot attach, skipped pids).
  EXPECT_FALSE(absl::StrContains(log, "ermission")) << log;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StartsWith(line, "ctxagent daemon: finding: ")) continue;
    EXPECT_FALSE(absl::StrContains(line, "pid ")) << log;
  }
  fprintf(stderr, "test took %.1fs\n", absl::ToDoubleSeconds(absl::Now() - start));
  fs::remove_all(dir);
}

TEST(DaemonCapsTest, EachDocumentedCapabilityIsRequired) {
  CTXAGENT_REQUIRE_BPF();
  ASSERT_TRUE(fs::exists(CTXAGENT_SETPRIV)) << CTXAGENT_SETPRIV << " missing (util-linux)";
  const std::string dir = TempDirFor("missing");
  for (const Cap& missing : kDocumented) {
    SCOPED_TRACE(missing.name);
    std::vector<std::string> argv = SetprivAs(missing.name);
    argv.push_back(CTXAGENT_BIN);
    argv.push_back("daemon");
    argv.push_back(absl::StrCat("--listen=127.0.0.1:", testing::FreeLoopbackPort()));
    auto daemon = testing::LoggedProcess::Start(argv, dir + "/" + missing.setpriv_name + ".log");
    const int rc = daemon->Wait(absl::Seconds(15));
    const std::string log = daemon->Log();
    EXPECT_NE(rc, -1) << "still running without " << missing.name << ":\n" << log;
    EXPECT_NE(rc, 0) << log;
    EXPECT_TRUE(absl::StrContains(log, "missing capabilities")) << log;
    EXPECT_TRUE(absl::StrContains(log, missing.name)) << log;
    // Only the missing one is named.
    for (const Cap& other : kDocumented) {
      if (&other != &missing) {
        EXPECT_FALSE(absl::StrContains(log, other.name)) << log;
      }
    }
    EXPECT_LE(std::count(log.begin(), log.end(), '\n'), 1) << "expected one line:\n" << log;
    fprintf(stderr, "without %s: exit %d: %s", missing.name, rc, log.c_str());
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ctxagent
