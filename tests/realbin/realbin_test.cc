// GoBinary against real, stripped Go executables nobody here built: esbuild releases from npm, one
// per Go minor (tests/realbin/esbuild_versions.txt, fetched by fetch_esbuild.sh into
// CTXAGENT_REALBIN_DIR/<go version>/esbuild by the `esbuild_binaries` target).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "symbols/go_binary.h"
#include "tests/realbin/realbin_list.h"

namespace ctxagent::symbols {
namespace {

using testing::GoMinor;
using testing::RealBinary;

std::vector<RealBinary> LoadList() {
  return testing::LoadRealBinaries(CTXAGENT_REALBIN_LIST, CTXAGENT_REALBIN_DIR);
}

class RealBinaryTest : public ::testing::TestWithParam<RealBinary> {};

TEST(RealBinaryList, HasBinaries) {
  std::vector<RealBinary> list = LoadList();
  EXPECT_GE(list.size(), 4u) << "cannot read " << CTXAGENT_REALBIN_LIST;
}

TEST_P(RealBinaryTest, OpensAndPlansProbes) {
  const RealBinary& b = GetParam();
  {
    std::ifstream f(b.path);
    ASSERT_TRUE(f.good()) << b.path << " missing; build the `esbuild_binaries` target ("
                          << "tests/realbin/fetch_esbuild.sh " << CTXAGENT_REALBIN_DIR << ")";
  }
  const int minor = GoMinor(b.go_version);
  ASSERT_GE(minor, 0) << "bad Go version in list: " << b.go_version;

  absl::StatusOr<std::unique_ptr<GoBinary>> bin = GoBinary::Open(b.path);

  if (minor < kMinGoMinor) {
    // Older than any layout ctxagent knows: a clean error naming the file and the version.
    ASSERT_FALSE(bin.ok()) << b.package << " (" << b.go_version
                           << ") opened, but ctxagent supports 1." << kMinGoMinor << "+ only";
    EXPECT_THAT(std::string(bin.status().message()), ::testing::HasSubstr(b.path));
    std::printf("[realbin] %-28s %-10s rejected as expected: %s\n", b.package.c_str(),
                b.go_version.c_str(), bin.status().ToString().c_str());
    return;
  }

  // Note: esbuild >= 0.27.0 is linked with a patched linker that drops .go.buildinfo entirely
  // (`go version` says "not a Go executable"); the version is then only in runtime.buildVersion.
  ASSERT_TRUE(bin.ok()) << b.package << " (" << b.go_version << "): " << bin.status();
  const GoBinary& g = **bin;

  EXPECT_EQ(g.build_info().version.raw, b.go_version) << b.package;
  EXPECT_TRUE(g.stripped()) << b.path << " has a .symtab; npm releases are built with -s -w";
  EXPECT_FALSE(g.has_dwarf()) << b.path;

  const ProbePlan& plan = g.plan();
  std::vector<std::string> planned;
  for (const PlannedHook& h : plan.hooks) {
    planned.push_back(h.hook.function);
    EXPECT_EQ(h.function.name, h.hook.function);
    EXPECT_LT(h.function.entry, h.function.end) << h.function.name;
  }
  int at_check = 0, rets = 0;
  for (const Probe& p : plan.probes) {
    EXPECT_FALSE(p.site.instruction.empty()) << p.function;
    EXPECT_FALSE(p.site.bytes.empty()) << p.function;
    absl::StatusOr<uint64_t> off = g.elf().VaddrToFileOffset(p.site.address);
    ASSERT_TRUE(off.ok()) << p.function << ": " << off.status();
    EXPECT_EQ(p.site.file_offset, *off) << p.function;
    absl::StatusOr<Function> fn = g.pclntab().FindFunction(p.function);
    ASSERT_TRUE(fn.ok()) << p.function << ": " << fn.status();
    EXPECT_GE(p.site.address, fn->entry) << p.function << " probe before the function";
    EXPECT_LT(p.site.address, fn->end) << p.function << " probe past the function";
    at_check += p.kind == SiteKind::kStackCheck ? 1 : 0;
    rets += p.kind == SiteKind::kReturn ? 1 : 0;
  }
  EXPECT_TRUE(g.VerifyProbeSites().ok()) << g.VerifyProbeSites();

  const std::vector<HookSpec> hooks = HooksForVersion(g.build_info().version);
  EXPECT_FALSE(hooks.empty()) << "no hooks for " << b.go_version;
  int required = 0;
  for (const HookSpec& h : hooks) {
    if (!h.required) continue;
    ++required;
    EXPECT_THAT(planned, ::testing::Contains(h.function))
        << b.package << " (" << b.go_version << "): required hook " << h.function << " not planned";
  }

  std::printf(
      "[realbin] %-28s %-10s ok: %zu funcs, %zu probes (%d required, %d at stack check, "
      "%d entry fallbacks, %d ret sites), missing optional: [%s]\n",
      b.package.c_str(), b.go_version.c_str(), g.pclntab().num_functions(), plan.probes.size(),
      required, at_check, plan.entry_fallbacks, rets, absl::StrJoin(plan.missing, " ").c_str());
}

INSTANTIATE_TEST_SUITE_P(Esbuild, RealBinaryTest, ::testing::ValuesIn(LoadList()),
                         [](const ::testing::TestParamInfo<RealBinary>& info) {
                           return absl::StrReplaceAll(info.param.go_version, {{".", "_"}});
                         });

}  // namespace
}  // namespace ctxagent::symbols
