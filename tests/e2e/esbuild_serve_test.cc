// A real program nobody here wrote: esbuild's `--serve` mode (a stripped release binary from npm,
// linked without .go.buildinfo) under a few hundred HTTP requests. net/http makes a context per
// connection and per request and cancels each when done: all must be seen, attributed to their
// own cancel, and produce no finding.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// One HTTP/1.1 GET on a fresh connection; true on a 200 answer.
bool Get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return false;
  }
  std::string req =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, n);
  close(fd);
  return resp.rfind("HTTP/1.1 200", 0) == 0;
}

TEST(EsbuildServeTest, PerRequestContextsAreSeenCancelledAndHealthy) {
  CTXAGENT_REQUIRE_BPF();
  const std::string esbuild = CTXAGENT_ESBUILD;
  ASSERT_TRUE(std::ifstream(esbuild).good()) << esbuild << " missing (target esbuild_binaries)";
  const std::string www = ::testing::TempDir() + "/ctxagent_www";
  system(("mkdir -p " + www).c_str());
  std::ofstream(www + "/index.html") << "<h1>ctxagent</h1>\n";

  const int port = FreePort();
  testing::Child server = testing::Child::Start(
      {esbuild, absl::StrCat("--serve=127.0.0.1:", port), "--servedir=" + www}, true);
  ASSERT_TRUE(server.WaitForLine("127.0.0.1", absl::Seconds(10))) << "esbuild did not start";

  testing::Child agent = testing::Child::Start(
      {CTXAGENT_BIN, "attach", std::to_string(server.pid()), "-o", "json", "--duration=6s",
       "--grace=1s", "--leak_after=2s", "--budget=0", "--mark_every=2s"},
      /*merge_stderr=*/true);
  ASSERT_TRUE(agent.WaitForLine("attached to pid", absl::Seconds(20)));
  constexpr int kRequests = 300;
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) ok += Get(port, "/index.html") ? 1 : 0;
  EXPECT_EQ(ok, kRequests);

  std::string out = agent.ReadAll(absl::Seconds(30));
  ASSERT_EQ(agent.Wait(absl::Seconds(5)), 0) << out;
  nlohmann::json summary;
  int findings = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (j["type"] == "summary") summary = j;
    if (j["type"] == "finding") ++findings;
  }
  ASSERT_FALSE(summary.is_null()) << out;
  EXPECT_EQ(findings, 0) << out;
  // Decided from the heap marks' facts (two at least), not from history alone.
  EXPECT_GE(summary["heap_marks"]["count"].get<uint64_t>(), 2u) << out;
  EXPECT_EQ(summary["heap_marks"]["stopped"], "") << out;
  EXPECT_EQ(summary["events_lost"].get<uint64_t>(), 0u);
  // A connection context and a request context per request, each cancelled by its own server code.
  uint64_t per_request = 0, per_conn = 0;
  for (const auto& s : summary["top_sites"]) {
    std::string fn = s["site"]["function"];
    if (fn == "net/http.(*conn).readRequest") per_request = s["cancelled"];
    if (fn == "net/http.(*conn).serve") per_conn = s["cancelled"];
  }
  EXPECT_EQ(per_request, static_cast<uint64_t>(kRequests)) << summary.dump(2);
  EXPECT_EQ(per_conn, static_cast<uint64_t>(kRequests)) << summary.dump(2);
  EXPECT_GE(summary["cancelled"]["own"].get<uint64_t>(), 2u * kRequests);
  EXPECT_EQ(summary["live_contexts"].get<uint64_t>(), 0u) << summary.dump(2);
  server.Kill(SIGTERM);
}

}  // namespace
}  // namespace ctxagent
