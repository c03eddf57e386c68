// The web page end to end: `ctxagent daemon` traces the demo (demo/leakysvc) and the broken_chain
// scenario; headless Chromium loads the page it serves. Asserts the graph JSON (the broken edge
// between the right sites, the orphaned site's live contexts) and the DOM (that edge drawn red
// dashed, the live count on the orphaned site, a real click on a site listing its goroutines), the
// page `attach -o html FILE` exports, and leaves a screenshot per program in the build directory.
#include <signal.h>

#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"
#include "tests/e2e/process_runner.h"
#include "tests/web/browser.h"

namespace ctxagent {
namespace {

using testing::Browser;
using testing::Child;
using testing::HttpGet;

// The line of `file` holding `needle` (1-based), 0 if none: expectations follow the source.
int LineOf(const std::string& file, const std::string& needle) {
  std::ifstream in(file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (absl::StrContains(line, needle)) return n;
  }
  return 0;
}

nlohmann::json GetJson(int port, const std::string& path) {
  testing::HttpResult r = HttpGet(port, path);
  if (r.status != 200) return nullptr;
  return nlohmann::json::parse(r.body, nullptr, false);
}

// The node of `graph` for contexts created at `line` of a file named `base`.
std::optional<nlohmann::json> NodeAt(const nlohmann::json& graph, const std::string& base,
                                     int line) {
  for (const auto& n : graph["nodes"]) {
    if (n["type"] == "contexts" && n["site"]["line"] == line &&
        absl::EndsWith(n["site"]["file"].get<std::string>(), "/" + base)) {
      return n;
    }
  }
  return std::nullopt;
}

// What one traced program must show: the broken link `from` -> `to` (lines of `file`) and,
// optionally, an orphaned site.
struct Expect {
  std::string name;
  std::string file;  // source file name, as symbolized
  int from = 0, to = 0;
  int orphaned = 0;  // 0: none expected
};

class WebPageE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    CTXAGENT_REQUIRE_BPF();
    demo_ = std::make_unique<Child>(Child::Start({CTXAGENT_DEMO_BIN}));
    ASSERT_TRUE(demo_->WaitForLine("listening", absl::Seconds(20)));
    scenario_ = std::make_unique<Child>(
        Child::Start({std::string(CTXAGENT_SCENARIO_BIN) + "/go1.27/broken_chain", "-rate", "10"}));
    ASSERT_TRUE(scenario_->WaitForLine("ready", absl::Seconds(20)));
    daemon_ =
        testing::StartDaemon(CTXAGENT_BIN,
                             {"--include=binary:leakysvc,binary:broken_chain", "--grace=1s",
                              "--leak_after=2s", "--min_count=3", "--budget=0", "--refresh=500ms"},
                             std::string(CTXAGENT_WEB_OUT) + "/daemon.log");
    ASSERT_NE(daemon_.port, 0) << daemon_.process->Log();
  }
  void TearDown() override {
    if (daemon_.process) daemon_.process->Stop(absl::Seconds(10));
    for (Child* c : {demo_.get(), scenario_.get()}) {
      if (c == nullptr) continue;
      c->Kill(SIGKILL);
      c->Wait(absl::Seconds(5));
    }
  }

  // Waits until the graph of `pid` has the broken edge (and the orphaned site's finding); returns
  // that graph, or null.
  nlohmann::json GraphWithFindings(pid_t pid, const Expect& e) {
    const absl::Time end = absl::Now() + absl::Seconds(40);
    nlohmann::json g;
    while (absl::Now() < end) {
      g = GetJson(daemon_.detail_port, absl::StrCat("/processes/", pid, "/graph"));
      if (g.is_object() && Broken(g, e).has_value() &&
          (e.orphaned == 0 || Orphaned(g, e).has_value())) {
        return g;
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
    ADD_FAILURE() << e.name << ": no broken edge " << e.file << ":" << e.from << " -> " << e.to
                  << (e.orphaned ? " or orphaned site" : "") << " in time; last graph:\n"
                  << g.dump(1);
    return nullptr;
  }
  std::optional<nlohmann::json> Broken(const nlohmann::json& g, const Expect& e) {
    auto from = NodeAt(g, e.file, e.from), to = NodeAt(g, e.file, e.to);
    if (!from || !to) return std::nullopt;
    for (const auto& edge : g["edges"]) {
      if (edge["type"] == "broken" && edge["from"] == (*from)["id"] && edge["to"] == (*to)["id"]) {
        return edge;
      }
    }
    return std::nullopt;
  }
  std::optional<nlohmann::json> Orphaned(const nlohmann::json& g, const Expect& e) {
    auto n = NodeAt(g, e.file, e.orphaned);
    if (!n || (*n)["live"].get<int>() < 3 || (*n)["findings"].empty()) return std::nullopt;
    for (const auto& f : g["findings"]) {
      if (f["kind"] == "orphaned_done" && f["node"] == (*n)["id"]) return n;
    }
    return std::nullopt;
  }

  void CheckPage(pid_t pid, const Expect& e, const nlohmann::json& graph) {
    auto browser = Browser::Launch(CTXAGENT_CHROMIUM, 1600, 1000);
    ASSERT_TRUE(browser.ok()) << browser.status();
    Browser& b = **browser;
    // A query string per process: a fresh page load (the server ignores it).
    ASSERT_TRUE(b.Navigate(absl::StrCat("http://127.0.0.1:", daemon_.detail_port, "/?p=", pid,
                                        "#pid=", pid))
                    .ok());
    const std::string from = (*NodeAt(graph, e.file, e.from))["id"];
    const std::string to = (*NodeAt(graph, e.file, e.to))["id"];
    // The broken link between the right sites, styled red dashed (computed style, not the class).
    auto style = b.WaitFor(
        absl::StrCat("(() => { const e = document.querySelector('path.edge.broken[data-from=\"",
                     from, "\"][data-to=\"", to,
                     "\"]'); if (!e) return null; const s = getComputedStyle(e); return {stroke: "
                     "s.stroke, dash: s.strokeDasharray}; })()"),
        absl::Seconds(20));
    ASSERT_TRUE(style.ok()) << e.name << ": " << style.status();
    EXPECT_EQ((*style)["stroke"], "rgb(255, 0, 0)") << style->dump();
    EXPECT_NE((*style)["dash"], "none") << style->dump();
    // Derivations are drawn solid green.
    auto derived = b.Eval(
        "(() => { const e = document.querySelector('path.edge.derived'); return e && "
        "[getComputedStyle(e).stroke, getComputedStyle(e).strokeDasharray]; })()");
    ASSERT_TRUE(derived.ok()) << derived.status();
    if (!derived->is_null()) {
      EXPECT_EQ((*derived)[0], "rgb(42, 157, 58)");
      EXPECT_EQ((*derived)[1], "none");
    }
    // The findings list links to the graph's nodes.
    auto links = b.Eval(
        "[...document.querySelectorAll('a.finding-link')].map(a => a.dataset.node)"
        ".filter(id => document.getElementById('node-' + id))");
    ASSERT_TRUE(links.ok());
    EXPECT_FALSE(links->empty()) << e.name;
    std::string clicked = to;
    if (e.orphaned) {
      const std::string orphan = (*NodeAt(graph, e.file, e.orphaned))["id"];
      auto live = b.Eval(absl::StrCat("(() => { const n = document.getElementById('node-", orphan,
                                      "'); return n && [n.classList.contains('leaking'), "
                                      "Number(n.querySelector('text.counts').dataset.live), "
                                      "n.querySelector('text.counts').textContent]; })()"));
      ASSERT_TRUE(live.ok()) << live.status();
      ASSERT_TRUE(live->is_array()) << "no node " << orphan;
      EXPECT_TRUE((*live)[0].get<bool>());
      EXPECT_GE((*live)[1].get<int>(), 3);
      EXPECT_TRUE(absl::StrContains((*live)[2].get<std::string>(), "live ")) << live->dump();
      clicked = orphan;
    }
    // A real click on the site lists its goroutines.
    ASSERT_TRUE(b.ClickOn(absl::StrCat("#node-", clicked, " rect")).ok());
    auto rows = b.WaitFor(
        "(() => { const r = [...document.querySelectorAll('#detail-body tr.goroutine-row')]; "
        "return r.length ? r.map(x => x.textContent) : null; })()",
        absl::Seconds(10));
    ASSERT_TRUE(rows.ok()) << e.name << ": clicking " << clicked << " listed no goroutines";
    EXPECT_TRUE(b.Eval(absl::StrCat("document.getElementById('node-", clicked,
                                    "').classList.contains('selected')"))
                    .value_or(false));
    auto timing = b.Eval("window.ctxagentTiming");
    ASSERT_TRUE(timing.ok());
    printf("[web] %s: %s\n", e.name.c_str(), timing->dump().c_str());
    EXPECT_TRUE(b.Screenshot(absl::StrCat(CTXAGENT_WEB_OUT, "/", e.name, ".png")).ok());
  }

  std::unique_ptr<Child> demo_, scenario_;
  testing::DaemonHandle daemon_;
};

TEST_F(WebPageE2e, DemoAndBrokenChainScenario) {
  const std::string demo_src = std::string(CTXAGENT_SOURCE_DIR) + "/demo/leakysvc/main.go";
  const Expect demo{"leakysvc", "main.go", LineOf(demo_src, "context.WithTimeout(r.Context()"),
                    LineOf(demo_src, "context.WithTimeout(context.Background(), time.Hour)"),
                    LineOf(demo_src, "context.WithCancel(context.Background())")};
  const std::string bc_src = std::string(CTXAGENT_SCENARIO_SRC) + "/broken_chain/main.go";
  const Expect scenario{"broken_chain", "main.go", LineOf(bc_src, "context.WithCancel(root)"),
                        LineOf(bc_src, "// want: broken_chain"), 0};
  ASSERT_TRUE(demo.from && demo.to && demo.orphaned && scenario.from && scenario.to);

  nlohmann::json g = GraphWithFindings(demo_->pid(), demo);
  ASSERT_TRUE(g.is_object());
  const nlohmann::json broken = *Broken(g, demo);
  EXPECT_GE(broken["count"].get<int>(), 1);
  EXPECT_FALSE(broken["findings"].empty());
  // Detail of the orphaned site: its live contexts and the goroutines waiting on them.
  const std::string orphan = (*Orphaned(g, demo))["id"];
  nlohmann::json d =
      GetJson(daemon_.detail_port, absl::StrCat("/processes/", demo_->pid(), "/sites/", orphan));
  ASSERT_TRUE(d.is_object());
  EXPECT_GE(d["contexts"].size(), 3u);
  EXPECT_EQ(d["contexts"][0]["state"], "live");
  // The watchers (`go s.watch(ctx)`; since Go 1.22 their function is a gowrap wrapper).
  const int watch_line = LineOf(demo_src, "go s.watch(ctx)");
  bool watcher = false;
  for (const auto& gr : d["goroutines"]) watcher = watcher || gr["go_site"]["line"] == watch_line;
  EXPECT_TRUE(watcher) << d.dump(1);
  printf("[web] leakysvc graph: %zu nodes, %zu edges, %zu bytes of JSON\n", g["nodes"].size(),
         g["edges"].size(), g.dump().size());
  CheckPage(demo_->pid(), demo, g);

  // `attach -o html FILE`: the final state as one self-contained page, loaded from the file.
  const std::string exported = std::string(CTXAGENT_WEB_OUT) + "/leakysvc_export.html";
  Child agent = Child::Start({CTXAGENT_BIN, "attach", std::to_string(demo_->pid()), exported, "-o",
                              "html", "--duration=6s", "--grace=1s", "--leak_after=2s",
                              "--min_count=3", "--budget=0", "--refresh=500ms"},
                             /*merge_stderr=*/true);
  const std::string agent_out = agent.ReadAll(absl::Seconds(60));
  ASSERT_EQ(agent.Wait(absl::Seconds(10)), 0) << agent_out;
  auto browser = Browser::Launch(CTXAGENT_CHROMIUM, 1600, 1000);
  ASSERT_TRUE(browser.ok()) << browser.status();
  ASSERT_TRUE((*browser)->Navigate("file://" + exported).ok());
  // Node ids are the exporting agent's own: the broken edge is found by its ends' sites.
  auto ends = (*browser)->WaitFor(
      "(() => { const e = document.querySelector('path.edge.broken'); if (!e) return null; "
      "const site = (id) => document.querySelector('#node-' + id + ' > title').textContent"
      ".split('\\n')[0]; return [site(e.dataset.from), site(e.dataset.to), "
      "document.getElementById('status').textContent]; })()",
      absl::Seconds(20));
  ASSERT_TRUE(ends.ok()) << ends.status();
  EXPECT_TRUE(absl::EndsWith((*ends)[0].get<std::string>(), absl::StrCat("/main.go:", demo.from)))
      << ends->dump();
  EXPECT_TRUE(absl::EndsWith((*ends)[1].get<std::string>(), absl::StrCat("/main.go:", demo.to)))
      << ends->dump();
  EXPECT_EQ((*ends)[2], "exported snapshot");
  browser->reset();

  nlohmann::json s = GraphWithFindings(scenario_->pid(), scenario);
  ASSERT_TRUE(s.is_object());
  CheckPage(scenario_->pid(), scenario, s);
}

}  // namespace
}  // namespace ctxagent
