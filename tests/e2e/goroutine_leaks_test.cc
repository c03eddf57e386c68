// The goroutines ctxagent proves leaked by marking a running program's heap from outside equal
// the Go runtime's own goroutineleak profile of the same process (Go 1.27, a GC-based mark inside
// the runtime): leakprog (tests/goroutines/leakprog) leaks goroutines on channels, selects, nil
// channels, `select {}`, chains, mutexes, RWMutexes, WaitGroups and Conds, beside healthy
// goroutines parked on things that can still wake them. Every toolchain, stripped binaries.
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"
#include "tests/e2e/toolchains.h"

namespace ctxagent {
namespace {

struct AgentView {
  std::set<uint64_t> leaked;                   // every goroutine proven leaked
  std::map<uint64_t, std::string> created_by;  // goid -> function of its `go` statement
  std::vector<nlohmann::json> leak_findings;   // kind goroutine_leak
  nlohmann::json summary;
};

AgentView ParseAgent(const std::string& raw) {
  AgentView v;
  for (absl::string_view line : absl::StrSplit(raw, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    const std::string type = j.value("type", "");
    if (type == "finding" && j.value("kind", "") == "goroutine_leak") v.leak_findings.push_back(j);
    if (type == "goroutines") {
      for (const auto& g : j["goroutines"]) {
        if (g.contains("go_site")) {
          v.created_by[g["goid"].get<uint64_t>()] = g["go_site"]["function"].get<std::string>();
        }
      }
    }
    if (type == "summary") {
      v.summary = j;
      for (const auto& goid : j["heap_marks"]["leaked_goids"])
        v.leaked.insert(goid.get<uint64_t>());
    }
  }
  return v;
}

// goroutineleak?debug=2 lists every goroutine, "(leaked)" in the brackets of those it proved.
void ParseProfile(const std::string& dump, std::set<uint64_t>* leaked, std::set<uint64_t>* live) {
  static const std::regex kHeader(R"(^goroutine (\d+) \[([^\]]*)\]:)");
  for (absl::string_view line : absl::StrSplit(dump, '\n')) {
    std::string l(line);
    std::smatch m;
    if (!std::regex_search(l, m, kHeader)) continue;
    const uint64_t goid = std::stoull(m[1]);
    (absl::StrContains(std::string(m[2]), "(leaked)") ? leaked : live)->insert(goid);
  }
}

// The `go` statements whose goroutines leak, by the function that holds them.
std::set<std::string> ExpectedLeakers() {
  // Before 1.26, mutexes and WaitGroups are found in the semaphore table and a Cond's waiters on
  // its notify list (heap/sema.h): the same sites on every release.
  return {"main.leakSend",        "main.leakReceive",       "main.leakSelect",
          "main.leakNilChannel",  "main.leakSelectForever", "main.leakChain",
          "main.leakAfterCancel", "main.leakRWMutex",       "main.leakWaitGroup",
          "main.leakCond"};
}

class GoroutineLeakTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoroutineLeakTest, ProvenLeaksEqualTheRuntimesLeakProfile) {
  CTXAGENT_REQUIRE_BPF();
  const std::string version = GetParam();
  const int minor = std::stoi(version.substr(version.find('.') + 1));
  const std::string bin = absl::StrCat(CTXAGENT_LEAKPROG, "/go", version, "/leakprog");
  const int port = testing::FreeLoopbackPort();
  // Five per pattern. Heap objects are scanned precisely from 1.22: scanned conservatively, a
  // stale uintptr in a P (Green Tea's queue of object pointers) kept a leakCond's Cond alive, and
  // with it the tiny block its Mutex shares with a leakMutex's Mutex: 2 of 65 missed.
  testing::Child prog =
      testing::Child::Start({bin, "-addr", absl::StrCat("127.0.0.1:", port), "-n", "5"});
  ASSERT_TRUE(prog.WaitForLine("ready", absl::Seconds(20)));
  testing::Child agent =
      testing::Child::Start({CTXAGENT_BIN, "attach", std::to_string(prog.pid()), "-o", "json",
                             "--duration=10s", "--refresh=500ms", "--mark_every=2s",
                             // Marks unpaced: this compares verdicts, not their cost.
                             "--budget=0"});
  const std::string raw = agent.ReadAll(absl::Seconds(60));
  ASSERT_EQ(agent.Wait(absl::Seconds(10)), 0) << raw;
  const AgentView v = ParseAgent(raw);
  ASSERT_TRUE(v.summary.is_object()) << raw;
  ASSERT_GE(v.summary["heap_marks"]["count"].get<int>(), 2) << raw;
  EXPECT_EQ(v.summary["heap_marks"]["stopped"].get<std::string>(), "") << raw;

  // Which `go` statements leaked: exactly the leak* ones, never a healthy one.
  std::set<std::string> leakers;
  for (uint64_t goid : v.leaked) {
    auto it = v.created_by.find(goid);
    ASSERT_NE(it, v.created_by.end()) << "goroutine " << goid << " proven leaked but not listed";
    leakers.insert(it->second);
  }
  // Before 1.22 heap objects are scanned conservatively: a leakMutex's tiny Mutex may share a
  // block with what a stale word keeps alive (from 1.22 the objects' pointer bits and type
  // headers say which words are pointers, as the runtime reads them).
  std::set<std::string> expected = ExpectedLeakers();
  if (minor < 22) leakers.insert("main.leakMutex");
  expected.insert("main.leakMutex");
  EXPECT_EQ(leakers, expected) << raw;

  // Each goroutine_leak finding names the line its goroutines block on.
  for (const auto& f : v.leak_findings) {
    EXPECT_TRUE(absl::StartsWith(f["site"]["function"].get<std::string>(), "main.leak")) << f;
    EXPECT_FALSE(f.value("wait_reason", "").empty()) << f;
    EXPECT_TRUE(absl::StrContains(f["explanation"].get<std::string>(), "nothing can ever wake"));
  }
  EXPECT_FALSE(v.leak_findings.empty()) << raw;

  if (minor >= 27) {
    const testing::HttpResult dump = testing::HttpGet(port, "/debug/pprof/goroutineleak?debug=2");
    ASSERT_EQ(dump.status, 200);
    std::set<uint64_t> runtime_leaked, runtime_live;
    ParseProfile(dump.body, &runtime_leaked, &runtime_live);
    ASSERT_GE(runtime_leaked.size(), 50u) << dump.body;
    int agreed = 0;
    for (uint64_t goid : v.leaked) {
      EXPECT_EQ(runtime_live.count(goid), 0u) << "goroutine " << goid << " is live per the runtime";
      agreed += runtime_leaked.count(goid);
    }
    std::string missed;
    for (uint64_t goid : runtime_leaked) {
      if (v.leaked.count(goid) == 0) {
        auto it = v.created_by.find(goid);
        absl::StrAppend(&missed, " ", goid, " (", it == v.created_by.end() ? "?" : it->second, ")");
      }
    }
    EXPECT_GE(agreed * 100, static_cast<int>(runtime_leaked.size()) * 95)
        << agreed << " of the runtime's " << runtime_leaked.size() << "; missed:" << missed << "\n"
        << raw;
    printf("[leaks] go%s: %zu proven leaked, %d of the runtime's %zu, none it calls live\n",
           version.c_str(), v.leaked.size(), agreed, runtime_leaked.size());
  } else {
    printf("[leaks] go%s: %zu proven leaked from %zu go statements\n", version.c_str(),
           v.leaked.size(), leakers.size());
  }
  prog.Kill(SIGKILL);
  prog.Wait(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Toolchains, GoroutineLeakTest, ::testing::ValuesIn(testing::GoVersions()),
                         testing::ToolchainTestName);

}  // namespace
}  // namespace ctxagent
