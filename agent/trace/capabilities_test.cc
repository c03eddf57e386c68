#include "agent/trace/capabilities.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kAll = (1ull << 39) | (1ull << 38) | (1ull << 21) | (1ull << 19) | (1ull << 2);

TEST(CapabilitiesTest, AllRequiredPresent) { EXPECT_TRUE(CheckCapabilities(kAll).ok()); }

TEST(CapabilitiesTest, EachMissingOneIsNamed) {
  const std::pair<int, const char*> caps[] = {{39, "CAP_BPF"},
                                              {38, "CAP_PERFMON"},
                                              {21, "CAP_SYS_ADMIN"},
                                              {19, "CAP_SYS_PTRACE"},
                                              {2, "CAP_DAC_READ_SEARCH"}};
  for (const auto& [bit, name] : caps) {
    absl::Status s = CheckCapabilities(kAll & ~(1ull << bit));
    ASSERT_FALSE(s.ok()) << name;
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(s.message()), HasSubstr(name));
    // Only that one.
    EXPECT_EQ(std::count(s.message().begin(), s.message().end(), '('), 1) << s.message();
  }
}

TEST(CapabilitiesTest, ParsesProcStatus) {
  uint64_t eff = 0;
  ASSERT_TRUE(
      ParseCapEff("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n", &eff));
  EXPECT_EQ(eff, 0x1ffffffffffull);
  EXPECT_FALSE(ParseCapEff("Name:\tx\n", &eff));
  EXPECT_FALSE(ParseCapEff("CapEff:\tzz\n", &eff));
}

}  // namespace
}  // namespace ctxagent
