#include "agent/heap/stack_scan.h"

#include <cstring>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "symbols/go_status.h"

namespace ctxagent::heap {
namespace {

constexpr uint64_t kInner = 0x401010, kOuter = 0x402020, kGoexit = 0x403001;
constexpr uint64_t kSp = 0xc000040000;  // where the stack's first word is

symbols::StackBitmap Map(int32_t nbit, uint8_t bits) {
  symbols::StackBitmap m;
  m.present = true;
  m.nbit = nbit;
  m.bits = {bits};
  return m;
}

// Frames by PC; any other PC is unknown.
class FakeFrames {
 public:
  symbols::FrameMaps& operator[](uint64_t pc) { return frames_[pc]; }
  FrameLookup Lookup() const {
    return [this](uint64_t pc) -> absl::StatusOr<symbols::FrameMaps> {
      auto it = frames_.find(pc);
      if (it == frames_.end()) return absl::NotFoundError("unknown pc");
      return it->second;
    };
  }

 private:
  std::map<uint64_t, symbols::FrameMaps> frames_;
};

// A stack of `words` words with return addresses stored at word offsets.
struct Stack {
  explicit Stack(size_t words) : bytes(words * 8) {}
  void Put(size_t word, uint64_t v) { memcpy(&bytes[word * 8], &v, 8); }
  std::vector<uint8_t> bytes;
};

// The words set in `mask`.
std::vector<int> Words(const std::vector<uint8_t>& mask) {
  std::vector<int> out;
  for (size_t w = 0; w < mask.size() * 8; ++w) {
    if ((mask[w / 8] >> (w % 8)) & 1) out.push_back(static_cast<int>(w));
  }
  return out;
}

// inner: sp_delta 32 (locals words 0-2, saved BP word 3, return address word 4, args words 5-6);
// outer: from word 5, sp_delta 24 (locals 5-6, BP 7, return 8, args 9), called by goexit (top).
class StackScanTest : public ::testing::Test {
 protected:
  StackScanTest() : stack_(12) {
    symbols::FrameMaps& inner = frames_[kInner];
    inner.sp_delta = 32;
    inner.args = 16;
    inner.locals = Map(3, 0b010);    // word 1 live
    inner.arg_words = Map(2, 0b01);  // word 5
    symbols::FrameMaps& outer = frames_[kOuter];
    outer.sp_delta = 24;
    outer.args = 8;
    outer.locals = Map(2, 0b10);    // word 6
    outer.arg_words = Map(1, 0b0);  // word 9 holds no pointer
    frames_[kGoexit].top_frame = true;
    stack_.Put(4, kOuter);
    stack_.Put(8, kGoexit);
  }
  StackMasks Masks() {
    return StackPointerMasks(stack_.bytes.data(), stack_.bytes.size(), kSp, kInner,
                             frames_.Lookup());
  }
  std::vector<int> Scan() { return Words(Masks().live); }
  std::vector<int> Known() { return Words(Masks().known); }
  FakeFrames frames_;
  Stack stack_;
};

TEST_F(StackScanTest, OnlyLiveWordsOfEachFrame) {
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6}));
  EXPECT_EQ(Known(), Scan());
}

TEST_F(StackScanTest, StackObjectsAreScannedWhenALivePointerReachesThem) {
  frames_[kInner].stack_objects = {{-24, 8}};  // word 0
  frames_[kOuter].stack_objects = {{-16, 8}};  // word 5
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6}));
  stack_.Put(1, kSp + 4);  // the live slot points into inner's object
  EXPECT_EQ(Scan(), (std::vector<int>{0, 1, 5, 6}));
  frames_[kOuter].stack_objects = {{-16, 16}};  // words 5-6, reached from live word 5
  stack_.Put(5, kSp + 6 * 8);
  stack_.Put(0, kSp + 2 * 8);  // a dead slot of inner's frame
  EXPECT_EQ(Scan(), (std::vector<int>{0, 1, 5, 6}));
}

// A frame scanned whole for want of maps keeps everything alive, but its words are not known
// pointers: a goroutine does not hold what its dead slots point to.
TEST_F(StackScanTest, StackObjectsNotDecodedMakeTheirFrameConservative) {
  frames_[kOuter].stack_objects_unknown = true;
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6, 7, 8, 9}));
  EXPECT_EQ(Known(), (std::vector<int>{1, 5}));
  // A stack object reached only from a guessed word is scanned, not known.
  frames_[kInner].stack_objects = {{-24, 8}};  // word 0
  stack_.Put(7, kSp);
  EXPECT_EQ(Scan(), (std::vector<int>{0, 1, 5, 6, 7, 8, 9}));
  EXPECT_EQ(Known(), (std::vector<int>{1, 5}));
}

TEST_F(StackScanTest, AFrameMissingAMapItNeedsIsScannedWhole) {
  frames_[kInner].locals.present = false;
  EXPECT_EQ(Scan(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(Known(), (std::vector<int>{6}));
  frames_[kInner].locals = Map(4, 0b1111);  // reaching the saved frame pointer: not a real map
  EXPECT_EQ(Scan(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
}

// Its registers were spilled there: real values, known (a goroutine preempted in a loop still
// holds its context).
TEST_F(StackScanTest, ASignalFrameAndTheFrameItInterruptedAreScannedWhole) {
  frames_[kInner].injected = true;
  EXPECT_EQ(Scan(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(Known(), Scan());
}

TEST_F(StackScanTest, AnUnknownReturnAddressScansTheRestWhole) {
  stack_.Put(4, 0x999999);
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(Known(), (std::vector<int>{1, 5}));
}

TEST_F(StackScanTest, SPWriteAboveTheInnermostFrameScansTheRestWhole) {
  frames_[kOuter].sp_write = true;
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6, 7, 8, 9, 10, 11}));
  frames_[kOuter].sp_write = false;
  frames_[kInner].sp_write = true;  // ignored where the goroutine stopped, as the runtime does
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6}));
}

TEST_F(StackScanTest, AFrameLeavingTheStackScansTheRestWhole) {
  frames_[kOuter].sp_delta = 1 << 20;
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6, 7, 8, 9, 10, 11}));
  frames_[kOuter].sp_delta = -8;
  EXPECT_EQ(Scan(), (std::vector<int>{1, 5, 6, 7, 8, 9, 10, 11}));
}

TEST_F(StackScanTest, UnknownArgsSizeScansTheRestWhole) {
  frames_[kInner].args = -0x80000000;
  EXPECT_EQ(Scan(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
}

TEST(UnwindsFromSchedTest, OnlyStoppedGoroutinesWithASavedSPInTheirStack) {
  GoroutineState g;
  g.known = true;
  g.status = symbols::kGoWaiting;
  g.stack_lo = 0x1000;
  g.stack_hi = 0x2000;
  g.sched_sp = 0x1800;
  g.sched_pc = kInner;
  EXPECT_TRUE(UnwindsFromSched(g));
  g.status = symbols::kGoRunning;
  EXPECT_FALSE(UnwindsFromSched(g));
  g.status = symbols::kGoSyscall;
  EXPECT_FALSE(UnwindsFromSched(g));
  g.status = symbols::kGoRunnable;
  EXPECT_TRUE(UnwindsFromSched(g));
  g.sched_sp = 0x2000;
  EXPECT_FALSE(UnwindsFromSched(g));
  g.sched_sp = 0x1804;
  EXPECT_FALSE(UnwindsFromSched(g));
}

}  // namespace
}  // namespace ctxagent::heap
