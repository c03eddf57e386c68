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

// Before Init and Run: alive, not ready, nothing traced; every endpoint answers.
TEST(DaemonTest, AnswersBeforeItIsReady) {
  DaemonOptions o;
  Daemon d(o);
  EXPECT_EQ(d.Handle("/healthz").status, 200);
  EXPECT_EQ(d.Handle("/readyz").status, 503);
  HttpResponse processes = d.Handle("/processes");
  EXPECT_EQ(processes.status, 200);
  EXPECT_EQ(processes.body, "[]\n");
  EXPECT_EQ(d.Handle("/processes/1/tree").status, 404);
  EXPECT_EQ(d.Handle("/nothing").status, 404);
  EXPECT_EQ(d.Handle("/metrics").status, 200);
}

}  // namespace
}  // namespace ctxagent
