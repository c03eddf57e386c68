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

}  // namespace
}  // namespace ctxagent
