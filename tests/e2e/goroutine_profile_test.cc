// `ctxagent profile` against the runtime's own profiles of the same process, on every toolchain
// (stripped binaries): pprofprog parks goroutines in many ways and serves net/http/pprof. For every
// goroutine parked for more than a second, the stack of ctxagent's debug=2 dump must equal the
// runtime's frame for frame (function, file, line, offset) for >= 99% of them, with the same wait
// reason and "created by" lines; the debug=0 profiles, read by Debian's `go tool pprof -raw`, must
// count the same goroutines per stack; `-top` and `-traces` must read every profile kind.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"
#include "tests/e2e/toolchains.h"

namespace ctxagent {
namespace {

constexpr char kGo[] = "/usr/lib/go-1.27/bin/go";  // Debian's Go, its pprof

struct Dumped {
  std::string state;
  std::vector<std::string> frames;  // "function\n\tfile:line +0xoff", argument words dropped
  std::string created;              // "created by ...\n\tfile:line +0xoff"
};

// A debug=2 dump by goid.
std::map<uint64_t, Dumped> ParseDump(const std::string& dump) {
  std::map<uint64_t, Dumped> out;
  static const std::regex kHeader(
      R"(^goroutine (\d+)(?: gp=\S+ m=\S+(?: mp=\S+)?)? \[([^\]]*)\]:)");
  Dumped* g = nullptr;
  std::vector<std::string> lines = absl::StrSplit(dump, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (std::regex_search(lines[i], m, kHeader)) {
      g = &out[std::stoull(m[1])];
      g->state = m[2];
      continue;
    }
    if (g == nullptr || lines[i].empty() || lines[i][0] == '\t' || i + 1 >= lines.size()) continue;
    if (absl::StartsWith(lines[i], "created by ")) {
      g->created = absl::StrCat(lines[i], "\n", lines[i + 1]);
    } else if (size_t open = lines[i].rfind('('); open != std::string::npos) {
      g->frames.push_back(absl::StrCat(lines[i].substr(0, open), "\n", lines[i + 1]));
    }
  }
  return out;
}

bool Transient(const std::string& state) {
  return absl::StartsWith(state, "running") || absl::StartsWith(state, "runnable") ||
         absl::StartsWith(state, "syscall");
}

bool ServesHttp(const Dumped& d) { return absl::StrContains(d.created, "net/http."); }

std::string Shell(const std::string& command, int* status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  *status = pclose(p);
  return out;
}

// `go tool pprof -raw`'s samples as count per stack, each location written "function file:line"
// for all its (inlined) lines; stacks through net/http are left out (the request's own).
std::map<std::string, int64_t> RawStacks(const std::string& file) {
  int status = -1;
  const std::string raw = Shell(absl::StrCat(kGo, " tool pprof -raw ", file, " 2>&1"), &status);
  EXPECT_EQ(status, 0) << raw;
  std::map<std::string, std::string> locations;
  std::vector<std::pair<int64_t, std::vector<std::string>>> samples;
  enum { kNone, kSamples, kLocations } section = kNone;
  std::string last;
  for (absl::string_view line : absl::StrSplit(raw, '\n')) {
    if (absl::StartsWith(line, "Samples:")) section = kSamples;
    if (absl::StartsWith(line, "Locations")) section = kLocations;
    if (absl::StartsWith(line, "Mappings")) section = kNone;
    const std::vector<std::string> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (section == kSamples && w.size() >= 2 && absl::EndsWith(w[0], ":")) {
      samples.push_back({std::stoll(std::string(absl::StripSuffix(w[0], ":"))), {}});
      for (size_t i = 1; i < w.size(); ++i) samples.back().second.push_back(w[i]);
    } else if (section == kLocations && w.size() >= 5 && absl::EndsWith(w[0], ":")) {
      last = std::string(absl::StripSuffix(w[0], ":"));  // "1: 0xaddr M=1 fn file:line s=0"
      locations[last] = absl::StrCat(w[3], " ", w[4]);
    } else if (section == kLocations && w.size() >= 2 && !last.empty()) {
      absl::StrAppend(&locations[last], "|", w[0], " ", w[1]);  // an inlined caller's line
    }
  }
  std::map<std::string, int64_t> out;
  for (const auto& [count, ids] : samples) {
    std::vector<std::string> frames;
    for (const std::string& id : ids) frames.push_back(locations[id]);
    std::string key = absl::StrJoin(frames, ";");
    if (!absl::StrContains(key, "net/http.")) out[key] += count;
  }
  return out;
}

class GoroutineProfileTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoroutineProfileTest, EqualsTheRuntimesOwnProfiles) {
  const std::string bin = absl::StrCat(CTXAGENT_PPROFPROG, "/go", GetParam(), "/pprofprog");
  const int port = testing::FreeLoopbackPort();
  testing::Child prog = testing::Child::Start({bin, "-addr", absl::StrCat("127.0.0.1:", port)});
  ASSERT_TRUE(prog.WaitForLine("ready", absl::Seconds(20)));
  absl::SleepFor(absl::Milliseconds(1500));  // every goroutine compared parked for over a second
  const std::string dir = ::testing::TempDir() + "/goroutine_profile_" + GetParam();
  ASSERT_EQ(system(absl::StrCat("mkdir -p ", dir).c_str()), 0);
  const std::string pid = std::to_string(prog.pid());
  int status = -1;
  const std::string ours =
      Shell(absl::StrCat(CTXAGENT_BIN, " profile ", pid, " -o text 2>&1"), &status);
  ASSERT_EQ(status, 0) << ours;
  for (const char* type : {"goroutine", "create", "leak"}) {
    const std::string out = Shell(absl::StrCat(CTXAGENT_BIN, " profile ", pid, " ", dir, "/", type,
                                               ".pb.gz --type ", type, " --mark_every=1s 2>&1"),
                                  &status);
    ASSERT_EQ(status, 0) << type << ": " << out;
  }
  const testing::HttpResult dump = testing::HttpGet(port, "/debug/pprof/goroutine?debug=2");
  const testing::HttpResult proto = testing::HttpGet(port, "/debug/pprof/goroutine?debug=0");
  ASSERT_EQ(dump.status, 200);
  ASSERT_EQ(proto.status, 200);
  std::ofstream(dir + "/runtime.pb.gz", std::ios::binary) << proto.body;

  // debug=2, goroutine by goroutine.
  const std::map<uint64_t, Dumped> runtime_view = ParseDump(dump.body);
  const std::map<uint64_t, Dumped> agent_view = ParseDump(ours);
  int compared = 0, equal = 0, frames = 0, equal_frames = 0;
  for (const auto& [goid, r] : runtime_view) {
    if (Transient(r.state) || ServesHttp(r)) continue;
    auto it = agent_view.find(goid);
    ASSERT_NE(it, agent_view.end()) << "goroutine " << goid << " [" << r.state << "] missing\n"
                                    << ours;
    const Dumped& a = it->second;
    EXPECT_EQ(a.state, r.state) << "goroutine " << goid;
    EXPECT_EQ(a.created, r.created) << "goroutine " << goid;
    ++compared;
    equal += a.frames == r.frames;
    EXPECT_EQ(absl::StrJoin(a.frames, "\n"), absl::StrJoin(r.frames, "\n")) << "goroutine " << goid;
    for (size_t i = 0; i < r.frames.size(); ++i) {
      ++frames;
      equal_frames += i < a.frames.size() && a.frames[i] == r.frames[i];
    }
  }
  EXPECT_GE(compared, 27);
  EXPECT_GE(equal * 100, compared * 99) << equal << " of " << compared << " stacks equal";
  printf("[profile] go%s: %d/%d parked goroutines' stacks equal (%d/%d frames, %.2f%%)\n",
         GetParam().c_str(), equal, compared, equal_frames, frames,
         frames ? 100.0 * equal_frames / frames : 0.0);

  // debug=0: the same goroutines per stack.
  const std::map<std::string, int64_t> runtime_raw = RawStacks(dir + "/runtime.pb.gz");
  const std::map<std::string, int64_t> agent_raw = RawStacks(dir + "/goroutine.pb.gz");
  int64_t same = 0, total = 0;
  for (const auto& [stack, count] : agent_raw) {
    auto it = runtime_raw.find(stack);
    const int64_t theirs = it == runtime_raw.end() ? 0 : it->second;
    EXPECT_EQ(count, theirs) << stack;
    total += count;
    same += std::min(count, theirs);
  }
  EXPECT_GE(total, 27);
  printf("[profile] go%s: debug=0 %zu stacks, %lld/%lld goroutines counted alike\n",
         GetParam().c_str(), agent_raw.size(), static_cast<long long>(same),
         static_cast<long long>(total));

  for (const char* type : {"goroutine", "create", "leak"}) {
    for (const char* view : {"-top", "-traces"}) {
      const std::string out = Shell(
          absl::StrCat(kGo, " tool pprof ", view, " ", dir, "/", type, ".pb.gz 2>&1"), &status);
      EXPECT_EQ(status, 0) << type << " " << view << ": " << out;
      EXPECT_TRUE(absl::StrContains(out, "main.") || std::string(type) == "leak")
          << type << " " << view << ": " << out;
    }
  }
  prog.Kill(SIGKILL);
  prog.Wait(absl::Seconds(5));
}

// `ctxagent attach` on `pid`, serving the detail endpoints on `http`.
testing::Child AttachServing(pid_t pid, int http) {
  return testing::Child::Start({CTXAGENT_BIN, "attach", std::to_string(pid), "-o", "json",
                                "--duration=60s", absl::StrCat("--http=127.0.0.1:", http)},
                               true);
}

// The same profiles from the detail endpoints (here attach's --http), with net/http/pprof's
// parameters, paced: a second read at once gets the first answer.
TEST(PprofEndpointsTest, ServeTheProfilesAsNetHttpPprofDoes) {
  CTXAGENT_REQUIRE_BPF();
  const std::string bin = absl::StrCat(CTXAGENT_PPROFPROG, "/go1.27/pprofprog");
  const int port = testing::FreeLoopbackPort();
  testing::Child prog = testing::Child::Start({bin, "-addr", absl::StrCat("127.0.0.1:", port)});
  ASSERT_TRUE(prog.WaitForLine("ready", absl::Seconds(20)));
  const int http = testing::FreeLoopbackPort();
  testing::Child agent = AttachServing(prog.pid(), http);
  ASSERT_TRUE(agent.WaitForLine("serving /processes", absl::Seconds(30)));
  absl::SleepFor(absl::Milliseconds(1500));
  const std::string base = absl::StrCat("/processes/", prog.pid(), "/pprof/");
  const testing::HttpResult ours = testing::HttpGet(http, base + "goroutine?debug=2");
  const testing::HttpResult dump = testing::HttpGet(port, "/debug/pprof/goroutine?debug=2");
  ASSERT_EQ(ours.status, 200) << ours.body;
  const std::map<uint64_t, Dumped> runtime_view = ParseDump(dump.body);
  const std::map<uint64_t, Dumped> agent_view = ParseDump(ours.body);
  int compared = 0;
  for (const auto& [goid, r] : runtime_view) {
    if (Transient(r.state) || ServesHttp(r)) continue;
    ASSERT_TRUE(agent_view.count(goid)) << goid;
    EXPECT_EQ(absl::StrJoin(agent_view.at(goid).frames, "\n"), absl::StrJoin(r.frames, "\n"));
    ++compared;
  }
  EXPECT_GE(compared, 27);
  EXPECT_EQ(testing::HttpGet(http, base + "goroutine?debug=2").body, ours.body) << "paced";
  const std::string dir = ::testing::TempDir();
  for (const char* path : {"goroutine", "goroutineleak", "goroutinecreate"}) {
    const testing::HttpResult proto = testing::HttpGet(http, base + path);
    ASSERT_EQ(proto.status, 200) << path << ": " << proto.body;
    const std::string file = absl::StrCat(dir, "/endpoint_", path, ".pb.gz");
    std::ofstream(file, std::ios::binary) << proto.body;
    int status = -1;
    const std::string top = Shell(absl::StrCat(kGo, " tool pprof -top ", file, " 2>&1"), &status);
    EXPECT_EQ(status, 0) << path << ": " << top;
    const testing::HttpResult text = testing::HttpGet(http, base + path + "?debug=1");
    EXPECT_TRUE(absl::StartsWith(text.body, absl::StrCat(path, " profile: total "))) << text.body;
  }
  agent.Kill(SIGINT);
  agent.Wait(absl::Seconds(20));
  prog.Kill(SIGKILL);
  prog.Wait(absl::Seconds(5));
}

// A delta over a window in which pprofprog spawned once (19 goroutines): exactly those, and no
// stack that stayed the same (main.main and its signal loop count 0, summed over their labels); a
// duration of the window's 4 s.
void ExpectSpawnedDelta(const std::string& file) {
  std::map<std::string, int64_t> by_function;
  int64_t total = 0;
  for (const auto& [stack, count] : RawStacks(file)) {
    // Summed over labels: the signal loop ran and parked again, its `waited` label lost.
    if (absl::StrContains(stack, "main.main")) EXPECT_EQ(count, 0) << "unchanged: " << stack;
    std::smatch m;
    if (std::regex_search(stack, m, std::regex(R"(main\.(\w+) )"))) by_function[m[1]] += count;
    total += count;
  }
  for (const char* f : {"receiver", "sender", "selector", "sleeper", "locker", "waiter",
                        "condWaiter", "reader", "watch"}) {
    EXPECT_EQ(by_function[f], 2) << f << " in " << file;
  }
  EXPECT_EQ(by_function["forever"], 1) << file;
  EXPECT_EQ(total, 19) << file;
  int status = -1;
  const std::string raw = Shell(absl::StrCat(kGo, " tool pprof -raw ", file, " 2>&1"), &status);
  EXPECT_TRUE(std::regex_search(raw, std::regex(R"(Duration: [4-6]\.\d\d\n)"))) << raw;
}

// `seconds`: net/http/pprof's delta profile. pprofprog starts 19 goroutines (two of each parked
// kind, one more `select {}`) on SIGUSR1 in the middle of the window: the delta, read by `go tool
// pprof -raw`, holds exactly those and no stack that stayed the same. Meanwhile the server answers
// other requests at once: pending deltas hold no worker thread (a client may have 4 pending).
TEST(PprofEndpointsTest, DeltaCountsWhatChangedWithoutHoldingTheServer) {
  CTXAGENT_REQUIRE_BPF();
  const std::string bin = absl::StrCat(CTXAGENT_PPROFPROG, "/go1.27/pprofprog");
  testing::Child prog = testing::Child::Start({bin});
  ASSERT_TRUE(prog.WaitForLine("ready", absl::Seconds(20)));
  const int http = testing::FreeLoopbackPort();
  testing::Child agent = AttachServing(prog.pid(), http);
  ASSERT_TRUE(agent.WaitForLine("serving /processes", absl::Seconds(30)));
  const std::string base = absl::StrCat("/processes/", prog.pid(), "/pprof/");
  for (const char* bad : {"goroutine?seconds=0", "goroutine?seconds=x", "goroutine?seconds=61",
                          "goroutine?seconds=5&debug=1", "goroutinecreate?seconds=5"}) {
    EXPECT_EQ(testing::HttpGet(http, base + bad).status, 400) << bad;
  }
  // `ctxagent profile --seconds` over the same window.
  const std::string cli_file = ::testing::TempDir() + "/cli_goroutine_delta.pb.gz";
  int cli_status = -1;
  std::string cli_out;
  std::thread cli([&] {
    cli_out = Shell(
        absl::StrCat(CTXAGENT_BIN, " profile ", prog.pid(), " ", cli_file, " --seconds=4 2>&1"),
        &cli_status);
  });
  // As many deltas as the server has worker threads.
  std::vector<testing::HttpResult> deltas(4);
  std::vector<std::thread> pending;
  for (testing::HttpResult& d : deltas) {
    pending.emplace_back(
        [&] { d = testing::HttpGet(http, base + "goroutine?seconds=4", absl::Seconds(20)); });
  }
  absl::SleepFor(absl::Seconds(1));
  const absl::Time asked = absl::Now();
  EXPECT_EQ(testing::HttpGet(http, "/processes").status, 200);
  EXPECT_EQ(testing::HttpGet(http, base + "goroutine?debug=1").status, 200);
  EXPECT_LT(absl::Now() - asked, absl::Seconds(1)) << "answered while deltas are pending";
  EXPECT_EQ(testing::HttpGet(http, base + "goroutine?seconds=4").status, 429) << "a fifth";
  ASSERT_EQ(kill(prog.pid(), SIGUSR1), 0);
  ASSERT_TRUE(prog.WaitForLine("spawned", absl::Seconds(2)));
  for (std::thread& t : pending) t.join();
  for (const testing::HttpResult& d : deltas) ASSERT_EQ(d.status, 200) << d.body;
  cli.join();
  ASSERT_EQ(cli_status, 0) << cli_out;
  ExpectSpawnedDelta(cli_file);
  const std::string file = ::testing::TempDir() + "/endpoint_goroutine_delta.pb.gz";
  std::ofstream(file, std::ios::binary) << deltas[0].body;
  ExpectSpawnedDelta(file);
  // The leak kind's delta is a profile pprof reads too (nothing proven leaked appears in 1 s).
  const testing::HttpResult leak = testing::HttpGet(http, base + "goroutineleak?seconds=1");
  ASSERT_EQ(leak.status, 200) << leak.body;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << leak.body;
  int status = -1;
  Shell(absl::StrCat(kGo, " tool pprof -raw ", file, " 2>&1"), &status);
  EXPECT_EQ(status, 0);
  agent.Kill(SIGINT);
  agent.Wait(absl::Seconds(20));
  prog.Kill(SIGKILL);
  prog.Wait(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Toolchains, GoroutineProfileTest,
                         ::testing::ValuesIn(testing::GoVersions()), testing::ToolchainTestName);
// Position-independent executables (a load bias on every address), old and new toolchains.
INSTANTIATE_TEST_SUITE_P(Pie, GoroutineProfileTest, ::testing::ValuesIn(testing::PieGoVersions()),
                         testing::ToolchainTestName);

}  // namespace
}  // namespace ctxagent
