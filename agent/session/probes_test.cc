// ProbeSet against real Go processes, with real probes: what the budget does to a new binary.
#include "agent/session/probes.h"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

// How long after a binary quiet at its first probe turns busy (a service that starts serving) its
// probes are paused, with `follow_up` between timed estimates. The loop sleeps as the agent does:
// until the set's next deadline or a wakeup from the ring.
absl::Duration TimeToSampleATargetTurningBusy(absl::Duration follow_up) {
  // A private copy per test (ctest runs them in parallel): probes on a file show in every process
  // running it.
  const std::string path = ::testing::TempDir() + "probes_test_ctxprog_" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  EXPECT_EQ(system(("cp " CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.22/default " + path).c_str()), 0);
  auto bin = symbols::GoBinary::Open(path);
  auto tracer = Tracer::Create([](const ctx_event&) {}, Tracer::kDefaultRingBytes);
  if (!bin.ok() || !tracer.ok()) {
    ADD_FAILURE() << bin.status() << " " << tracer.status();
    return absl::InfiniteDuration();
  }
  auto quiet = testing::Child::Start({path, "-loop", "-sleep", "1s"});
  absl::SleepFor(absl::Milliseconds(200));
  // The trap costs measured on a quiet machine, and a budget a tenth of the default, so that the
  // busy program is far over it however much CPU a loaded machine leaves it (just over the budget,
  // the first window would be most of 20 s: sampling_test).
  constexpr double kBudget = 0.0003;
  ProbeSet probes(**tracer, {.emulated_us = 0.65, .stepped_us = 9.3},
                  {.sampling = {.budget = kBudget}, .follow_up = follow_up}, absl::Now());
  EXPECT_TRUE(probes.Add(nullptr, **bin, absl::Now()).ok());
  auto step = [&](absl::Time until) {
    const absl::Time now = absl::Now();
    (*tracer)->Wait(std::min(probes.next_deadline(), until) - now);
    (*tracer)->Drain();
    EXPECT_TRUE(probes.Tick(absl::Now(), [] {}).ok());
  };
  const absl::Time added = absl::Now();
  while (absl::Now() < added + absl::Milliseconds(300)) step(added + absl::Milliseconds(300));
  EXPECT_TRUE(probes.attached()) << "quiet at its first probe: traced in full";
  auto busy = testing::Child::Start({path, "-loop", "-n", "50", "-sleep", "1ms"});
  const absl::Time started = absl::Now();
  absl::Time detached = absl::InfiniteFuture();
  while (absl::Now() < started + absl::Seconds(4) && detached == absl::InfiniteFuture()) {
    step(started + absl::Seconds(4));
    if (!probes.attached()) detached = absl::Now();
  }
  busy.Kill(SIGKILL);
  quiet.Kill(SIGKILL);
  EXPECT_GT(probes.plan().cost_attached, 10 * kBudget);
  return detached - started;
}

// Its hits are estimated again while it is young, every follow-up...
TEST(ProbeSetTest, ATargetBusyAfterItsFirstProbeIsSampledWithinASecond) {
  CTXAGENT_REQUIRE_BPF();
  EXPECT_LT(TimeToSampleATargetTurningBusy(absl::Milliseconds(250)), absl::Milliseconds(1500));
}

// ...and, sooner, once its hits cost an eighth of the first span's budget: the probes wake the
// agent (with follow-ups 3 s apart, only that wakeup can pause it within the second).
TEST(ProbeSetTest, ATargetTurningBusyWakesTheAgentBeforeTheNextFollowUp) {
  CTXAGENT_REQUIRE_BPF();
  EXPECT_LT(TimeToSampleATargetTurningBusy(absl::Seconds(3)), absl::Milliseconds(1000));
}

}  // namespace
}  // namespace ctxagent
