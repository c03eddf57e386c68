// What ctxagent reads from a Go program's memory about its goroutines equals the runtime's own
// view: pprofprog parks goroutines in many ways before the attach and more after it (SIGUSR1); the
// agent's wait reasons and `go` sites must equal net/http/pprof's goroutine?debug=2 dump, same
// goids, on every toolchain (stripped binaries: offsets from the table, allgs found in code).
#include <signal.h>

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"
#include "tests/e2e/toolchains.h"

namespace ctxagent {
namespace {

std::string Base(const std::string& path) { return path.substr(path.rfind('/') + 1); }

struct Dumped {
  std::string state;    // between the brackets, without ", N minutes" and the like
  std::string created;  // "created by" function ("" for the main goroutine)
  std::string go_site;  // "main.go:43"
};

// goroutine?debug=2: "goroutine 7 [chan receive, 2 minutes]:", frames, "created by F[ in goroutine
// N]" and its "\tfile:line +0x..." line.
std::map<uint64_t, Dumped> ParseDump(const std::string& dump) {
  std::map<uint64_t, Dumped> out;
  static const std::regex kHeader(R"(^goroutine (\d+) \[([^\]]*)\]:)");
  static const std::regex kSite(R"(^\t(.*):(\d+)( |$))");
  uint64_t current = 0;
  bool expect_site = false;
  for (absl::string_view line : absl::StrSplit(dump, '\n')) {
    std::string l(line);
    std::smatch m;
    if (std::regex_search(l, m, kHeader)) {
      current = std::stoull(m[1]);
      std::string state = m[2];
      state = state.substr(0, state.find(", "));
      out[current].state = state;
      continue;
    }
    if (absl::StartsWith(l, "created by ")) {
      std::string fn = l.substr(11);
      out[current].created = fn.substr(0, fn.find(" in goroutine"));
      expect_site = true;
      continue;
    }
    if (expect_site && std::regex_search(l, m, kSite)) {
      out[current].go_site = absl::StrCat(Base(m[1]), ":", std::string(m[2]));
      expect_site = false;
    }
  }
  return out;
}

bool Transient(const std::string& state) {
  return state == "running" || state == "runnable" || state == "syscall";
}

// The pprof request's own goroutines (its connection) start after the agent's last read.
bool ServesThePprofRequest(const Dumped& d) {
  return absl::StartsWith(d.created, "net/http.(*conn") ||
         absl::StartsWith(d.created, "net/http.(*Server).Serve") ||
         absl::StartsWith(d.created, "net/http.(*connReader)");
}

class GoroutineStateTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoroutineStateTest, WaitReasonsAndGoSitesEqualThePprofDump) {
  CTXAGENT_REQUIRE_BPF();
  const std::string bin = absl::StrCat(CTXAGENT_PPROFPROG, "/go", GetParam(), "/pprofprog");
  const int port = testing::FreeLoopbackPort();
  testing::Child prog = testing::Child::Start({bin, "-addr", absl::StrCat("127.0.0.1:", port)});
  ASSERT_TRUE(prog.WaitForLine("ready", absl::Seconds(20)));
  // Default budget: sampling on, as a user runs it.
  testing::Child agent = testing::Child::Start({CTXAGENT_BIN, "attach", std::to_string(prog.pid()),
                                                "-o", "json", "--duration=5s", "--refresh=500ms"});
  absl::SleepFor(absl::Seconds(2));
  prog.Kill(SIGUSR1);  // goroutines made while attached
  ASSERT_TRUE(prog.WaitForLine("spawned", absl::Seconds(10)));
  const std::string raw = agent.ReadAll(absl::Seconds(60));
  ASSERT_EQ(agent.Wait(absl::Seconds(10)), 0) << raw;
  nlohmann::json goroutines;
  for (absl::string_view line : absl::StrSplit(raw, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("type", "") == "goroutines") goroutines = j["goroutines"];
  }
  ASSERT_TRUE(goroutines.is_array()) << raw;
  const testing::HttpResult dump = testing::HttpGet(port, "/debug/pprof/goroutine?debug=2");
  ASSERT_EQ(dump.status, 200);
  const std::map<uint64_t, Dumped> runtime_view = ParseDump(dump.body);
  ASSERT_GE(runtime_view.size(), 40u) << dump.body;

  std::map<uint64_t, nlohmann::json> agent_view;
  for (const auto& g : goroutines) agent_view[g["goid"].get<uint64_t>()] = g;
  int compared = 0, before_attach = 0, with_age = 0;
  for (const auto& [goid, d] : runtime_view) {
    if (Transient(d.state) || ServesThePprofRequest(d)) continue;
    auto it = agent_view.find(goid);
    ASSERT_NE(it, agent_view.end()) << "goroutine " << goid << " [" << d.state << "] missing\n"
                                    << dump.body;
    const nlohmann::json& g = it->second;
    EXPECT_EQ(g.value("wait_reason", ""), d.state) << "goroutine " << goid;
    if (!d.go_site.empty()) {
      EXPECT_EQ(absl::StrCat(Base(g["go_site"]["file"].get<std::string>()), ":",
                             g["go_site"]["line"].get<int>()),
                d.go_site)
          << "goroutine " << goid;
      EXPECT_EQ(g["go_site"]["function"].get<std::string>(), d.created) << "goroutine " << goid;
    }
    ++compared;
    if (g.value("before_attach", false)) ++before_attach;
    if (g.contains("waiting_s")) ++with_age;
  }
  // Nothing parked that the runtime does not list.
  for (const auto& [goid, g] : agent_view) {
    const std::string state = g.value("wait_reason", "");
    if (Transient(state)) continue;
    EXPECT_TRUE(runtime_view.count(goid) > 0) << "goroutine " << goid << " [" << state << "]";
  }
  // 3 rounds before the attach and 2 after, 9 goroutines each, plus main, select{}, the listener.
  EXPECT_GE(compared, 45) << raw;
  EXPECT_GE(before_attach, 27) << "goroutines made before the attach come from memory";
  EXPECT_GE(with_age, 27) << "the program ran a GC after parking them: waitsince is set";
  printf("[goroutines] go%s: %d goroutines equal to the pprof dump, %d from before the attach\n",
         GetParam().c_str(), compared, before_attach);
  prog.Kill(SIGKILL);
  prog.Wait(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Toolchains, GoroutineStateTest, ::testing::ValuesIn(testing::GoVersions()),
                         testing::ToolchainTestName);

}  // namespace
}  // namespace ctxagent
