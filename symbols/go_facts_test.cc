#include "symbols/go_facts.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace ctxagent::symbols {
namespace {

GoVersion Go(int minor, int major = 1) {
  GoVersion v;
  v.major = major;
  v.minor = minor;
  return v;
}

TEST(GoFactsTest, SupportedRangeIsOneConstantPair) {
  EXPECT_FALSE(IsSupportedGoVersion(Go(kMinGoMinor - 1)));
  EXPECT_TRUE(IsSupportedGoVersion(Go(kMinGoMinor)));
  EXPECT_TRUE(IsSupportedGoVersion(Go(kMaxGoMinor)));
  EXPECT_FALSE(IsSupportedGoVersion(Go(kMaxGoMinor + 1)));
  EXPECT_FALSE(IsSupportedGoVersion(Go(kMinGoMinor, 2)));
  EXPECT_EQ(SupportedGoVersions(), "go1.17 to go1.27");
}

TEST(GoFactsTest, ValueAtPicksTheLatestApplicableEntry) {
  const Since h[kMaxHistory] = {{17, 152}, {23, 160}, {25, 152}};
  EXPECT_EQ(ValueAt(h, 16), -1);
  EXPECT_EQ(ValueAt(h, 17), 152);
  EXPECT_EQ(ValueAt(h, 22), 152);
  EXPECT_EQ(ValueAt(h, 23), 160);
  EXPECT_EQ(ValueAt(h, 24), 160);
  EXPECT_EQ(ValueAt(h, 25), 152);
  EXPECT_EQ(ValueAt(h, 99), 152);
}

// Every fact: a unique name, a DWARF location, exactly one field filled, a history that starts at
// the oldest supported release and is strictly increasing.
TEST(GoFactsTest, OffsetTableIsWellFormed) {
  std::set<std::string> names;
  for (const OffsetFact& f : OffsetFacts()) {
    SCOPED_TRACE(f.name);
    EXPECT_TRUE(names.insert(f.name).second);
    ASSERT_NE(f.type, nullptr);
    ASSERT_NE(f.member, nullptr);
    EXPECT_EQ(f.alt_type == nullptr, f.alt_member == nullptr);
    EXPECT_NE(f.offset == nullptr, f.flag == nullptr);
    EXPECT_EQ(f.history[0].minor, kMinGoMinor);
    for (int i = 1; i < kMaxHistory && f.history[i].minor != 0; ++i) {
      EXPECT_GT(f.history[i].minor, f.history[i - 1].minor);
      EXPECT_LE(f.history[i].minor, kMaxGoMinor);
      EXPECT_NE(f.history[i].value, f.history[i - 1].value) << "redundant entry";
    }
  }
  // Named() reports exactly the table's facts.
  EXPECT_EQ(GoOffsets().Named().size(), OffsetFacts().size());
}

TEST(GoFactsTest, RuntimeFactsPerVersion) {
  EXPECT_EQ(RuntimeFactsForVersion(Go(16)).status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(RuntimeFactsForVersion(Go(28)).status().code(), absl::StatusCode::kUnimplemented);
  for (int minor = kMinGoMinor; minor <= kMaxGoMinor; ++minor) {
    SCOPED_TRACE(minor);
    absl::StatusOr<GoRuntimeFacts> f = RuntimeFactsForVersion(Go(minor));
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->g_status_leaked, minor >= 26 ? 10 : -1);
    EXPECT_EQ(f->g_status_dead_extra, minor >= 26 ? 11 : -1);
  }
}

TEST(GoFactsTest, SudogWordsFollowTheTraceablePointerChange) {
  GoOffsets o = *OffsetsForVersion(Go(25));
  EXPECT_EQ(o.traceable_ptr_vu, -1);
  EXPECT_EQ(o.SudogElemWord(), 24);
  EXPECT_EQ(o.SudogChanWord(), 80);
  o = *OffsetsForVersion(Go(26));
  EXPECT_EQ(o.traceable_ptr_vu, 8);
  EXPECT_EQ(o.SudogElemWord(), 32);  // elem {vp 24, vu 32}
  EXPECT_EQ(o.SudogChanWord(), 96);  // c {vp 88, vu 96}
  GoOffsets none;
  EXPECT_EQ(none.SudogChanWord(), -1);
}

TEST(GoFactsTest, GReadSpanCoversEveryGField) {
  EXPECT_EQ(GoOffsets().GReadSpan(), 0);
  for (int minor = kMinGoMinor; minor <= kMaxGoMinor; ++minor) {
    const GoOffsets o = *OffsetsForVersion(Go(minor));
    SCOPED_TRACE(minor);
    for (int32_t f : {o.g_goid, o.g_parent_goid, o.g_gopc, o.g_startpc, o.g_atomicstatus, o.g_m,
                      o.g_waitsince, o.g_waitreason, o.g_waiting, o.g_sched + o.gobuf_pc}) {
      EXPECT_LE(f + 8, o.GReadSpan());
    }
    EXPECT_EQ(o.GReadSpan(), o.g_waiting + 8);  // the last field read, in every release
  }
}

}  // namespace
}  // namespace ctxagent::symbols
