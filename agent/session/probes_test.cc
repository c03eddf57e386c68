// ProbeSet against real Go processes, with real probes: what the budget does to a new binary.
#include "agent/session/probes.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

pid_t StartProgram(const std::string& path, std::vector<std::string> args) {
  args.insert(args.begin(), path);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

void Stop(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

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
  const pid_t quiet = StartProgram(path, {"-loop", "-sleep", "1s"});
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
  const pid_t busy = StartProgram(path, {"-loop", "-n", "50", "-sleep", "1ms"});
  const absl::Time started = absl::Now();
  absl::Time detached = absl::InfiniteFuture();
  while (absl::Now() < started + absl::Seconds(3) && detached == absl::InfiniteFuture()) {
    (*tracer)->Drain();
    ASSERT_TRUE(probes.Tick(absl::Now(), [] {}).ok());
    if (!probes.attached()) detached = absl::Now();
    absl::SleepFor(absl::Milliseconds(20));
  }
  Stop(busy);
  Stop(quiet);
  EXPECT_LT(detached - started, absl::Milliseconds(1500));
  EXPECT_GT(probes.plan().cost_attached, 10 * kBudget);
}

}  // namespace
}  // namespace ctxagent
