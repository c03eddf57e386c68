// Test-only: decides whether a test that needs BPF runs. In CI (CI=true) BPF tests must run, so a
// missing privilege is a failure there; elsewhere the test is skipped with the reason.
#ifndef CTXAGENT_BPF_BPF_TESTING_H_
#define CTXAGENT_BPF_BPF_TESTING_H_

#include <string>

namespace ctxagent::testing {

// Empty when this process can load and attach BPF programs, else why not.
std::string BpfUnavailableReason();
bool InCi();

}  // namespace ctxagent::testing

// Use at the top of a BPF test body.
#define CTXAGENT_REQUIRE_BPF()                                                      \
  do {                                                                              \
    std::string _why = ::ctxagent::testing::BpfUnavailableReason();                 \
    if (!_why.empty()) {                                                            \
      if (::ctxagent::testing::InCi()) FAIL() << "BPF unavailable in CI: " << _why; \
      GTEST_SKIP() << "BPF unavailable here: " << _why;                             \
    }                                                                               \
  } while (0)

#endif  // CTXAGENT_BPF_BPF_TESTING_H_
