// ProbeSet against real Go processes, with real probes: what the budget does to a new binary.
#include "agent/session/probes.h"

#include <signal.h>

#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

// A binary quiet at its first probe that turns busy (a service that starts serving) is sampled
// within a second, not traced in full until the next full measurement: its hits are estimated
// again while it is young.
TEST(ProbeSetTest, ATargetBusyAfterItsFirstProbeIsSampledWithinASecond) {
  CTXAGENT_REQUIRE_BPF();
  // A private copy: probes on a file show in every process running it.
  const std::string path = ::testing::TempDir() + "probes_test_ctxprog";
  ASSERT_EQ(system(("cp " CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.22/default " + path).c_str()), 0);
  auto bin = symbols::GoBinary::Open(path);
  ASSERT_TRUE(bin.ok()) << bin.status();
  auto tracer = Tracer::Create([](const ctx_event&) {}, Tracer::kDefaultRingBytes);
  ASSERT_TRUE(tracer.ok()) << tracer.status();
  auto quiet = testing::Child::Start({path, "-loop", "-sleep", "1s"});
  absl::SleepFor(absl::Milliseconds(200));
  // The trap costs measured on a quiet machine, and a budget a tenth of the default, so that the
  // busy program is far over it however much CPU a loaded machine leaves it (just over the budget,
  // the first window would be most of 20 s: sampling_test).
  constexpr double kBudget = 0.0003;
  ProbeSet probes(**tracer, {.emulated_us = 0.65, .stepped_us = 9.3},
                  {.sampling = {.budget = kBudget}}, absl::Now());
  ASSERT_TRUE(probes.Add(nullptr, **bin, absl::Now()).ok());
  const absl::Time added = absl::Now();
  while (absl::Now() < added + absl::Milliseconds(300)) {
    ASSERT_TRUE(probes.Tick(absl::Now(), [] {}).ok());
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(probes.attached()) << "quiet at its first probe: traced in full";
  auto busy = testing::Child::Start({path, "-loop", "-n", "50", "-sleep", "1ms"});
  const absl::Time started = absl::Now();
  absl::Time detached = absl::InfiniteFuture();
  while (absl::Now() < started + absl::Seconds(3) && detached == absl::InfiniteFuture()) {
    (*tracer)->Drain();
    ASSERT_TRUE(probes.Tick(absl::Now(), [] {}).ok());
    if (!probes.attached()) detached = absl::Now();
    absl::SleepFor(absl::Milliseconds(20));
  }
  busy.Kill(SIGKILL);
  quiet.Kill(SIGKILL);
  EXPECT_LT(detached - started, absl::Milliseconds(1500));
  EXPECT_GT(probes.plan().cost_attached, 10 * kBudget);
}

}  // namespace
}  // namespace ctxagent
