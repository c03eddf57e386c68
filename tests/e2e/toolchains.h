// Test-only: the Go toolchains an e2e test runs under (CTXAGENT_GO_VERSIONS, set per e2e target),
// for INSTANTIATE_TEST_SUITE_P(Toolchains, Suite, ValuesIn(GoVersions()), ToolchainTestName).
#ifndef CTXAGENT_TESTS_E2E_TOOLCHAINS_H_
#define CTXAGENT_TESTS_E2E_TOOLCHAINS_H_

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace ctxagent::testing {

inline std::vector<std::string> GoVersions() {
  return absl::StrSplit(CTXAGENT_GO_VERSIONS, ',', absl::SkipEmpty());
}

// Those of them that also built test programs as PIE, in directories "go<version>-pie"
// (CTXAGENT_PIE_GO_VERSIONS, "1.21-pie,1.27-pie", for the targets that use them).
inline std::vector<std::string> PieGoVersions() {
#ifdef CTXAGENT_PIE_GO_VERSIONS
  return absl::StrSplit(CTXAGENT_PIE_GO_VERSIONS, ',', absl::SkipEmpty());
#else
  return {};
#endif
}

// "1.27" -> "go1_27", "1.21-pie" -> "go1_21_pie".
inline std::string ToolchainTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = "go" + info.param;
  std::replace(n.begin(), n.end(), '.', '_');
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_E2E_TOOLCHAINS_H_
