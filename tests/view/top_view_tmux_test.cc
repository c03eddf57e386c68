// `ctxagent attach`'s live top view in a real terminal: tmux at 80x24 and 200x50 while it traces
// the demo (demo/leakysvc). Both of the demo's findings must be on the screen, under the header,
// without scrolling; each screen is saved in the build directory.
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

using testing::Child;

// tmux on a socket of its own: nothing of a user's tmux is touched.
class Tmux {
 public:
  Tmux() : socket_(absl::StrCat("ctxagent-test-", getpid())) {}
  ~Tmux() { Run({"kill-server"}); }
  std::string Run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {CTXAGENT_TMUX, "-L", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    Child c = Child::Start(argv, /*merge_stderr=*/true);
    std::string out = c.ReadAll(absl::Seconds(10));
    c.Wait(absl::Seconds(10));
    return out;
  }

 private:
  std::string socket_;
};

class TopViewTmux : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(TopViewTmux, BothFindingsVisibleWithoutScrolling) {
  CTXAGENT_REQUIRE_BPF();
  ASSERT_EQ(access(CTXAGENT_TMUX, X_OK), 0) << CTXAGENT_TMUX << " missing: scripts/install-deps.sh";
  const auto [cols, rows] = GetParam();
  Child demo = Child::Start({CTXAGENT_DEMO_BIN});
  ASSERT_TRUE(demo.WaitForLine("listening", absl::Seconds(20)));
  Tmux tmux;
  const std::string cmd =
      absl::StrCat(CTXAGENT_BIN, " attach ", demo.pid(),
                   " --grace=1s --leak_after=2s --min_count=3 --budget=0 --refresh=500ms");
  tmux.Run(
      {"new-session", "-d", "-s", "top", "-x", absl::StrCat(cols), "-y", absl::StrCat(rows), cmd});
  std::string screen;
  const absl::Time end = absl::Now() + absl::Seconds(40);
  bool both = false;
  while (!both && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(500));
    screen = tmux.Run({"capture-pane", "-p", "-t", "top"});
    both =
        absl::StrContains(screen, "! broken_chain") && absl::StrContains(screen, "! orphaned_done");
  }
  std::ofstream(absl::StrCat(CTXAGENT_VIEW_OUT, "/top_", cols, "x", rows, ".txt")) << screen;
  ASSERT_TRUE(both) << "after 40 s the screen shows:\n" << screen;
  std::vector<std::string> lines = absl::StrSplit(screen, '\n');
  ASSERT_FALSE(lines.empty());
  // Nothing scrolled off: the header is still the first line.
  EXPECT_TRUE(absl::StartsWith(lines[0], "ctxagent pid ")) << screen;
  EXPECT_LE(static_cast<int>(lines.size()), rows + 1) << screen;
  // The site tree follows the findings and fills the rest of the screen.
  EXPECT_TRUE(absl::StrContains(screen, "SITES")) << screen;
  const std::string pane_size =
      tmux.Run({"display-message", "-p", "-t", "top", "#{pane_width}x#{pane_height}"});
  EXPECT_EQ(pane_size, absl::StrCat(cols, "x", rows, "\n"));
  demo.Kill(9);
  demo.Wait(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Sizes, TopViewTmux,
                         ::testing::Values(std::make_pair(80, 24), std::make_pair(200, 50)),
                         [](const auto& info) {
                           return absl::StrCat(info.param.first, "x", info.param.second);
                         });

}  // namespace
}  // namespace ctxagent
