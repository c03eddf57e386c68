#include "symbols/context_api.h"

#include <algorithm>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "symbols/go_binary.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::ctxagent::symbols::testing::AllFixtures;
using ::ctxagent::symbols::testing::Fixture;

const ConstructorPlan* Plan(const std::vector<ConstructorPlan>& plans, const std::string& name) {
  for (const ConstructorPlan& p : plans) {
    if (p.constructor->name == name) return &p;
  }
  return nullptr;
}

std::vector<std::string> Names(const ConstructorPlan* p) {
  std::vector<std::string> out;
  if (p != nullptr) {
    for (const Function& f : p->cancel_funcs) out.push_back(f.name);
  }
  return out;
}

// ctxprog makes every kind of context (cause_go120.go: the 1.21+ constructors) and keeps each
// cancel func: every one it can return is found, stripped or not, and a deadline's timer callback
// is never taken for one.
TEST(ContextApiTest, CancelFuncsOfEveryConstructorFoundOnEveryFixture) {
  int checked = 0;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    SCOPED_TRACE(f.path);
    absl::StatusOr<std::unique_ptr<GoBinary>> bin = GoBinary::Open(f.path);
    ASSERT_TRUE(bin.ok()) << bin.status();
    const GoVersion& v = (*bin)->build_info().version;
    const std::vector<ConstructorPlan> plans = PlanConstructors((*bin)->pclntab(), v);
    ASSERT_EQ(plans.size(), std::size(kContextConstructors));
    EXPECT_EQ(Names(Plan(plans, "context.WithCancel")),
              std::vector<std::string>{"context.WithCancel.func1"});
    const char* deadline = v.AtLeast(21) ? "context.WithDeadlineCause" : "context.WithDeadline";
    EXPECT_EQ(Names(Plan(plans, deadline)),
              (std::vector<std::string>{std::string(deadline) + ".func1",
                                        std::string(deadline) + ".func3"}));
    EXPECT_EQ(Plan(plans, "context.AfterFunc")->in_release, v.AtLeast(21));
    if (v.AtLeast(21)) {
      EXPECT_EQ(Names(Plan(plans, "context.AfterFunc")),
                std::vector<std::string>{"context.AfterFunc.func1"});
      EXPECT_EQ(Names(Plan(plans, "context.WithCancelCause")),
                std::vector<std::string>{"context.WithCancelCause.func1"});
    }
    const std::vector<uint64_t> entries = CancelFuncEntries(plans);
    EXPECT_TRUE(std::is_sorted(entries.begin(), entries.end()));
    absl::StatusOr<Function> timer =
        (*bin)->pclntab().FindFunction(std::string(deadline) + ".func2");
    ASSERT_TRUE(timer.ok()) << "the timer's callback is linked";
    EXPECT_FALSE(std::binary_search(entries.begin(), entries.end(), timer->entry));
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace ctxagent::symbols
