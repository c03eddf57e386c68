#include "agent/trace/goroutines.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "symbols/go_binary.h"

namespace ctxagent {
namespace {

// tests/fixtures/gostates: parks 7 goroutines (main.main.func1..7) and `extra` more
// (main.main.func8), prints its channels' and context's addresses and the runtime's own goroutine
// dump, then "END".
class GoStates {
 public:
  GoStates(const std::string& path, int extra) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      const std::string arg = absl::StrCat(extra);
      execl(path.c_str(), path.c_str(), arg.c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    char buf[4096];
    ssize_t n;
    while (!absl::StrContains(output_, "END\n") && (n = read(out[0], buf, sizeof(buf))) > 0) {
      output_.append(buf, n);
    }
    close(out[0]);
  }
  ~GoStates() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  uint64_t Address(const std::string& name) const {
    for (absl::string_view line : absl::StrSplit(output_, '\n')) {
      uint64_t a = 0;
      if (absl::ConsumePrefix(&line, name + " 0x") && absl::SimpleHexAtoi(line, &a)) return a;
    }
    return 0;
  }
  // goid -> state between the brackets of the dump's headers.
  std::map<uint64_t, std::string> DumpStates() const {
    std::map<uint64_t, std::string> out;
    for (absl::string_view line : absl::StrSplit(output_, '\n')) {
      uint64_t goid = 0;
      if (!absl::ConsumePrefix(&line, "goroutine ")) continue;
      const size_t open = line.find(" ["), close = line.find(']');
      if (open == line.npos || close == line.npos || !absl::SimpleAtoi(line.substr(0, open), &goid))
        continue;
      absl::string_view state = line.substr(open + 2, close - open - 2);
      out[goid] = std::string(state.substr(0, state.find(", ")));
    }
    return out;
  }

 private:
  pid_t pid_ = -1;
  std::string output_;
};

class GoroutineReaderTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoroutineReaderTest, ReadsStatesChannelsAndSitesOfALiveProcess) {
  const std::string path = GetParam();
  if (access(path.c_str(), X_OK) != 0) GTEST_FAIL() << path << " not built";
  // More goroutines than the reader takes in one chunk (4096).
  constexpr int kExtra = 5000;
  GoStates prog(path, kExtra);
  auto bin = symbols::GoBinary::Open(path);
  ASSERT_TRUE(bin.ok()) << bin.status();
  Process process(prog.pid());
  auto bias = process.LoadBias((*bin)->elf());
  ASSERT_TRUE(bias.ok()) << bias.status();
  SiteTable sites;
  Decoder decoder(**bin, process, *bias, sites);
  EventClock clock;
  GoroutineReader reader(**bin, process, *bias, decoder, clock, uint64_t{64} << 20);
  std::map<uint64_t, GoroutineState> all;
  for (GoroutineState& s : reader.ReadAll()) all[s.goid] = s;
  int compared = 0;
  std::map<std::string, const GoroutineState*> by_function;
  for (const auto& [goid, state] : prog.DumpStates()) {
    if (state == "running") continue;  // main, parked since
    ASSERT_TRUE(all.count(goid)) << "goroutine " << goid;
    EXPECT_EQ(all[goid].state, state) << "goroutine " << goid;
    EXPECT_EQ(sites.Get(all[goid].go_site).function, "main.main");
    by_function[all[goid].start_function] = &all[goid];
    ++compared;
  }
  EXPECT_EQ(compared, 7 + kExtra);
  const uint64_t recv = prog.Address("recv"), send = prog.Address("send");
  const uint64_t done = prog.Address("done");
  ASSERT_TRUE(by_function.count("main.main.func1") && by_function.count("main.main.func2"));
  EXPECT_EQ(by_function["main.main.func1"]->channels, std::vector<uint64_t>{recv});
  EXPECT_FALSE(by_function["main.main.func1"]->in_select);
  EXPECT_EQ(by_function["main.main.func2"]->channels.size(), 2u);
  EXPECT_TRUE(by_function["main.main.func2"]->in_select);
  EXPECT_EQ(by_function["main.main.func3"]->channels, std::vector<uint64_t>{send});
  EXPECT_EQ(by_function["main.main.func7"]->channels, std::vector<uint64_t>{done});
  EXPECT_TRUE(by_function["main.main.func5"]->channels.empty()) << "a mutex waiter: no channel";
  EXPECT_EQ(reader.DoneChannels({{prog.Address("ctx"), ContextKind::kCancel}}),
            std::vector<uint64_t>{done});
  // Asked by goid: a g that holds another goroutine is unknown, never someone else's state.
  const GoroutineState& func4 = *by_function["main.main.func4"];
  auto asked = reader.Read({{func4.goid, func4.g}, {func4.goid + 1000, func4.g}});
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_TRUE(asked[0].known);
  EXPECT_EQ(asked[0].state, "sleep");
  EXPECT_FALSE(asked[1].known);
  EXPECT_GT(reader.cost().bytes, 0u);
  EXPECT_GT(reader.cost().goroutines, 7u);
}

std::vector<std::string> Fixtures() {
  std::vector<std::string> out;
  for (const char* v : {"1.19", "1.21", "1.22", "1.23", "1.24", "1.26", "1.27"}) {
    for (const char* variant : {"default", "stripped", "pie"}) {
      const std::string path =
          absl::StrCat(CTXAGENT_GO_FIXTURE_DIR, "/gostates/go", v, "/", variant);
      if (access(path.c_str(), X_OK) == 0) out.push_back(path);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoroutineReaderTest, ::testing::ValuesIn(Fixtures()),
                         [](const auto& info) {
                           std::string n = info.param.substr(info.param.find("/go1") + 1);
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace ctxagent
