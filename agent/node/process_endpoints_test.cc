#include "agent/node/process_endpoints.h"

#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "symbols/test_fixtures.h"

namespace ctxagent {
namespace {

using ::testing::HasSubstr;

// One traced process, pid 42, whose binary name is not UTF-8.
class FakeProvider : public ProcessProvider {
 public:
  FakeProvider() {
    auto fixtures = symbols::testing::AllFixtures("ctxprog");
    EXPECT_FALSE(fixtures.empty());
    auto bin = symbols::GoBinary::Open(fixtures.at(0).path);
    EXPECT_TRUE(bin.ok()) << bin.status();
    bin_ = *std::move(bin);
  }
  void ForEachProcess(absl::FunctionRef<void(const ProcessView&)> fn) override {
    ++calls;
    fn(View());
  }
  bool WithProcess(pid_t pid, absl::FunctionRef<void(const ProcessView&)> fn) override {
    ++calls;
    if (pid != 42) return false;
    fn(View());
    return true;
  }
  int calls = 0;

 private:
  ProcessView View() {
    return {42, lineage_, findings_, *bin_, process_, nullptr, {{"binary", "ctx\xffprog"}}};
  }
  ProcessLineage lineage_{42};
  std::vector<Finding> findings_;
  Process process_{getpid()};
  std::unique_ptr<symbols::GoBinary> bin_;
};

HttpResponse Get(const ProcessEndpoints& e, const std::string& path) {
  return e.Handle({.method = "GET", .path = path});
}

TEST(ProcessEndpointsTest, ListsProcessesAndServesTheirLeaves) {
  FakeProvider provider;
  ProcessEndpoints endpoints(provider);
  HttpResponse list = Get(endpoints, "/processes");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.content_type, "application/json");
  nlohmann::json j = nlohmann::json::parse(list.body);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["pid"], 42);
  EXPECT_EQ(j[0]["binary"], "ctx\\xffprog");
  EXPECT_THAT(j[0]["go_version"].get<std::string>(), ::testing::StartsWith("go1."));
  EXPECT_EQ(j[0]["findings"], 0);

  HttpResponse tree = Get(endpoints, "/processes/42/tree");
  EXPECT_EQ(tree.status, 200);
  EXPECT_TRUE(nlohmann::json::parse(tree.body).contains("contexts")) << tree.body;
  EXPECT_EQ(Get(endpoints, "/processes/42/findings").body, "[]\n");
  EXPECT_EQ(Get(endpoints, "/processes/43/tree").status, 404);
  EXPECT_EQ(Get(endpoints, "/processes/x/tree").status, 404);
}

TEST(ProcessEndpointsTest, RegisteredLeavesAndPagesAreServedAndListed) {
  FakeProvider provider;
  ProcessEndpoints endpoints(provider);
  endpoints.AddLeaf("goroutines", [](const ProcessView& p, const HttpRequest& r) {
    return HttpResponse{200, "text/plain", absl::StrCat("g of ", p.pid, " ", r.query.at("n"))};
  });
  endpoints.AddPage("/", [](ProcessProvider& prov, const HttpRequest&) {
    int n = 0;
    prov.ForEachProcess([&](const ProcessView&) { ++n; });
    return HttpResponse{200, "text/html", absl::StrCat("<p>", n, "</p>")};
  });
  EXPECT_EQ(
      endpoints.Handle({.method = "GET", .path = "/processes/42/goroutines", .query = {{"n", "1"}}})
          .body,
      "g of 42 1");
  EXPECT_EQ(Get(endpoints, "/").body, "<p>1</p>");
  HttpResponse other = Get(endpoints, "/nope");
  EXPECT_EQ(other.status, 404);
  EXPECT_THAT(other.body, HasSubstr("/processes/<pid>/goroutines"));
  EXPECT_THAT(other.body, HasSubstr("/processes/<pid>/tree"));
  EXPECT_EQ(Get(endpoints, "/processes/42/nope").status, 404);
}

}  // namespace
}  // namespace ctxagent
