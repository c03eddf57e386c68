// `ctxagent daemon` scraped by a real Prometheus server loaded with the repository's alert rules
// (deploy/prometheus/ctxagent-rules.yml, every `for:` shortened to 0s, expressions unchanged): the
// leak alerts fire for the leaking scenario programs and never for the healthy ones. Also checks
// the daemon's own endpoints: /healthz, /readyz, /processes, /processes/<pid>/{findings,tree},
// /metrics.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

using testing::Child;
using testing::DaemonHandle;
using testing::HttpGet;
using testing::LoggedProcess;

const std::string kScenarios = std::string(CTXAGENT_SCENARIO_BIN) + "/go1.27";
const std::vector<std::string> kLeaking = {"lost_cancel", "orphaned_done"};
const std::vector<std::string> kHealthy = {"healthy_http", "healthy_request_scoped"};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The repository's rules with every `for: <duration>` replaced by `for: 0s`; counts the rewrites.
std::string RulesWithoutFor(const std::string& rules, int* rewritten) {
  std::vector<std::string> out;
  *rewritten = 0;
  for (absl::string_view line : absl::StrSplit(rules, '\n')) {
    absl::string_view body = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(body, "for:")) {
      out.push_back(absl::StrCat(line.substr(0, line.size() - body.size()), "for: 0s"));
      ++*rewritten;
    } else {
      out.emplace_back(line);
    }
  }
  return absl::StrJoin(out, "\n");
}

// A Prometheus server on a free loopback port, scraping the daemon every second.
struct PrometheusServer {
  std::unique_ptr<LoggedProcess> process;
  int port = 0;
};

PrometheusServer StartPrometheus(const std::string& dir, int daemon_port,
                                 const std::string& rules) {
  const std::string config = dir + "/prometheus.yml";
  std::ofstream(config) << "global:\n"
                           "  scrape_interval: 1s\n"
                           "  scrape_timeout: 1s\n"
                           "  evaluation_interval: 1s\n"
                           "rule_files:\n"
                           "  - "
                        << rules
                        << "\n"
                           "scrape_configs:\n"
                           "  - job_name: ctxagent\n"
                           "    honor_labels: true\n"
                           "    static_configs:\n"
                           "      - targets: ['127.0.0.1:"
                        << daemon_port << "']\n";
  PrometheusServer s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = testing::FreeLoopbackPort();
    std::filesystem::remove_all(dir + "/data");
    s.process = LoggedProcess::Start(
        {CTXAGENT_PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + dir + "/data",
         absl::StrCat("--web.listen-address=127.0.0.1:", port), "--log.level=warn"},
        dir + "/prometheus.log");
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline && s.process->Running()) {
      if (HttpGet(port, "/-/ready", absl::Seconds(2)).status == 200) {
        s.port = port;
        return s;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (s.process->Running()) return s;
    if (!absl::StrContains(s.process->Log(), "address already in use")) return s;
  }
  return s;
}

// GET <path> from Prometheus's HTTP API; the "data" member (null on any failure).
nlohmann::json PromApi(int port, const std::string& path) {
  testing::HttpResult r = HttpGet(port, path);
  if (r.status != 200) return nullptr;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("status", "") != "success") return nullptr;
  return j["data"];
}

TEST(DaemonPrometheusTest, LeakAlertsFireForLeakingProgramsOnly) {
  CTXAGENT_REQUIRE_BPF();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(std::filesystem::exists(CTXAGENT_PROMETHEUS))
      << CTXAGENT_PROMETHEUS << " missing: scripts/install-deps.sh installs the prometheus package";
  for (const std::vector<std::string>* names : {&kLeaking, &kHealthy}) {
    for (const std::string& n : *names) {
      ASSERT_TRUE(std::filesystem::exists(kScenarios + "/" + n))
          << n << " not built (scenario_binaries)";
    }
  }
  const std::string dir =
      ::testing::TempDir() + "/ctxagent_daemon_prometheus_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  // The repository's rules, with the waiting times removed.
  int rewritten = 0;
  const std::string rules = dir + "/ctxagent-rules.yml";
  std::ofstream(rules) << RulesWithoutFor(ReadFile(CTXAGENT_RULES), &rewritten);
  ASSERT_GT(rewritten, 0) << "no `for:` in " << CTXAGENT_RULES;

  // The daemon traces only the four programs of this test (other tests' programs may be running).
  std::vector<std::string> include;
  for (const std::vector<std::string>* names : {&kLeaking, &kHealthy}) {
    for (const std::string& n : *names) include.push_back("binary:" + n);
  }
  DaemonHandle daemon =
      testing::StartDaemon(CTXAGENT_BIN,
                           {"--refresh=1s", "--grace=1s", "--leak_after=2s", "--min_count=3",
                            "--include=" + absl::StrJoin(include, ",")},
                           dir + "/daemon.log");
  ASSERT_GT(daemon.port, 0) << "daemon not ready:\n" << daemon.process->Log();
  EXPECT_EQ(HttpGet(daemon.port, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(daemon.port, "/readyz").status, 200);

  std::map<std::string, Child> programs;
  for (const std::vector<std::string>* names : {&kLeaking, &kHealthy}) {
    for (const std::string& n : *names) {
      programs.emplace(n, Child::Start({kScenarios + "/" + n}));
      ASSERT_TRUE(programs.at(n).WaitForLine("ready pid=", absl::Seconds(10)))
          << n << " did not start";
    }
  }

  PrometheusServer prom = StartPrometheus(dir, daemon.port, rules);
  ASSERT_GT(prom.port, 0) << "prometheus not ready:\n" << (prom.process ? prom.process->Log() : "");

  // The rule file loaded as written: every alert of the repository's file is known to Prometheus.
  nlohmann::json groups = PromApi(prom.port, "/api/v1/rules");
  ASSERT_TRUE(groups.is_object()) << prom.process->Log();
  std::set<std::string> alert_names;
  for (const auto& g : groups["groups"]) {
    for (const auto& r : g["rules"]) {
      if (r.value("type", "") == "alerting") {
        alert_names.insert(r["name"].get<std::string>());
        EXPECT_EQ(r.value("duration", -1.0), 0.0) << r.dump();
      }
    }
  }
  ASSERT_TRUE(alert_names.count("CtxagentContextLeak")) << groups.dump();
  ASSERT_TRUE(alert_names.count("CtxagentOrphanedDoneWaiters")) << groups.dump();

  // Poll the alerts until both leaks fire; remember every alert seen in any state.
  const std::map<std::string, std::string> expected = {
      {"lost_cancel", "CtxagentContextLeak"}, {"orphaned_done", "CtxagentOrphanedDoneWaiters"}};
  std::set<std::pair<std::string, std::string>> firing;  // (alertname, binary)
  std::vector<std::string> healthy_alerts;
  auto poll_alerts = [&] {
    nlohmann::json data = PromApi(prom.port, "/api/v1/alerts");
    if (!data.is_object()) return;
    for (const auto& a : data["alerts"]) {
      const std::string name = a["labels"].value("alertname", "");
      const std::string binary = a["labels"].value("binary", "");
      if (absl::StartsWith(binary, "healthy_")) healthy_alerts.push_back(a.dump());
      if (a.value("state", "") == "firing") firing.insert({name, binary});
    }
  };
  auto all_fired = [&] {
    for (const auto& [binary, alert] : expected) {
      if (!firing.count({alert, binary})) return false;
    }
    return true;
  };
  const absl::Time alert_deadline = absl::Now() + absl::Seconds(45);
  while (!all_fired() && absl::Now() < alert_deadline) {
    poll_alerts();
    absl::SleepFor(absl::Milliseconds(500));
  }
  const absl::Duration time_to_fire = absl::Now() - start;
  std::string seen;
  for (const auto& [n, b] : firing) absl::StrAppend(&seen, n, "{binary=", b, "} ");
  for (const auto& [binary, alert] : expected) {
    EXPECT_TRUE(firing.count({alert, binary}))
        << alert << " did not fire for " << binary << "; firing: " << seen << "\nmetrics:\n"
        << HttpGet(daemon.port, "/metrics").body;
  }
  // A few more evaluations: the healthy programs still produce no alert, pending or firing.
  for (int i = 0; i < 8; ++i) {
    poll_alerts();
    absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_TRUE(healthy_alerts.empty()) << absl::StrJoin(healthy_alerts, "\n");
  fprintf(stderr, "alerts fired %.1fs after the test started: %s\n",
          absl::ToDoubleSeconds(time_to_fire), seen.c_str());

  // Prometheus scraped the daemon: the target is up and ctxagent_build_info arrived.
  nlohmann::json up =
      PromApi(prom.port, "/api/v1/query?query=" + testing::UrlEncode("up{job=\"ctxagent\"}"));
  ASSERT_TRUE(up.is_object());
  ASSERT_EQ(up["result"].size(), 1u) << up.dump();
  EXPECT_EQ(up["result"][0]["value"][1], "1") << up.dump();
  nlohmann::json info = PromApi(prom.port, "/api/v1/query?query=ctxagent_build_info");
  ASSERT_TRUE(info.is_object());
  ASSERT_EQ(info["result"].size(), 1u) << info.dump();
  EXPECT_FALSE(info["result"][0]["metric"].value("version", "").empty()) << info.dump();

  // The daemon's own endpoints.
  EXPECT_EQ(HttpGet(daemon.port, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(daemon.port, "/readyz").status, 200);
  testing::HttpResult metrics = HttpGet(daemon.port, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  std::vector<testing::Sample> samples = testing::ParseMetrics(metrics.body);
  std::vector<testing::Sample> build = testing::Find(samples, "ctxagent_build_info");
  ASSERT_EQ(build.size(), 1u) << metrics.body;
  EXPECT_EQ(build[0].value, 1);
  EXPECT_TRUE(build[0].labels.count("version")) << metrics.body;
  for (const std::string& n : kHealthy) {
    EXPECT_TRUE(testing::Find(samples, "ctxagent_findings", {{"binary", n}}).empty())
        << metrics.body;
  }
  for (const auto& [binary, kind] : std::map<std::string, std::string>{
           {"lost_cancel", "lost_cancel"}, {"orphaned_done", "orphaned_done"}}) {
    EXPECT_FALSE(
        testing::Find(samples, "ctxagent_findings", {{"binary", binary}, {"kind", kind}}).empty())
        << metrics.body;
  }
  nlohmann::json processes = testing::Processes(daemon.detail_port);
  ASSERT_TRUE(processes.is_array());
  for (auto& [name, child] : programs) {
    auto entry = testing::ProcessEntry(processes, child.pid());
    ASSERT_TRUE(entry.has_value())
        << name << " pid " << child.pid() << " not in " << processes.dump();
    EXPECT_EQ((*entry)["binary"], name);
    EXPECT_TRUE(absl::StartsWith((*entry)["go_version"].get<std::string>(), "go1.27"))
        << entry->dump();
    const bool leaking = !absl::StartsWith(name, "healthy_");
    if (leaking) {
      EXPECT_GT((*entry)["findings"].get<int>(), 0) << entry->dump();
    } else {
      EXPECT_EQ((*entry)["findings"].get<int>(), 0) << entry->dump();
    }
    testing::HttpResult f =
        HttpGet(daemon.detail_port, absl::StrCat("/processes/", child.pid(), "/findings"));
    ASSERT_EQ(f.status, 200) << name;
    auto fj = nlohmann::json::parse(f.body, nullptr, false);
    ASSERT_TRUE(fj.is_array()) << f.body;
    if (leaking) {
      std::set<std::string> kinds;
      for (const auto& x : fj) kinds.insert(x.value("kind", ""));
      EXPECT_TRUE(kinds.count(name)) << name << ": " << f.body;
    } else {
      EXPECT_TRUE(fj.empty()) << name << ": " << f.body;
    }
    testing::HttpResult t =
        HttpGet(daemon.detail_port, absl::StrCat("/processes/", child.pid(), "/tree"));
    ASSERT_EQ(t.status, 200) << name;
    EXPECT_FALSE(nlohmann::json::parse(t.body, nullptr, false).is_discarded()) << t.body;
  }
  EXPECT_EQ(HttpGet(daemon.detail_port, "/processes/999999999/findings").status, 404);
  // Posture: what Prometheus scrapes carries no trees, findings or source paths.
  EXPECT_EQ(HttpGet(daemon.port, "/processes").status, 404);
  EXPECT_EQ(
      HttpGet(daemon.port, absl::StrCat("/processes/", programs.begin()->second.pid(), "/tree"))
          .status,
      404);

  // Stop everything: the daemon exits 0 on SIGTERM, Prometheus shuts down cleanly.
  for (auto& [name, child] : programs) {
    child.Kill(SIGKILL);
    child.Wait(absl::Seconds(5));
  }
  EXPECT_EQ(prom.process->Stop(absl::Seconds(20)), 0) << prom.process->Log();
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
  fprintf(stderr, "test took %.1fs\n", absl::ToDoubleSeconds(absl::Now() - start));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ctxagent
