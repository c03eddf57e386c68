// `ctxagent symbols` end to end: the CLI binary on every fixture, checked against the toolchain's
// own `go tool nm` of the unstripped twin.
#include "agent/cli/symbols_command.h"

#include <cstdio>
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

Result RunCtxagent(const std::string& args) {
  std::string cmd = std::string(CTXAGENT_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
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
    EXPECT_EQ(j["offsets_source"].get<std::string>(), f.variant == "stripped" ? "table" : "dwarf");
    std::string twin =
        f.variant == "stripped" ? f.path.substr(0, f.path.rfind('/')) + "/default" : f.path;
    auto nm = GoToolNm(f, twin);
    ASSERT_GE(j["functions"].size(), 6u);
    for (const auto& fn : j["functions"]) {
      std::string name = fn["name"];
      ASSERT_TRUE(nm.contains(name)) << name;
      EXPECT_EQ(fn["address"].get<uint64_t>(), nm[name]) << name;
      uint64_t probe = fn["probe_address"], addr = fn["address"], size = fn["size"];
      EXPECT_GE(probe, addr);
      EXPECT_LT(probe, addr + size);
      EXPECT_EQ(fn["probe_offset"].get<uint64_t>() - fn["file_offset"].get<uint64_t>(),
                probe - addr);
      // Goroutine creation is read where newproc.func1 hands the new g to runqput (emulated CALL).
      if (name == "runtime.newproc1") {
        ASSERT_GE(fn["handoff_sites"].size(), 1u);
        ASSERT_TRUE(nm.contains("runtime.newproc.func1"));
        uint64_t site = fn["handoff_sites"][0]["address"];
        EXPECT_GT(site, nm["runtime.newproc.func1"]);
        EXPECT_LT(site, nm["runtime.newproc.func1"] + 512);
      }
    }
  }
}

TEST(SymbolsCommandTest, TextShowsThePlan) {
  auto fixtures = AllFixtures("ctxprog");
  ASSERT_FALSE(fixtures.empty());
  Result r = RunCtxagent("symbols " + fixtures.back().path);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("context.(*cancelCtx).propagateCancel"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("(emulated)"));
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

}  // namespace
}  // namespace ctxagent
