// Real programs nobody here wrote, under a few hundred HTTP requests while a real `ctxagent attach`
// traces them with heap marks every 2 s: net/http makes a context per connection and per request
// and cancels each when done. All must be seen, attributed to their own cancel, and produce no
// finding.
//  - esbuild's `--serve` mode: the stripped release binaries from npm (tests/realbin), go1.17 to
//    go1.26 (from 0.27 on without .go.buildinfo);
//  - Debian's caddy (go1.19, stripped) as a reverse proxy in front of its own file server: client
//    and server contexts, a transport's pooled connections.
#include <signal.h>
#include <stdlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"
#include "tests/realbin/realbin_list.h"

namespace ctxagent {
namespace {

constexpr int kRequests = 300;

struct Traced {
  nlohmann::json summary;
  int findings = 0;
  std::string out;
  // `cancelled` of the summary's top site in `function`.
  uint64_t Cancelled(const std::string& function) const {
    for (const auto& s : summary["top_sites"]) {
      if (s["site"]["function"] == function) return s["cancelled"];
    }
    return 0;
  }
};

// Attaches to `server` (listening on `port`), sends kRequests GETs of `path`, and returns what
// the agent reported.
Traced TraceUnderLoad(testing::Child& server, int port, const std::string& path) {
  Traced t;
  testing::Child agent = testing::Child::Start(
      {CTXAGENT_BIN, "attach", std::to_string(server.pid()), "-o", "json", "--duration=6s",
       "--grace=1s", "--leak_after=2s", "--budget=0", "--mark_every=2s"},
      /*merge_stderr=*/true);
  EXPECT_TRUE(agent.WaitForLine("attached to pid", absl::Seconds(20)));
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) ok += testing::HttpGet(port, path).status == 200 ? 1 : 0;
  EXPECT_EQ(ok, kRequests);
  t.out = agent.ReadAll(absl::Seconds(30));
  EXPECT_EQ(agent.Wait(absl::Seconds(5)), 0) << t.out;
  for (absl::string_view line : absl::StrSplit(t.out, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (j["type"] == "summary") t.summary = j;
    if (j["type"] == "finding") ++t.findings;
  }
  return t;
}

// Silent, decided from the heap marks' facts (two at least), nothing lost, at most `max_live`
// contexts left live (connections still open).
void ExpectHealthy(const Traced& t, uint64_t max_live) {
  ASSERT_FALSE(t.summary.is_null()) << t.out;
  EXPECT_EQ(t.findings, 0) << t.out;
  EXPECT_GE(t.summary["heap_marks"]["count"].get<uint64_t>(), 2u) << t.out;
  EXPECT_EQ(t.summary["heap_marks"]["stopped"], "") << t.out;
  EXPECT_EQ(t.summary["events_lost"].get<uint64_t>(), 0u);
  EXPECT_LE(t.summary["live_contexts"].get<uint64_t>(), max_live) << t.summary.dump(2);
}

std::string TempDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  EXPECT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/index.html") << "<h1>ctxagent</h1>\n";
  return dir;
}

// Every esbuild release of tests/realbin that ctxagent supports (go1.17 to go1.26): its contexts
// seen and attributed, and its heap marked from outside on every release, the heap layouts of
// 1.17, 1.18 and 1.20 included (their table entries were read in these very binaries).
class EsbuildServeTest : public ::testing::TestWithParam<testing::RealBinary> {};

TEST_P(EsbuildServeTest, IsSeenCancelledAndHealthy) {
  CTXAGENT_REQUIRE_BPF();
  const std::string esbuild = GetParam().path;
  ASSERT_TRUE(std::ifstream(esbuild).good()) << esbuild << " missing (target esbuild_binaries)";
  const std::string www = TempDir("ctxagent_www");
  const int port = testing::FreeLoopbackPort();
  testing::Child server = testing::Child::Start(
      {esbuild, absl::StrCat("--serve=127.0.0.1:", port), "--servedir=" + www}, true);
  ASSERT_TRUE(server.WaitForLine("127.0.0.1", absl::Seconds(10))) << "esbuild did not start";
  const Traced t = TraceUnderLoad(server, port, "/index.html");
  ExpectHealthy(t, 0);
  EXPECT_GT(t.summary["heap_marks"]["spans"].get<uint64_t>(), 0u) << t.out;
  EXPECT_GT(t.summary["heap_marks"]["objects_marked"].get<uint64_t>(), 0u) << t.out;
  // A connection context and a request context per request, each cancelled by its own server code.
  EXPECT_EQ(t.Cancelled("net/http.(*conn).readRequest"), uint64_t{kRequests}) << t.summary.dump(2);
  EXPECT_EQ(t.Cancelled("net/http.(*conn).serve"), uint64_t{kRequests}) << t.summary.dump(2);
  EXPECT_GE(t.summary["cancelled"]["own"].get<uint64_t>(), 2u * kRequests);
  server.Kill(SIGTERM);
}

std::vector<testing::RealBinary> SupportedEsbuilds() {
  std::vector<testing::RealBinary> out;
  for (testing::RealBinary& b :
       testing::LoadRealBinaries(CTXAGENT_REALBIN_LIST, CTXAGENT_REALBIN_DIR)) {
    if (testing::GoMinor(b.go_version) >= 17) out.push_back(std::move(b));
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Releases, EsbuildServeTest, ::testing::ValuesIn(SupportedEsbuilds()),
                         [](const ::testing::TestParamInfo<testing::RealBinary>& info) {
                           return absl::StrReplaceAll(info.param.go_version, {{".", "_"}});
                         });

TEST(RealServersTest, CaddyReverseProxyIsSeenCancelledAndHealthy) {
  CTXAGENT_REQUIRE_BPF();
  const std::string caddy = CTXAGENT_CADDY;
  if (!std::ifstream(caddy).good()) {
    if (getenv("CI") != nullptr) FAIL() << caddy << " missing (scripts/install-deps.sh --test)";
    GTEST_SKIP() << caddy << " is not installed (Debian package caddy; CI installs it)";
  }
  const std::string dir = TempDir("ctxagent_caddy");
  const int front = testing::FreeLoopbackPort(), back = testing::FreeLoopbackPort();
  std::ofstream(dir + "/Caddyfile")
      << absl::StrCat("{\n\tadmin off\n\tauto_https off\n}\n", "http://127.0.0.1:", front,
                      " {\n\treverse_proxy 127.0.0.1:", back, "\n}\n", "http://127.0.0.1:", back,
                      " {\n\troot * ", dir, "\n\tfile_server\n}\n");
  // Its state (autosaved config, certificates) under the test's directory, not the user's.
  testing::Child server = testing::Child::Start(
      {"/usr/bin/env", "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, caddy, "run", "--adapter",
       "caddyfile", "--config", dir + "/Caddyfile"},
      true);
  ASSERT_TRUE(server.WaitForLine("serving initial configuration", absl::Seconds(10)))
      << "caddy did not start";
  const Traced t = TraceUnderLoad(server, front, "/index.html");
  // The proxy keeps its connections to the file server open (the server side's contexts live).
  ExpectHealthy(t, 4);
  // Every request through the proxy, and every request it forwards, cancelled by its server code.
  EXPECT_GE(t.Cancelled("net/http.(*conn).readRequest"), uint64_t{kRequests}) << t.summary.dump(2);
  EXPECT_GE(t.summary["cancelled"]["own"].get<uint64_t>(), 2u * kRequests);
  server.Kill(SIGTERM);
}

}  // namespace
}  // namespace ctxagent
