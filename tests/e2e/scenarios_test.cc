// The scenario suite end to end: every program of tests/scenarios, built with every toolchain, runs
// while a real `ctxagent attach` traces it; the findings must be exactly those its source declares
// with `// want: <kind>` (kind and line), nothing extra. Prints precision and recall per toolchain.
// A program that records the cancel funcs it drops (harness.Dropped) is also held to them: a lost
// cancel or timer build-up the heap marks decided names a context it dropped.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/process_runner.h"

namespace ctxagent {
namespace {

using Finding = std::tuple<std::string, std::string, int>;  // kind, file basename, line

std::string Base(const std::string& path) { return path.substr(path.rfind('/') + 1); }

std::vector<std::string> Scenarios() {
  std::vector<std::string> out;
  DIR* d = opendir(CTXAGENT_SCENARIO_SRC);
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name[0] == '.' || name == "internal") continue;
    std::ifstream main_go(absl::StrCat(CTXAGENT_SCENARIO_SRC, "/", name, "/main.go"));
    if (main_go.good()) out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// `// want: <kind>`, or `// want: <kind> (not go1.N, sampled, ...: why)` for a finding sometimes
// missed on those toolchains or modes: there it is neither required nor a false
// positive (added to `optional`).
std::set<Finding> Expected(const std::string& scenario, const std::string& toolchain,
                           const std::string& mode, std::set<Finding>& optional) {
  std::set<Finding> out;
  static const std::regex kWant(R"(//\s*want:\s*([a-z_]+)(\s*\(not ([a-z0-9., ]+):)?)");
  std::string dir = absl::StrCat(CTXAGENT_SCENARIO_SRC, "/", scenario);
  DIR* d = opendir(dir.c_str());
  while (dirent* e = d ? readdir(d) : nullptr) {
    std::string name = e->d_name;
    if (name.size() < 3 || name.substr(name.size() - 3) != ".go") continue;
    std::ifstream in(dir + "/" + name);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      std::smatch m;
      if (!std::regex_search(line, m, kWant)) continue;
      const std::vector<std::string> unless = absl::StrSplit(std::string(m[3]), ", ");
      const bool here =
          absl::c_linear_search(unless, toolchain) || absl::c_linear_search(unless, mode);
      (here ? optional : out).insert({m[1], name, n});
    }
  }
  if (d) closedir(d);
  return out;
}

struct Outcome {
  std::string scenario;
  std::set<Finding> expected, got;
  std::string raw;
  double sampling_ratio = 1;  // share of the time the probes were attached
  int checked_drops = 0;      // findings checked against what the program dropped
};

// How the agent's probes are on: "full" (--budget=0), "default" (the default budget: sampling
// wherever its controller decides it), "sampled" (a fixed duty cycle: on 1 s in every 4 s, so
// that most of each program's life is seen only by memory reads between windows).
std::vector<std::string> ModeFlags(const std::string& mode) {
  if (mode == "full") return {"--budget=0"};
  if (mode == "sampled") return {"--duty_cycle=1s/4s"};
  return {};
}

// The addresses a program recorded with harness.Dropped ("dropped 0x...").
std::set<std::string> Dropped(const std::string& record) {
  std::set<std::string> out;
  std::ifstream in(record);
  for (std::string line; std::getline(in, line);) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "dropped ")) out.emplace(v);
  }
  return out;
}

// Runs these scenarios at once, each traced by its own agent, and returns what each reported.
std::vector<Outcome> RunAtOnce(const std::string& bin_dir,
                               const std::vector<std::string>& scenarios, const std::string& mode) {
  std::vector<testing::Child> programs, agents;
  std::vector<Outcome> outcomes;
  auto record = [](const std::string& s) {
    return absl::StrCat(::testing::TempDir(), "/", getpid(), "-", s, ".record");
  };
  for (const auto& s : scenarios) {
    unlink(record(s).c_str());
    programs.push_back(
        testing::Child::Start({bin_dir + "/" + s, "-rate", "10", "-record", record(s)}));
    EXPECT_TRUE(programs.back().WaitForLine("ready", absl::Seconds(20))) << s << " did not start";
  }
  for (size_t i = 0; i < scenarios.size(); ++i) {
    std::vector<std::string> argv = {CTXAGENT_BIN, "attach", std::to_string(programs[i].pid()),
                                     "-o", "json", "--duration=" CTXAGENT_E2E_DURATION,
                                     "--grace=1s", "--leak_after=2s", "--min_count=3",
                                     "--refresh=500ms",
                                     // Two heap marks within the run whatever its start.
                                     "--mark_every=2s"};
    for (const std::string& flag : ModeFlags(mode)) argv.push_back(flag);
    agents.push_back(testing::Child::Start(argv));
  }
  for (size_t i = 0; i < scenarios.size(); ++i) {
    std::set<Finding> optional;
    Outcome o{scenarios[i],
              Expected(scenarios[i], bin_dir.substr(bin_dir.rfind('/') + 1), mode, optional),
              {},
              agents[i].ReadAll(absl::Seconds(90))};
    EXPECT_EQ(agents[i].Wait(absl::Seconds(10)), 0) << scenarios[i] << ": agent failed:\n" << o.raw;
    bool summary = false;
    for (absl::string_view line : absl::StrSplit(o.raw, '\n', absl::SkipEmpty())) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      if (j["type"] == "summary") {
        summary = true;
        EXPECT_EQ(j["events_lost"].get<uint64_t>(), 0u) << scenarios[i];
        o.sampling_ratio = j["sampling_ratio"].get<double>();
      }
      if (j["type"] != "finding") continue;
      const std::string kind = j["kind"];
      o.got.insert(
          {kind, Base(j["site"]["file"].get<std::string>()), j["site"]["line"].get<int>()});
      // Goroutines ignoring a cancellation sleep, and those stranded on a Done channel wait, in
      // the program's own code: that line is named.
      if (mode == "full" && (kind == "ignored_cancel" || kind == "orphaned_done")) {
        EXPECT_TRUE(j.contains("blocked_at") &&
                    std::ifstream(absl::StrCat(CTXAGENT_SCENARIO_SRC, "/", scenarios[i], "/",
                                               Base(j["blocked_at"].value("file", ""))))
                        .good())
            << scenarios[i] << ": not stuck in the program's code: " << line;
      }
      // What the program dropped, checked where the marks decided (history counts held ones too).
      const bool from_marks = j.contains("decided_by") && j["decided_by"].is_object();
      if (from_marks && (kind == "lost_cancel" || kind == "timer_buildup")) {
        const std::set<std::string> dropped = Dropped(record(scenarios[i]));
        if (!dropped.empty()) {
          EXPECT_TRUE(dropped.count(j["context"].value("addr", "")))
              << scenarios[i] << ": the finding's context is not one the program dropped: " << line;
          EXPECT_LE(j["count"].get<size_t>(), dropped.size()) << scenarios[i] << ": " << line;
          ++o.checked_drops;
        }
      }
      // Unpaced marks run every 2 s: what decides that nothing can cancel a finding's contexts is
      // two of them (under the budget's pacer a mark may come late: history decides meanwhile).
      // A broken chain or an ignored cancellation by goroutines started with the context rests on
      // history, which the marks may only confirm.
      if (mode == "full" &&
          (kind == "lost_cancel" || kind == "timer_buildup" || kind == "orphaned_done")) {
        const nlohmann::json& d = j["decided_by"];
        EXPECT_TRUE(d.is_object() && d["marks"].size() == 2u)
            << scenarios[i] << ": not decided by the marks: " << line;
      }
    }
    EXPECT_TRUE(summary) << scenarios[i] << ": no summary in agent output:\n" << o.raw;
    for (const Finding& f : optional) o.got.erase(f);
    outcomes.push_back(std::move(o));
  }
  for (auto& p : programs) {
    p.Kill(SIGKILL);
    p.Wait(absl::Seconds(5));
  }
  return outcomes;
}

// (toolchain, mode)
class ScenarioSuite : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ScenarioSuite, FindingsMatchExpectations) {
  CTXAGENT_REQUIRE_BPF();
  const auto& [version, mode] = GetParam();
  const std::string bin_dir = absl::StrCat(CTXAGENT_SCENARIO_BIN, "/go", version);
  std::vector<std::string> scenarios = Scenarios();
  ASSERT_GE(scenarios.size(), 10u);

  // Every scenario of this toolchain at once, each with its own agent; sampled, a third at a
  // time: each probe detach waits for an RCU grace period under a kernel-wide mutex
  // (perf_uprobe_destroy), so 21 agents switching every few seconds would stall each other for
  // seconds, which one agent per node never does.
  const size_t batch = mode == "sampled" ? (scenarios.size() + 2) / 3 : scenarios.size();
  std::vector<Outcome> outcomes;
  for (size_t from = 0; from < scenarios.size(); from += batch) {
    std::vector<std::string> some(scenarios.begin() + from,
                                  scenarios.begin() + std::min(scenarios.size(), from + batch));
    for (Outcome& o : RunAtOnce(bin_dir, some, mode)) outcomes.push_back(std::move(o));
  }

  int tp = 0, fp = 0, fn = 0, sampled = 0, checked_drops = 0;
  for (const Outcome& o : outcomes) {
    if (o.sampling_ratio < 1) ++sampled;
    checked_drops += o.checked_drops;
    for (const Finding& f : o.got) (o.expected.count(f) ? tp : fp)++;
    for (const Finding& f : o.expected) fn += o.got.count(f) ? 0 : 1;
    auto str = [](const std::set<Finding>& s) {
      std::vector<std::string> v;
      for (const auto& [k, f, l] : s) v.push_back(absl::StrCat(k, "@", f, ":", l));
      return v.empty() ? std::string("none") : absl::StrJoin(v, ", ");
    };
    EXPECT_EQ(o.got, o.expected) << "go" << version << " " << o.scenario << ": expected "
                                 << str(o.expected) << ", got " << str(o.got) << "\n"
                                 << o.raw;
  }
  printf(
      "[accuracy] go%s %s: %d true positives, %d false positives, %d missed; precision %.2f "
      "recall %.2f (%d of %zu programs sampled)\n",
      version.c_str(), mode.c_str(), tp, fp, fn, tp + fp ? double(tp) / (tp + fp) : 1.0,
      tp + fn ? double(tp) / (tp + fn) : 1.0, sampled, outcomes.size());
  // Unpaced marks decide every lost cancel and timer build-up: each is checked against the drops.
  if (mode == "full") EXPECT_GE(checked_drops, 2) << "findings checked against recorded drops";
}

std::vector<std::string> Versions() {
  std::vector<std::string> v = absl::StrSplit(CTXAGENT_GO_VERSIONS, ',', absl::SkipEmpty());
  return v;
}

INSTANTIATE_TEST_SUITE_P(Toolchains, ScenarioSuite,
                         ::testing::Combine(::testing::ValuesIn(Versions()),
                                            ::testing::Values("full", "default", "sampled")),
                         [](const auto& info) {
                           std::string n = "go" + std::get<0>(info.param);
                           std::replace(n.begin(), n.end(), '.', '_');
                           return n + "_" + std::get<1>(info.param);
                         });

}  // namespace
}  // namespace ctxagent
