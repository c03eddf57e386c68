#include "agent/trace/decoder.h"

#include "gtest/gtest.h"

namespace ctxagent {
namespace {

TEST(DecoderTest, ReceiverType) {
  EXPECT_EQ(ReceiverType("context.(*cancelCtx).Done"), "*context.cancelCtx");
  EXPECT_EQ(ReceiverType("context.backgroundCtx.Deadline"), "context.backgroundCtx");
  EXPECT_EQ(ReceiverType("net/http.(*conn).serve"), "*net/http.conn");
  EXPECT_EQ(ReceiverType("main"), "main");
}

TEST(DecoderTest, GoTimeWithAndWithoutMonotonicReading) {
  // time.Date(2026, 11, 25, 0, 0, 0, 500, UTC): without a monotonic reading ext holds the seconds
  // since year 1; with one, wall holds seconds since 1885 in bits 33..62.
  const absl::Time want = absl::FromUnixSeconds(1795564800) + absl::Nanoseconds(500);
  const int64_t since_year1 = 1795564800 + 62135596800;
  EXPECT_EQ(GoTimeToAbsl(500, since_year1), want);
  const uint64_t since_1885 = static_cast<uint64_t>(since_year1 - 59453308800);
  const uint64_t wall = (1ull << 63) | (since_1885 << 30) | 500;
  EXPECT_EQ(GoTimeToAbsl(wall, 123456789), want);
}

TEST(DecoderTest, EventClockIsNearNow) {
  EventClock clock;
  timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  absl::Duration skew =
      clock.ToTime(absl::ToInt64Nanoseconds(absl::DurationFromTimespec(mono))) - absl::Now();
  // Loose: a wrong clock (realtime read as monotonic, a unit error) is off by years; scheduling
  // delays on a loaded machine are not what this checks.
  EXPECT_LT(absl::AbsDuration(skew), absl::Seconds(1));
}

}  // namespace
}  // namespace ctxagent
