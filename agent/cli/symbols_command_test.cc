// `ctxagent symbols` end to end: the CLI binary on every fixture, checked against the toolchain's
// own `go tool nm` of the unstripped twin.
#include "agent/cli/symbols_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "symbols/test_fixtures.h"

namespace ctxagent {
namespace {

using symbols::testing::AllFixtures;
using symbols::testing::RunCommand;

struct Result {
  int exit_code;
  std::string out;
};

Result RunShell(const std::string& command) {
  std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

Result RunCtxagent(const std::string& args) {
  return RunShell(std::string(CTXAGENT_BIN) + " " + args);
}

absl::flat_hash_map<std::string, uint64_t> GoToolNm(const symbols::testing::Fixture& f,
                                                    const std::string& twin) {
  absl::flat_hash_map<std::string, uint64_t> out;
  std::string nm = RunCommand("GOTOOLCHAIN=local " + f.go_tool + " tool nm " + twin);
  for (absl::string_view line : absl::StrSplit(nm, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t addr;
    if (cols.size() >= 3 && absl::SimpleHexAtoi(cols[0], &addr)) out[std::string(cols[2])] = addr;
  }
  return out;
}

TEST(SymbolsCommandTest, ResolveTarget) {
  EXPECT_EQ(ResolveTarget("1234"), "/proc/1234/exe");
  EXPECT_EQ(ResolveTarget("./svc"), "./svc");
  EXPECT_EQ(ResolveTarget("12a"), "12a");
}

TEST(SymbolsCommandTest, JsonMatchesGoToolNmOnEveryFixture) {
  for (const auto& f : AllFixtures("ctxprog")) {
    SCOPED_TRACE(f.path);
    Result r = RunCtxagent("symbols " + f.path + " -o json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["go_version"].get<std::string>().rfind("go" + f.go_version, 0), 0u);
    EXPECT_EQ(j["stripped"].get<bool>(), f.variant == "stripped");
    EXPECT_EQ(j["pie"].get<bool>(), f.variant == "pie" || f.variant == "pieext");
    EXPECT_EQ(j["offsets_source"].get<std::string>(), "table");  // verified (go_offsets_test)
    std::string twin =
        f.variant == "stripped" ? f.path.substr(0, f.path.rfind('/')) + "/default" : f.path;
    auto nm = GoToolNm(f, twin);
    ASSERT_GE(j["functions"].size(), 4u);
    std::map<std::string, std::pair<uint64_t, uint64_t>> bounds;  // name -> [address, end)
    for (const auto& fn : j["functions"]) {
      std::string name = fn["name"];
      ASSERT_TRUE(nm.contains(name)) << name;
      EXPECT_EQ(fn["address"].get<uint64_t>(), nm[name]) << name;
      bounds[name] = {fn["address"], fn["address"].get<uint64_t>() + fn["size"].get<uint64_t>()};
    }
    bool handoff = false;
    for (const auto& p : j["probes"]) {
      std::string name = p["function"];
      uint64_t addr = p["address"];
      EXPECT_EQ(p["bytes"].get<std::string>().size() % 2, 0u);
      EXPECT_FALSE(p["bytes"].get<std::string>().empty()) << name;
      if (p["site"] == "handoff") {
        // Goroutine creation is read where newproc.func1 hands the new g to runqput (emulated).
        handoff = true;
        ASSERT_TRUE(nm.contains("runtime.newproc.func1"));
        EXPECT_GT(addr, nm["runtime.newproc.func1"]);
        EXPECT_LT(addr, nm["runtime.newproc.func1"] + 512);
        EXPECT_TRUE(p["emulated"].get<bool>());
        continue;
      }
      ASSERT_EQ(bounds.count(name), 1u) << name << " probed but not a hooked function";
      EXPECT_GE(addr, bounds[name].first) << name;
      EXPECT_LT(addr, bounds[name].second) << name;
    }
    EXPECT_TRUE(handoff);
  }
}

TEST(SymbolsCommandTest, TextShowsThePlan) {
  auto fixtures = AllFixtures("ctxprog");
  ASSERT_FALSE(fixtures.empty());
  Result r = RunCtxagent("symbols " + fixtures.back().path);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("context.(*cancelCtx).propagateCancel"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("(emulated)"));
  // Every constructor with how it is seen; the last fixture is a 1.21+ one.
  EXPECT_THAT(r.out, ::testing::ContainsRegex(
                         "context.WithCancel +yes +propagateCancel probe: a cancelCtx +"
                         "WithCancel.func1 at 0x[0-9a-f]+\n"));
  EXPECT_THAT(r.out,
              ::testing::ContainsRegex("context.WithDeadlineCause .* WithDeadlineCause.func1 "
                                       "at 0x[0-9a-f]+, WithDeadlineCause.func3 at "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(
                         "context.WithoutCancel +(yes|inlined) +read in parent chains"));
}

TEST(SymbolsCommandTest, BadInputIsOneLineAndNonZero) {
  for (const std::string& target : {std::string("/bin/true"), std::string("/nonexistent"),
                                    std::string("/etc/hostname"), std::string("999999999")}) {
    Result r = RunCtxagent("symbols " + target);
    EXPECT_NE(r.exit_code, 0) << target;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_THAT(r.out, ::testing::StartsWith("ctxagent symbols: ")) << r.out;
  }
  Result r = RunCtxagent("symbols /bin/true -o yaml");
  EXPECT_EQ(r.exit_code, 2);
}

// Opening a FIFO waits for a writer unless the type is checked without blocking.
TEST(SymbolsCommandTest, FifoIsRefusedNotWaitedOn) {
  const std::string fifo = ::testing::TempDir() + "ctxagent_symbols_fifo";
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << strerror(errno);
  Result r = RunShell("timeout 10 " CTXAGENT_BIN " symbols " + fifo);
  unlink(fifo.c_str());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(r.out, "ctxagent symbols: " + fifo + ": not a regular file\n");
}

}  // namespace
}  // namespace ctxagent
