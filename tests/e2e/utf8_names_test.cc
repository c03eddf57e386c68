// A Go program whose executable name and source paths are not UTF-8 (built in a directory whose
// name has byte 0xff, so every file name in its pclntab has it too) must abort nothing (issue 13:
// it killed the daemon on GET /processes): `symbols -o json`, `attach -o json`, `attach --http` and
// the daemon's /processes, /processes/<pid>/tree and .../findings all answer valid JSON, with the
// byte shown as \xff.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

namespace fs = std::filesystem;
using testing::HttpGet;

// Every line of `out` is a JSON document.
void ExpectJsonLines(const std::string& out, const std::string& what) {
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded())
        << what << ": " << line;
    ++lines;
  }
  EXPECT_GT(lines, 0) << what;
}

class Utf8NamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CTXAGENT_REQUIRE_BPF();
    std::vector<std::string> versions =
        absl::StrSplit(CTXAGENT_GO_VERSIONS, ',', absl::SkipEmpty());
    ASSERT_FALSE(versions.empty());
    const std::string v = versions.back();
    dir_ = absl::StrCat(::testing::TempDir(), "/ctxagent_utf8_\xff_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& f :
         fs::directory_iterator(std::string(CTXAGENT_SCENARIO_SRC) + "/../fixtures/ctxprog")) {
      fs::copy_file(f.path(), dir_ + "/" + f.path().filename().string());
    }
    bin_ = dir_ + "/ctx\xffprog";
    // The fixtures' Go cache (GO_FIXTURE_DIR/../gocache) keeps this build to seconds.
    const std::string build = absl::StrCat(
        "cd '", dir_, "' && GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOPATH='", dir_,
        "/gopath' GOCACHE='", CTXAGENT_GO_FIXTURE_DIR, "/../gocache/go", v, "' /usr/lib/go-", v,
        "/bin/go build -o '", bin_, "' . >'", dir_, "/build.log' 2>&1");
    ASSERT_EQ(system(build.c_str()), 0) << build;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string dir_, bin_;
};

TEST_F(Utf8NamesTest, SymbolsAttachAndDaemonStayUpAndEscapeTheByte) {
  testing::Child sym = testing::Child::Start({CTXAGENT_BIN, "symbols", bin_, "-o", "json"});
  const std::string sym_out = sym.ReadAll(absl::Seconds(60));
  EXPECT_EQ(sym.Wait(absl::Seconds(10)), 0);
  auto sj = nlohmann::json::parse(sym_out, nullptr, false);
  ASSERT_FALSE(sj.is_discarded()) << sym_out.substr(0, 300);
  EXPECT_TRUE(absl::StrContains(sj.value("binary", ""), "ctx\\xffprog")) << sj.value("binary", "");

  testing::Child target = testing::Child::Start({bin_, "-loop", "-n", "3"});
  ASSERT_TRUE(target.WaitForLine("ready", absl::Seconds(20)));
  const int http_port = testing::FreeLoopbackPort();
  testing::Child attach =
      testing::Child::Start({CTXAGENT_BIN, "attach", absl::StrCat(target.pid()), "--duration=6s",
                             "-o", "json", absl::StrCat("--http=127.0.0.1:", http_port)});
  // attach --http: the same per-process endpoints as the daemon, for the attached process.
  testing::HttpResult listed;
  for (absl::Time end = absl::Now() + absl::Seconds(20); absl::Now() < end;) {
    listed = HttpGet(http_port, "/processes");
    if (listed.status == 200) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(listed.status, 200);
  auto lj = nlohmann::json::parse(listed.body, nullptr, false);
  ASSERT_TRUE(lj.is_array() && lj.size() == 1) << listed.body;
  EXPECT_EQ(lj[0]["pid"], target.pid());
  EXPECT_EQ(lj[0]["binary"], "ctx\\xffprog");
  absl::SleepFor(absl::Seconds(2));
  testing::HttpResult tree = HttpGet(http_port, absl::StrCat("/processes/", target.pid(), "/tree"));
  EXPECT_EQ(tree.status, 200);
  EXPECT_FALSE(nlohmann::json::parse(tree.body, nullptr, false).is_discarded()) << tree.body;
  EXPECT_EQ(HttpGet(http_port, "/processes/1/tree").status, 404);
  const std::string attach_out = attach.ReadAll(absl::Seconds(60));
  EXPECT_EQ(attach.Wait(absl::Seconds(20)), 0) << attach_out;
  ExpectJsonLines(attach_out, "attach -o json");
  EXPECT_TRUE(absl::StrContains(attach_out, "ctxagent_utf8_\\\\xff")) << attach_out.substr(0, 2000);

  const std::string log = ::testing::TempDir() + "/ctxagent_utf8_daemon.log";
  testing::DaemonHandle daemon =
      testing::StartDaemon(CTXAGENT_BIN, {"--include=binary:ctx*prog", "--refresh=1s"}, log);
  ASSERT_GT(daemon.port, 0) << daemon.process->Log();
  std::optional<nlohmann::json> entry;
  for (absl::Time end = absl::Now() + absl::Seconds(30); absl::Now() < end && !entry;) {
    entry = testing::ProcessEntry(testing::Processes(daemon.detail_port), target.pid());
    if (!entry) absl::SleepFor(absl::Milliseconds(300));
  }
  ASSERT_TRUE(entry.has_value()) << daemon.process->Log();
  EXPECT_EQ((*entry)["binary"], "ctx\\xffprog");
  absl::SleepFor(absl::Seconds(2));
  for (const char* leaf : {"tree", "findings"}) {
    testing::HttpResult r =
        HttpGet(daemon.detail_port, absl::StrCat("/processes/", target.pid(), "/", leaf));
    EXPECT_EQ(r.status, 200) << leaf;
    EXPECT_FALSE(nlohmann::json::parse(r.body, nullptr, false).is_discarded()) << leaf << r.body;
    if (std::string(leaf) == "tree") {
      EXPECT_TRUE(absl::StrContains(r.body, "ctxagent_utf8_\\\\xff")) << r.body.substr(0, 2000);
    }
  }
  EXPECT_EQ(HttpGet(daemon.port, "/healthz").status, 200);
  EXPECT_TRUE(daemon.process->Running());
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
  target.Kill(SIGTERM);
  EXPECT_EQ(target.Wait(absl::Seconds(10)), 0) << "the target's own self-check";
}

}  // namespace
}  // namespace ctxagent
