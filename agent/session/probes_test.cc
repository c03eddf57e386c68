// ProbeSet against real Go processes, with real probes: what the budget does to a new binary.
#include "agent/session/probes.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

// A private copy of the fixture per test (ctest runs them in parallel): probes on a file show in
// every process running it.
std::string FixtureCopy() {
  const std::string path = ::testing::TempDir() + "probes_test_ctxprog_" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  EXPECT_EQ(system(("cp " CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.22/default " + path).c_str()), 0);
  return path;
}

// The trap costs measured on a quiet machine, and a budget a tenth of the default, so that the
// busy program is far over it however much CPU a loaded machine leaves it (just over the budget,
// the first window would be most of 20 s: sampling_test).
constexpr double kBudget = 0.0003;
constexpr TrapCosts kQuietMachine = {.emulated_us = 0.65, .stepped_us = 9.3};

// How long after a binary quiet at its first probe turns busy (a service that starts serving) its
// probes are paused, with `follow_up` between timed estimates. The loop sleeps as the agent does:
// until the set's next deadline or a wakeup from the ring.
absl::Duration TimeToSampleATargetTurningBusy(absl::Duration follow_up) {
  const std::string path = FixtureCopy();
  auto bin = symbols::GoBinary::Open(path);
  auto tracer = Tracer::Create([](const ctx_event&) {}, Tracer::kDefaultRingBytes);
  if (!bin.ok() || !tracer.ok()) {
    ADD_FAILURE() << bin.status() << " " << tracer.status();
    return absl::InfiniteDuration();
  }
  auto quiet = testing::Child::Start({path, "-loop", "-sleep", "1s"});
  absl::SleepFor(absl::Milliseconds(200));
  ProbeSet probes(**tracer, kQuietMachine,
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

// A busy target's first window ends while the agent still decodes what it wrote (a slow machine,
// or a burst): the probes go off at the window's end, not once the agent caught up.
TEST(ProbeSetTest, AWindowClosesOnTimeWhileTheAgentDecodesABacklog) {
  CTXAGENT_REQUIRE_BPF();
  const std::string path = FixtureCopy();
  auto bin = symbols::GoBinary::Open(path);
  // Each event costs the handler 200 us for 3 s: a chunk of the drain is ~100 ms of decoding, and
  // the target writes events faster than that. (A drain to the end would not end while it is
  // slow: the ring never empties.)
  constexpr absl::Duration kDecode = absl::Microseconds(200);
  const absl::Time slow_until = absl::Now() + absl::Seconds(3);
  uint64_t last_fired_ns = 0;  // CLOCK_MONOTONIC, as the probes stamp events
  auto tracer = Tracer::Create(
      [&](const ctx_event& e) {
        last_fired_ns = std::max<uint64_t>(last_fired_ns, e.ktime_ns);
        const absl::Time until = std::min(slow_until, absl::Now() + kDecode);
        while (absl::Now() < until) {
        }
      },
      Tracer::kDefaultRingBytes);
  ASSERT_TRUE(bin.ok() && tracer.ok()) << bin.status() << " " << tracer.status();
  auto busy = testing::Child::Start({path, "-loop", "-n", "200", "-sleep", "1ms"});
  absl::SleepFor(absl::Milliseconds(200));
  // Far over the budget, the target gets the shortest first window: min_first_window from its
  // probe.
  constexpr absl::Duration kWindow = absl::Milliseconds(250);
  ProbeSet probes(**tracer, kQuietMachine,
                  {.sampling = {.budget = kBudget, .min_first_window = kWindow}}, absl::Now());
  ASSERT_TRUE(probes.Add(nullptr, **bin, absl::Now()).ok());
  const absl::Time window_end = absl::Now() + kWindow;
  absl::Time caught_up = absl::InfiniteFuture();  // when the agent had decoded everything
  while (probes.attached() && absl::Now() < window_end + absl::Seconds(5)) {
    // Woken every 100 ms as well, like an agent's periodic drain: a drain can begin before the
    // window ends and last past it.
    (*tracer)->Wait(std::min(probes.next_deadline(), absl::Now() + absl::Milliseconds(100)) -
                    absl::Now());
    ASSERT_TRUE(probes.TickAndDrain([&] { caught_up = absl::Now(); }).ok());
  }
  busy.Kill(SIGKILL);
  ASSERT_FALSE(probes.attached()) << "the busy target's probes never paused";
  timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  const absl::Time last_fired =
      absl::Now() - (absl::DurationFromTimespec(mono) - absl::Nanoseconds(last_fired_ns));
  // Decoding went on long past the window's end; draining before switching would have kept the
  // probes firing about that long. They stopped within a chunk of it (and the detach).
  const absl::Duration decoding = caught_up - window_end;
  EXPECT_GT(decoding, absl::Milliseconds(300)) << (*tracer)->handled() << " events";
  EXPECT_LT(last_fired - window_end, decoding / 2) << (*tracer)->handled() << " events";
}

// While the budget samples, windows after the first leave the goroutine-exit probes out (their ends
// are read from memory): the goroutines' starts are still seen, their ends are not.
TEST(ProbeSetTest, SampledWindowsLeaveGoroutineExitsOut) {
  CTXAGENT_REQUIRE_BPF();
  const std::string path = FixtureCopy();
  auto bin = symbols::GoBinary::Open(path);
  int window = 0;  // 1: the first window, with its exits; 2, 3, ...: later ones
  std::map<std::pair<int, uint32_t>, int> events;  // (window, type) -> count
  auto tracer = Tracer::Create(
      [&](const ctx_event& e) {
        ++events[{window, e.type}];
      },
      Tracer::kDefaultRingBytes);
  ASSERT_TRUE(bin.ok() && tracer.ok()) << bin.status() << " " << tracer.status();
  auto busy = testing::Child::Start({path, "-loop", "-n", "4", "-sleep", "1ms"});
  absl::SleepFor(absl::Milliseconds(200));
  ProbeSet probes(
      **tracer, kQuietMachine,
      {.sampling = {.fixed = {.window = absl::Milliseconds(500), .period = absl::Seconds(1)}}},
      absl::Now());
  ASSERT_TRUE(probes.Add(nullptr, **bin, absl::Now()).ok());
  window = 1;
  EXPECT_TRUE(probes.goroutine_exits()) << "the first window is traced in full";
  bool was_attached = true;
  const absl::Time end = absl::Now() + absl::Seconds(4);
  while (absl::Now() < end) {
    (*tracer)->Wait(std::min(probes.next_deadline(), end) - absl::Now());
    // The ring is drained at a detach (before on_pause): a window's events count as its own.
    ASSERT_TRUE(probes.TickAndDrain([] {}).ok());
    if (probes.attached() && !was_attached) {
      ++window;
      EXPECT_FALSE(probes.goroutine_exits()) << "window " << window;
    }
    was_attached = probes.attached();
  }
  busy.Kill(SIGKILL);
  ASSERT_GE(window, 3);
  EXPECT_GT((events[{1, EV_GO_EXIT}]), 0);
  int later_starts = 0, later_exits = 0;
  for (int w = 2; w <= window; ++w) {
    later_starts += events[{w, EV_GO_CREATE}];
    later_exits += events[{w, EV_GO_EXIT}];
  }
  EXPECT_GT(later_starts, 10);
  EXPECT_EQ(later_exits, 0);
}

// Alternated on and off over the same process, the probes' hits show in its CPU: what a hit costs
// it replaces the calibration once enough on/off pairs agree.
TEST(ProbeSetTest, MeasuresWhatAHitCostsTheTarget) {
  CTXAGENT_REQUIRE_BPF();
  const std::string path = FixtureCopy();
  auto bin = symbols::GoBinary::Open(path);
  auto tracer = Tracer::Create([](const ctx_event&) {}, Tracer::kDefaultRingBytes);
  auto calibrated = CalibrateTrapCosts();
  ASSERT_TRUE(bin.ok() && tracer.ok() && calibrated.ok())
      << bin.status() << " " << tracer.status() << " " << calibrated.status();
  // Tens of thousands of hits a second, a tenth of a CPU: the hits are a large part of its CPU.
  auto busy = testing::Child::Start({path, "-loop", "-n", "50", "-sleep", "1ms"});
  absl::SleepFor(absl::Milliseconds(200));
  ProbeSet probes(**tracer, *calibrated,
                  {.sampling = {.fixed = {.window = absl::Seconds(1), .period = absl::Seconds(3)}},
                   .traced_cpu = [pid = busy.pid()] { return ReadTracedCpu({pid}); }},
                  absl::Now());
  ASSERT_TRUE(probes.Add(nullptr, **bin, absl::Now()).ok());
  EXPECT_FALSE(probes.trap_costs().measured());
  const absl::Time end = absl::Now() + absl::Seconds(40);
  while (!probes.trap_costs().measured() && absl::Now() < end) {
    (*tracer)->Wait(std::min(probes.next_deadline(), absl::Now() + absl::Milliseconds(250)) -
                    absl::Now());
    ASSERT_TRUE(probes.TickAndDrain([] {}).ok());
    probes.Measure(absl::Now());  // the agent's refresh
  }
  busy.Kill(SIGKILL);
  const TrapCosts& costs = probes.trap_costs();
  ASSERT_TRUE(costs.measured()) << "no agreement in 40 s";
  EXPECT_GE(costs.measured_pairs, HitCostEstimator::kMinPairs);
  // A trap in a Go program costs at least about what it costs the agent's hot loop, and not
  // orders of magnitude more.
  EXPECT_GT(costs.measured_us, 0.5 * calibrated->emulated_us);
  EXPECT_LT(costs.measured_us, 20 * calibrated->emulated_us + 10);
  EXPECT_STREQ(costs.source(), "targets");
}

}  // namespace
}  // namespace ctxagent
