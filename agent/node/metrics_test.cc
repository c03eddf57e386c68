#include "agent/node/metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, ExpositionAndStaleSeriesRemoval) {
  Metrics m;
  m.contexts_created.Add({{"binary", "api"}, {"kind", "cancel"}}).Increment(3);
  m.SetGauges(m.contexts_live, {{{{"binary", "api"}}, 7}, {{{"binary", "old"}}, 1}});
  std::string text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("ctxagent_build_info{version=\""));
  EXPECT_THAT(text, HasSubstr("ctxagent_contexts_created_total{binary=\"api\",kind=\"cancel\"} 3"));
  EXPECT_THAT(text, HasSubstr("ctxagent_contexts_live{binary=\"old\"} 1"));
  // The process behind "old" went away: its series must go too.
  m.SetGauges(m.contexts_live, {{{{"binary", "api"}}, 8}});
  text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("ctxagent_contexts_live{binary=\"api\"} 8"));
  EXPECT_THAT(text, Not(HasSubstr("binary=\"old\"")));
}

}  // namespace
}  // namespace ctxagent
