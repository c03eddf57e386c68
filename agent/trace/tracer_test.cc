// Tracer + Decoder against a real Go program: every probe fires, events decode to the right source
// lines and causes, and a repeated call site sends its stack only once.
#include "agent/trace/tracer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/trace/decoder.h"
#include "agent/trace/process.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "symbols/go_binary.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

// The line of the first source line containing `needle` in ctxprog's main.go.
int LineOf(const std::string& needle) {
  std::ifstream in(std::string(CTXAGENT_SOURCE_DIR) + "/tests/fixtures/ctxprog/main.go");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(needle) != std::string::npos) return n;
  }
  return -1;
}

// The tracer loaded for `links`, checked to use the kind of link asked for where the kernel has it.
absl::StatusOr<std::unique_ptr<Tracer>> CreateTracer(Tracer::Handler handler, Tracer::Links links) {
  auto tracer = Tracer::Create(std::move(handler), Tracer::kDefaultRingBytes, links);
  if (!tracer.ok()) return tracer.status();
  const bool want_multi =
      links == Tracer::Links::kMultiWhenSupported && Tracer::KernelHasMultiLinks();
  if ((*tracer)->multi_links() != want_multi) {
    return absl::InternalError(absl::StrCat("multi_links() is ", (*tracer)->multi_links()));
  }
  return tracer;
}

const char* LinksName(Tracer::Links links) {
  return links == Tracer::Links::kPerProbe ? "per_probe" : "multi";
}

class TracerTest : public ::testing::TestWithParam<std::tuple<std::string, Tracer::Links>> {};

TEST_P(TracerTest, DecodesARealProgram) {
  CTXAGENT_REQUIRE_BPF();
  const auto& [fixture, links] = GetParam();
  const std::string path = std::string(CTXAGENT_GO_FIXTURE_DIR) + "/ctxprog/" + fixture;
  auto bin = symbols::GoBinary::Open(path);
  ASSERT_TRUE(bin.ok()) << bin.status();

  std::vector<ctx_event> raw;
  auto tracer = CreateTracer([&](const ctx_event& e) { raw.push_back(e); }, links);
  ASSERT_TRUE(tracer.ok()) << tracer.status();
  // Every process running the file (pid -1): attached before the program starts.
  auto attachment = (*tracer)->AttachEveryProcess(**bin);
  ASSERT_TRUE(attachment.ok()) << attachment.status();

  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    execl(path.c_str(), path.c_str(), "-loop", "-n", "4", "-sleep", "5ms",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  Process process(pid);
  SiteTable sites;
  std::unique_ptr<Decoder> decoder;
  EventClock clock;
  std::vector<DecodedEvent> decoded;
  size_t done = 0;
  auto decode_pending = [&] {
    for (; decoder != nullptr && done < raw.size(); ++done) {
      if (raw[done].tgid != static_cast<uint32_t>(pid)) continue;
      auto e = decoder->Decode(raw[done], clock);
      ASSERT_TRUE(e.ok()) << e.status();
      decoded.push_back(*e);
    }
  };
  absl::Time end = absl::Now() + absl::Seconds(2);
  while (absl::Now() < end) {
    (*tracer)->Drain();
    char exe[4096] = {};
    // Until the child has exec'd, /proc/<pid>/exe is this test binary.
    if (decoder == nullptr && readlink(process.exe_path().c_str(), exe, sizeof(exe) - 1) > 0 &&
        std::string(exe) == path) {
      auto bias = process.LoadBias((*bin)->elf());
      if (bias.ok()) decoder = std::make_unique<Decoder>(**bin, process, *bias, sites);
    }
    // Decode while the target lives: itabs are read from its memory.
    decode_pending();
    absl::SleepFor(absl::Milliseconds(10));
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "target harmed: " << status;
  // The target finishes its round on SIGTERM: take the events of that last round too, so every
  // round is counted whole (its itabs and stacks are cached, the process is no longer needed).
  (*tracer)->Drain();
  decode_pending();
  EXPECT_EQ((*tracer)->counters().dropped_total(), 0u);

  const int create_line = LineOf("ctx, cancel := context.WithCancel(parent)");
  std::map<std::pair<std::string, int>, int> creates;  // (function, line) -> count
  int own_cancels = 0, deadline_cancels = 0, timers = 0, go_creates = 0, go_exits = 0;
  for (const DecodedEvent& e : decoded) {
    if (auto* c = std::get_if<ContextCreated>(&e)) {
      const Site& s = sites.Get(c->site);
      creates[{s.function, s.line}]++;
      if (c->kind == ContextKind::kTimer) {
        ++timers;
        // The fixture's deadlines are 1 ms and 1 h from its time.Now(); a probe hit preempted
        // for longer than 1 ms must not fail this check, an undecoded (zero) deadline must.
        EXPECT_GT(c->deadline, c->time - absl::Seconds(10)) << "deadline not decoded";
        EXPECT_LT(c->deadline, c->time + absl::Hours(2)) << "deadline not decoded";
      }
    } else if (auto* c = std::get_if<ContextCancelled>(&e)) {
      if (c->cause == CancelCause::kOwnCancel) ++own_cancels;
      if (c->cause == CancelCause::kDeadline) ++deadline_cancels;
    } else if (std::holds_alternative<GoroutineCreated>(e)) {
      ++go_creates;
    } else {
      ++go_exits;
    }
  }
  const int rounds = creates[{"main.workCancel", create_line}];
  std::string seen;
  for (const auto& [k, v] : creates) absl::StrAppend(&seen, k.first, ":", k.second, "=", v, " ");
  EXPECT_GE(rounds, 8) << "too few rounds traced: " << seen;
  // workValue's WithCancel is on its own line; the timeout pair is in workTimeout.
  const int value_line = LineOf("ctx, cancel := context.WithCancel(v)");
  EXPECT_NEAR((creates[{"main.workValue", value_line}]), rounds, 1);  // one may be in flight
  EXPECT_GE(timers, 2 * rounds - 2);
  EXPECT_GE(deadline_cancels, rounds - 1);  // the 1ms deadline fires every round
  EXPECT_GE(own_cancels, 2 * rounds - 1);
  EXPECT_GE(go_creates, rounds);
  EXPECT_GE(go_exits, rounds - 1);

  // Stack de-duplication: the workCancel site sent its full stack once, then only the key frames.
  int full = 0, short_ = 0;
  for (const ctx_event& e : raw) {
    if (e.tgid != static_cast<uint32_t>(pid) || e.type != EV_CTX_CREATE) continue;
    (e.create.nframes > CTX_KEY_FRAMES ? full : short_)++;
  }
  EXPECT_GT(short_, full) << "repeated sites should send only their key frames";

  // Hits are counted by the kind of trap each site's cookie names: every event came from a hit,
  // and no hit is counted single-stepped where the plan placed only emulated sites.
  const TrapHits hits = (*tracer)->trap_hits();
  EXPECT_GE(hits[TRAP_EMULATED] + hits[TRAP_STEPPED], decoded.size());
  bool any_stepped = false;
  for (const symbols::Probe& p : (*bin)->plan().probes) any_stepped |= !p.site.emulated;
  EXPECT_EQ(hits[TRAP_STEPPED] > 0, any_stepped) << hits[TRAP_STEPPED];
  (*tracer)->Detach(*attachment);
}

pid_t StartQuiet(const std::string& path) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    execl(path.c_str(), path.c_str(), "-loop", static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits until `pid` has exec'd `path` (until then it runs this test's binary).
bool WaitForExec(pid_t pid, const std::string& path) {
  for (int i = 0; i < 500; ++i) {
    char exe[4096] = {};
    if (readlink(absl::StrCat("/proc/", pid, "/exe").c_str(), exe, sizeof(exe) - 1) > 0 &&
        std::string(exe) == path) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

// A private copy of a ctxprog fixture in the test's temporary directory (empty if the copy failed).
std::string CopyOfFixture(const std::string& name) {
  const std::string path = ::testing::TempDir() + name;
  const bool ok =
      system(("cp " CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.27/default " + path).c_str()) == 0;
  EXPECT_TRUE(ok) << "cannot copy the fixture to " << path;
  return ok ? path : "";
}

// The kernel puts a system-wide probe's int3 in every private mapping of the file that may execute,
// a reader's too: a binary opened while probes are on it is planned from its own code all the same
// (a plan made from breakpoint bytes falls back to entry probes or mis-decodes instructions).
TEST(TracerSafetyTest, FileWithProbesOnItIsPlannedFromItsCode) {
  CTXAGENT_REQUIRE_BPF();
  const std::string path = CopyOfFixture("tracer_replan_copy");
  auto before = symbols::GoBinary::Open(path);
  ASSERT_TRUE(before.ok()) << before.status();
  for (Tracer::Links links : {Tracer::Links::kMultiWhenSupported, Tracer::Links::kPerProbe}) {
    SCOPED_TRACE(LinksName(links));
    auto tracer = CreateTracer([](const ctx_event&) {}, links);
    ASSERT_TRUE(tracer.ok()) << tracer.status();
    auto attachment = (*tracer)->AttachEveryProcess(**before);
    ASSERT_TRUE(attachment.ok()) << attachment.status();
    auto again = symbols::GoBinary::Open(path);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE((*again)->VerifyProbeSites().ok());
    EXPECT_EQ((*again)->plan().entry_fallbacks, (*before)->plan().entry_fallbacks);
    ASSERT_EQ((*again)->plan().probes.size(), (*before)->plan().probes.size());
    for (size_t i = 0; i < (*before)->plan().probes.size(); ++i) {
      EXPECT_EQ((*again)->plan().probes[i].site.file_offset,
                (*before)->plan().probes[i].site.file_offset)
          << (*before)->plan().probes[i].function;
    }
    (*tracer)->Detach(*attachment);
  }
  unlink(path.c_str());
}

// A file rewritten after it was planned: no probe of it is attached, not even those before the
// changed site in attach order.
TEST(TracerSafetyTest, ChangedProbeSiteAttachesNothing) {
  CTXAGENT_REQUIRE_BPF();
  const std::string path = CopyOfFixture("tracer_changed_copy");
  auto bin = symbols::GoBinary::Open(path);
  ASSERT_TRUE(bin.ok()) << bin.status();
  auto tracer = Tracer::Create([](const ctx_event&) {});
  ASSERT_TRUE(tracer.ok()) << tracer.status();
  const symbols::ProbeSite& last = (*bin)->plan().probes.back().site;
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  // The same length, another instruction: a NOP where the planned one was.
  ASSERT_EQ(pwrite(fd, "\x90", 1, static_cast<off_t>(last.file_offset)), 1);
  close(fd);
  auto attachment = (*tracer)->AttachEveryProcess(**bin);
  EXPECT_EQ(attachment.status().code(), absl::StatusCode::kFailedPrecondition)
      << attachment.status();
  EXPECT_EQ((*tracer)->attached_probes(), 0u);
  unlink(path.c_str());
}

// Probes planned for one file are never attached to a process that runs another.
TEST(TracerSafetyTest, ProcessRunningAnotherBinaryIsRefused) {
  CTXAGENT_REQUIRE_BPF();
  const std::string a = CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.27/default";
  const std::string b = CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.19/default";
  auto bin = symbols::GoBinary::Open(a);
  ASSERT_TRUE(bin.ok()) << bin.status();
  for (Tracer::Links links : {Tracer::Links::kMultiWhenSupported, Tracer::Links::kPerProbe}) {
    SCOPED_TRACE(LinksName(links));
    auto tracer = CreateTracer([](const ctx_event&) {}, links);
    ASSERT_TRUE(tracer.ok()) << tracer.status();
    for (const std::string& runs : {a, b}) {
      pid_t pid = StartQuiet(runs);
      ASSERT_TRUE(WaitForExec(pid, runs));
      Process process(pid);
      auto attachment = (*tracer)->Attach(process, **bin);
      if (runs == a) {
        ASSERT_TRUE(attachment.ok()) << attachment.status();
        EXPECT_EQ((*tracer)->attached_probes(), (*bin)->plan().probes.size());
        (*tracer)->Detach(*attachment);
      } else {
        EXPECT_EQ(attachment.status().code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_EQ(attachment.status().message(),
                  absl::StrCat("pid ", pid, " now runs another binary (it called exec)"));
      }
      EXPECT_EQ((*tracer)->attached_probes(), 0u);
      absl::SleepFor(absl::Milliseconds(300));  // its SIGTERM handler is installed
      kill(pid, SIGTERM);
      int status = 0;
      waitpid(pid, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << runs << ": " << status;
      // Gone: a clear NotFound, nothing attached.
      EXPECT_EQ((*tracer)->Attach(process, **bin).status().code(), absl::StatusCode::kNotFound);
    }
    EXPECT_EQ((*tracer)->attached_probes(), 0u);
  }
}

// Execs of a file the agent made quiet send nothing, unless the process is traced: a node's shells
// and probes do not wake the daemon, and a traced process's exec is never missed.
TEST(TracerExecTest, AQuietFileSendsNoExecEventUnlessItsProcessIsTraced) {
  CTXAGENT_REQUIRE_BPF();
  std::map<pid_t, std::vector<ctx_event>> seen;
  auto tracer = Tracer::Create([&](const ctx_event& e) { seen[e.tgid].push_back(e); });
  ASSERT_TRUE(tracer.ok()) << tracer.status();
  ASSERT_TRUE((*tracer)->WatchProcesses().ok());
  struct stat st;
  ASSERT_EQ(stat("/bin/true", &st), 0);
  // Runs /bin/true in a child (traced first if asked: the child execs it after 300 ms through
  // sh); returns the events of the child.
  auto run = [&](bool traced) {
    testing::Child child =
        traced ? testing::Child::Start({"/bin/sh", "-c", "sleep 0.3; exec /bin/true"})
               : testing::Child::Start({"/bin/true"});
    if (traced) (*tracer)->SetTraced(child.pid(), true);
    EXPECT_EQ(child.Wait(absl::Seconds(10)), 0);
    (*tracer)->Drain();
    (*tracer)->SetTraced(child.pid(), false);
    return seen[child.pid()];
  };
  // The exec of /bin/true among a child's events.
  auto exec_of = [&](const std::vector<ctx_event>& events) -> const ctx_event* {
    for (const ctx_event& e : events) {
      if (e.type == EV_PROC_EXEC && e.exec.ino == st.st_ino) return &e;
    }
    return nullptr;
  };
  const std::vector<ctx_event> first = run(false);
  const ctx_event* exec = exec_of(first);
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->exec.ino, st.st_ino);
  EXPECT_EQ(exec->exec.size, static_cast<uint64_t>(st.st_size));
  (*tracer)->Quiet(exec->exec);
  const std::vector<ctx_event> quiet = run(false);
  EXPECT_EQ(exec_of(quiet), nullptr);
  // The child's exit still came: the drain saw its events.
  ASSERT_EQ(quiet.size(), 1u);
  EXPECT_EQ(quiet[0].type, EV_PROC_EXIT);
  EXPECT_NE(exec_of(run(true)), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TracerTest,
                         ::testing::Combine(::testing::Values("go1.27/stripped", "go1.19/pie",
                                                              "go1.23/pieext"),
                                            ::testing::Values(Tracer::Links::kMultiWhenSupported,
                                                              Tracer::Links::kPerProbe)),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param);
                           for (char& c : n)
                             if (c == '.' || c == '/') c = '_';
                           return n + "_" + LinksName(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace ctxagent
