#include "agent/node/workload_series.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Metrics::Labels Id(const std::string& binary) {
  return {{"namespace", "ns"}, {"pod", "p"}, {"container", "c"}, {"binary", binary}};
}

std::string CreatedLine(const std::string& binary, int value) {
  return "ctxagent_contexts_created_total{binary=\"" + binary +
         "\",container=\"c\",kind=\"cancel\",namespace=\"ns\",pod=\"p\"} " + std::to_string(value);
}

TEST(WorkloadSeriesTest, SeriesGoTtlAfterTheLastProcessExits) {
  Metrics m;
  WorkloadSeries w({.ttl = absl::Minutes(1)}, m.workloads_dropped.Add({}));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  w.Started(Id("api"));
  w.Started(Id("api"));  // two processes of one workload
  w.Add(m.contexts_created, Id("api"), {{"kind", "cancel"}}, 3);
  w.Add(m.contexts_created, Id("api"), {{"kind", "cancel"}}, 2);
  w.Add(m.contexts_cancelled, Id("api"), {{"cause", "own"}}, 1);
  EXPECT_THAT(m.Serialize(), HasSubstr(CreatedLine("api", 5)));
  w.Exited(Id("api"), t0);
  w.Expire(t0 + absl::Hours(1));
  EXPECT_THAT(m.Serialize(), HasSubstr(CreatedLine("api", 5))) << "a process is still running";
  w.Exited(Id("api"), t0 + absl::Hours(1));
  w.Expire(t0 + absl::Hours(1) + absl::Seconds(59));
  EXPECT_THAT(m.Serialize(), HasSubstr(CreatedLine("api", 5))) << "exited less than ttl ago";
  w.Expire(t0 + absl::Hours(1) + absl::Minutes(1));
  const std::string text = m.Serialize();
  EXPECT_THAT(text, Not(HasSubstr("binary=\"api\"")));
  EXPECT_EQ(w.size(), 0u);
  // Back after its series were dropped: they start again from 0 (a counter reset).
  w.Started(Id("api"));
  w.Add(m.contexts_created, Id("api"), {{"kind", "cancel"}}, 1);
  EXPECT_THAT(m.Serialize(), HasSubstr(CreatedLine("api", 1)));
}

TEST(WorkloadSeriesTest, AWorkloadBackWithinTtlKeepsItsSeries) {
  Metrics m;
  WorkloadSeries w({.ttl = absl::Minutes(1)}, m.workloads_dropped.Add({}));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  w.Started(Id("job"));
  w.Add(m.contexts_created, Id("job"), {{"kind", "cancel"}}, 4);
  w.Exited(Id("job"), t0);
  w.Started(Id("job"));  // the container restarted
  w.Expire(t0 + absl::Hours(1));
  w.Add(m.contexts_created, Id("job"), {{"kind", "cancel"}}, 1);
  EXPECT_THAT(m.Serialize(), HasSubstr(CreatedLine("job", 5)));
}

TEST(WorkloadSeriesTest, BeyondTheCapTheLongestGoneGoFirstAndAreCounted) {
  Metrics m;
  WorkloadSeries w({.ttl = absl::Hours(1), .max_workloads = 2}, m.workloads_dropped.Add({}));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 2; ++i) {
    const std::string name = "gone" + std::to_string(i);
    w.Started(Id(name));
    w.Add(m.contexts_created, Id(name), {{"kind", "cancel"}}, 1);
    w.Exited(Id(name), t0 + absl::Seconds(10 - i));  // gone1 went first
  }
  w.Started(Id("live0"));
  EXPECT_EQ(w.size(), 2u);
  std::string text = m.Serialize();
  EXPECT_THAT(text, Not(HasSubstr("binary=\"gone1\"")));
  EXPECT_THAT(text, HasSubstr(CreatedLine("gone0", 1)));
  EXPECT_THAT(text, HasSubstr("ctxagent_workloads_dropped_total 1"));
  // Running workloads are never dropped: the last gone one goes, then the cap is exceeded.
  w.Started(Id("live1"));
  w.Started(Id("live2"));
  EXPECT_EQ(w.size(), 3u);
  text = m.Serialize();
  EXPECT_THAT(text, Not(HasSubstr("binary=\"gone0\"")));
  EXPECT_THAT(text, HasSubstr("ctxagent_workloads_dropped_total 2"));
}

}  // namespace
}  // namespace ctxagent
