#include "agent/node/daemon.h"

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

TEST(SelectorTest, ParsesEveryField) {
  for (const char* ok : {"binary:api-*", "cgroup:kubepods", "namespace:prod", "pod:web-*"}) {
    EXPECT_TRUE(Selector::Parse(ok).ok()) << ok;
  }
  for (const char* bad : {"binary:", "image:foo", "foo", ""}) {
    EXPECT_FALSE(Selector::Parse(bad).ok()) << bad;
  }
}

TEST(SelectorTest, IncludeAndExclude) {
  ProcessLabels api{"api-server", "/kubepods.slice/x", "prod", "web-7d9", "app"};
  ProcessLabels job{"batch", "/system.slice/batch.service", "", "", ""};
  auto sel = [](const char* s) { return *Selector::Parse(s); };
  EXPECT_TRUE(Selected({}, {}, api));
  EXPECT_TRUE(Selected({sel("binary:api-*")}, {}, api));
  EXPECT_FALSE(Selected({sel("binary:api-*")}, {}, job));
  EXPECT_TRUE(Selected({sel("namespace:prod"), sel("binary:batch")}, {}, job));
  EXPECT_FALSE(Selected({}, {sel("cgroup:kubepods")}, api));
  EXPECT_TRUE(Selected({}, {sel("cgroup:kubepods")}, job));
  EXPECT_FALSE(Selected({sel("pod:web-*")}, {sel("namespace:prod")}, api));
}

TEST(SelectorTest, KnowsWhenTheBinaryAloneDecides) {
  auto sel = [](const char* s) { return *Selector::Parse(s); };
  EXPECT_TRUE(OnlyBinarySelectors({}, {}));
  EXPECT_TRUE(OnlyBinarySelectors({sel("binary:api-*")}, {sel("binary:batch")}));
  EXPECT_FALSE(OnlyBinarySelectors({sel("binary:api-*")}, {sel("namespace:prod")}));
  EXPECT_FALSE(OnlyBinarySelectors({sel("pod:web-*")}, {}));
}

// Before Init and Run: alive, not ready, nothing traced; every endpoint answers, the metrics port
// serves no process detail.
TEST(DaemonTest, AnswersBeforeItIsReady) {
  DaemonOptions o;
  Daemon d(o);
  auto get = [](const std::string& path) { return HttpRequest{"GET", path, {}}; };
  EXPECT_EQ(d.Handle(get("/healthz")).status, 200);
  EXPECT_EQ(d.Handle(get("/readyz")).status, 503);
  EXPECT_EQ(d.Handle(get("/metrics")).status, 200);
  EXPECT_EQ(d.Handle(get("/processes")).status, 404);
  HttpResponse processes = d.endpoints().Handle(get("/processes"));
  EXPECT_EQ(processes.status, 200);
  EXPECT_EQ(processes.body, "[]\n");
  EXPECT_EQ(d.endpoints().Handle(get("/processes/1/tree")).status, 404);
  EXPECT_EQ(d.Handle(get("/nothing")).status, 404);
}

}  // namespace
}  // namespace ctxagent
