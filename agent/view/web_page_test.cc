#include "agent/view/web_page.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using Link = ParentLink::Type;
using ::testing::HasSubstr;
using ::testing::Not;

class WebPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SiteTable& s = lin_.sites();
    req_ = s.Intern({"main.handle", "/src/app/main.go", 30});
    const SiteId go_audit = s.Intern({"main.handle", "/src/app/main.go", 32});
    // A function name that is not UTF-8 and one that could close a <script> element.
    audit_ = s.Intern({"main.audit\xff</script>", "/src/app/audit.go", 7});
    for (int i = 0; i < 3; ++i) {
      lin_.OnContextCreated({t_,
                             2,
                             0x1000 + i * 0x10ull,
                             ContextKind::kCancel,
                             absl::InfiniteFuture(),
                             {{0x1, Link::kBackground}},
                             req_});
      lin_.OnGoroutineCreated({t_, 10u + i, 2, go_audit, "main.audit", {}});
      lin_.OnContextCreated({t_,
                             10u + i,
                             0x2000 + i * 0x10ull,
                             ContextKind::kTimer,
                             t_ + absl::Hours(1),
                             {{0x1, Link::kBackground}},
                             audit_});
      lin_.OnContextCancelled({t_, 2, 0x1000 + i * 0x10ull, CancelCause::kOwnCancel, req_});
    }
    t_ += absl::Seconds(10);
    findings_ = lin_.Evaluate(t_, FindingOptions{});
  }
  std::optional<GraphProcess> Lookup(int pid) {
    if (pid != 7) return std::nullopt;
    return GraphProcess{&lin_, &findings_, &growth_};
  }
  WebResponse Get(const std::string& path) {
    auto r = ServeGraphRoute(path, t_, [this](int pid, const auto& fn) {
      std::optional<GraphProcess> p = Lookup(pid);
      if (p) fn(*p);
      return p.has_value();
    });
    EXPECT_TRUE(r.has_value()) << path;
    return r.value_or(WebResponse{});
  }

  absl::Time t_ = absl::FromUnixSeconds(1795564800);
  ProcessLineage lin_{7};
  SiteGrowth growth_;
  SiteId req_, audit_;
  std::vector<Finding> findings_;
};

TEST_F(WebPageTest, GraphJsonHasTheContract) {
  WebResponse r = Get("/processes/7/graph");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  nlohmann::json j = nlohmann::json::parse(r.body);
  ASSERT_TRUE(j["nodes"].is_array());
  const std::string audit = absl::StrCat("s", audit_), req = absl::StrCat("s", req_);
  bool found_node = false, found_edge = false;
  for (const auto& n : j["nodes"]) {
    if (n["id"] != audit) continue;
    found_node = true;
    EXPECT_EQ(n["site"]["file"], "/src/app/audit.go");
    EXPECT_EQ(n["site"]["line"], 7);
    EXPECT_EQ(n["kind"], "timer");
    EXPECT_EQ(n["live"], 3);
    EXPECT_EQ(n["cancelled"], 0);
    EXPECT_EQ(n["findings"], nlohmann::json::array({0}));
  }
  for (const auto& e : j["edges"]) {
    if (e["type"] == "broken") {
      found_edge = true;
      EXPECT_EQ(e["from"], req);
      EXPECT_EQ(e["to"], audit);
    }
  }
  EXPECT_TRUE(found_node) << j.dump(2);
  EXPECT_TRUE(found_edge) << j.dump(2);
  ASSERT_EQ(j["findings"].size(), 1u);
  EXPECT_EQ(j["findings"][0]["node"], audit);
  EXPECT_EQ(j["findings"][0]["edge"]["from"], req);
}

TEST_F(WebPageTest, SiteDetailListsContextsAndGoroutines) {
  WebResponse r = Get(absl::StrCat("/processes/7/sites/s", audit_));
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["contexts"].size(), 3u);
  EXPECT_EQ(j["contexts"][0]["state"], "live");
  EXPECT_EQ(j["contexts"][0]["root"], "background");
  ASSERT_EQ(j["goroutines"].size(), 3u);
  EXPECT_EQ(j["goroutines"][0]["function"], "main.audit");
  EXPECT_EQ(j["goroutines"][0]["go_site"]["line"], 32);
  EXPECT_EQ(j["findings"][0]["kind"], "broken_chain");
}

TEST_F(WebPageTest, UnknownRoutesAndProcesses) {
  auto none = [](int, const auto&) { return false; };
  EXPECT_FALSE(ServeGraphRoute("/metrics", t_, none).has_value());
  EXPECT_FALSE(ServeGraphRoute("/processes/7/tree", t_, none));
  EXPECT_EQ(Get("/processes/8/graph").status, 404);
  EXPECT_EQ(Get("/processes/7/sites/s999").status, 404);
  EXPECT_EQ(Get("/processes/7/sites/x").status, 404);
}

TEST_F(WebPageTest, PageIsSelfContained) {
  WebResponse r = Get("/");
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(r.body, HasSubstr("<svg id=\"graph\""));
  EXPECT_THAT(r.body, HasSubstr("const Layout ="));  // layout.js inlined
  EXPECT_THAT(r.body, HasSubstr(".edge.broken"));    // app.css inlined
  EXPECT_THAT(r.body, Not(HasSubstr("/*APP_")));
  EXPECT_THAT(r.body, Not(HasSubstr("src=\"http")));  // nothing from the network
  EXPECT_THAT(r.body, Not(HasSubstr("CTXAGENT_DATA =")));
}

TEST_F(WebPageTest, ExportInlinesTheDataSafely) {
  std::string html = ExportHtml(lin_, findings_, "app", t_);
  const size_t at = html.find("window.CTXAGENT_DATA = ");
  ASSERT_NE(at, std::string::npos);
  const size_t end = html.find(";</script>", at);
  ASSERT_NE(end, std::string::npos);
  std::string json = html.substr(at + 23, end - at - 23);
  EXPECT_THAT(json, Not(HasSubstr("</script>")));
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json;
  EXPECT_EQ(j["processes"][0]["pid"], 7);
  EXPECT_EQ(j["graphs"]["7"]["nodes"].size(), 3u);
  EXPECT_EQ(j["details"]["7"][absl::StrCat("s", audit_)]["contexts"].size(), 3u);
}

}  // namespace
}  // namespace ctxagent
