#include "agent/heap/context_facts.h"

#include <cstring>
#include <map>

#include "gtest/gtest.h"

namespace ctxagent::heap {
namespace {

constexpr uint64_t kCancelFunc = 0x401000, kOtherFunc = 0x401100;

TEST(ContextFactsTest, CancelFuncsHoldTheirContextsOnly) {
  const std::vector<uint64_t> funcs = {kCancelFunc};
  const std::vector<uint64_t> contexts = {0xc000010000, 0xc000020000};
  ContextFacts f(funcs, contexts);
  f.Note(kCancelFunc, 0xc000020000);
  f.Note(kOtherFunc, 0xc000010000);    // a closure, not a cancel func
  f.Note(kCancelFunc, 0xc000030000);   // a context nobody asked about
  f.Note(0xc000010000, 0xc000010000);  // a pointer, not code
  f.SetReached(0);
  EXPECT_EQ(f.TakeFacts(), (std::vector<uint8_t>{kContextReached, kCancelHeld}));
}

TEST(ContextFactsTest, StackHoldsAreLivePointerSlotsOnly) {
  const std::vector<uint64_t> funcs;
  const std::vector<uint64_t> contexts = {0xc000010000, 0xc000020000};
  ContextFacts f(funcs, contexts);
  uint64_t stack[4] = {0xc000020000, 0xc000010000, 0xc000020000, 42};
  uint8_t bytes[sizeof(stack)];
  memcpy(bytes, stack, sizeof(stack));
  f.NoteStack(7, bytes, sizeof(stack), {0b1101});  // slot 1 is dead
  f.NoteStack(5, bytes, sizeof(stack), {0b0010});
  EXPECT_EQ(f.TakeHolds(), (std::vector<std::pair<uint64_t, uint32_t>>{{5, 0}, {7, 1}}));
}

// A heap of small objects, by base address: their words.
class FakeObjects {
 public:
  void Put(uint64_t base, std::vector<uint64_t> words) { objects_[base] = std::move(words); }
  uint64_t At(uint64_t addr, uint64_t* base) const {
    auto it = objects_.upper_bound(addr);
    if (it == objects_.begin()) return 0;
    --it;
    if (addr >= it->first + it->second.size() * 8) return 0;
    *base = it->first;
    return it->second.size() * 8;
  }
  absl::Status Read(std::vector<Process::ReadRequest>& reads) {
    for (auto& r : reads) {
      ++reads_;
      auto it = objects_.find(r.addr);
      r.ok = it != objects_.end();
      if (r.ok) memcpy(r.out, it->second.data(), std::min(r.len, it->second.size() * 8));
    }
    return absl::OkStatus();
  }
  int reads_ = 0;

 private:
  std::map<uint64_t, std::vector<uint64_t>> objects_;
};

void NoteStackOf(ContextFacts& f, uint64_t goid, std::vector<uint64_t> live_slots) {
  std::vector<uint8_t> bytes(live_slots.size() * 8);
  memcpy(bytes.data(), live_slots.data(), bytes.size());
  f.NoteStack(goid, bytes.data(), bytes.size(), std::vector<uint8_t>(bytes.size() / 64 + 1, 0xff));
}

// A worker holding *job{ctx: WithValue(cancelCtx), id}, a closure capturing a struct pointer, and a
// shared table too large to follow.
TEST(ContextFactsTest, HoldsThroughClosuresStructsAndValueLayers) {
  const std::vector<uint64_t> funcs;
  constexpr uint64_t kCtxA = 0xc000010000, kCtxB = 0xc000020000, kCtxC = 0xc000030000;
  const std::vector<uint64_t> contexts = {kCtxA, kCtxB, kCtxC};
  constexpr uint64_t kItab = 0x6a0000;
  FakeObjects heap;
  heap.Put(0xc000100000, {kItab, 0xc000100100, 7});                   // job{ctx, id}
  heap.Put(0xc000100100, {kItab, kCtxA, kItab, 0xc000100200, 0, 0});  // valueCtx over A
  heap.Put(0xc000100200, {1, 2});                                     // the value's key
  heap.Put(0xc000200000, {0x401234, 0xc000200100});                   // closure{fn, *state}
  heap.Put(0xc000200100, {0xc000200000, kItab, kCtxB});               // state{back, ctx}: a cycle
  heap.Put(0xc000300000, std::vector<uint64_t>(64, kCtxC));           // 512 bytes: not followed
  heap.Put(0xc000400000, {0xc000400100});                             // four objects deep, then C
  heap.Put(0xc000400100, {0xc000400200});
  heap.Put(0xc000400200, {0xc000400300});
  heap.Put(0xc000400300, {0xc000400400});
  heap.Put(0xc000400400, {kCtxC});
  ContextFacts f(funcs, contexts);
  NoteStackOf(f, 3, {0xc000100000, 42});
  NoteStackOf(f, 4, {0xc000200000});
  NoteStackOf(f, 5, {0xc000300000, 0xc000400000});
  NoteStackOf(f, 6, {0xc000100000});
  ASSERT_TRUE(f.FollowHolds([&](uint64_t a, uint64_t* b) { return heap.At(a, b); },
                            [&](std::vector<Process::ReadRequest>& r) { return heap.Read(r); },
                            [](uint64_t) { return absl::OkStatus(); })
                  .ok());
  EXPECT_EQ(f.TakeHolds(), (std::vector<std::pair<uint64_t, uint32_t>>{{3, 0}, {4, 1}, {6, 0}}));
  // Each object once, though two goroutines reach the job: 3 + 2 + 4 (the chain to depth 4).
  EXPECT_EQ(heap.reads_, 9);
}

// `ctx` a WithoutCancel over A (a live interface slot: its itab, then its data word), or a closure
// capturing one: A is not held; the same over a valueCtx's itab is.
TEST(ContextFactsTest, HoldsDoNotCrossWithoutCancel) {
  const std::vector<uint64_t> funcs;
  constexpr uint64_t kCtxA = 0xc000010000;
  const std::vector<uint64_t> contexts = {kCtxA};
  constexpr uint64_t kCutItab = 0x6a0000, kValueItab = 0x6a0100;
  FakeObjects heap;
  heap.Put(0xc000100000, {kValueItab, kCtxA});                 // withoutCancelCtx{c: A}
  heap.Put(0xc000200000, {0x401234, kCutItab, 0xc000100000});  // closure{fn, ctx}
  ContextFacts f(funcs, contexts, [](uint64_t word) { return word == kCutItab; });
  NoteStackOf(f, 3, {kCutItab, 0xc000100000});
  NoteStackOf(f, 4, {0xc000200000});
  NoteStackOf(f, 5, {kValueItab, 0xc000100000});  // as if a valueCtx: followed
  ASSERT_TRUE(f.FollowHolds([&](uint64_t a, uint64_t* b) { return heap.At(a, b); },
                            [&](std::vector<Process::ReadRequest>& r) { return heap.Read(r); },
                            [](uint64_t) { return absl::OkStatus(); })
                  .ok());
  EXPECT_EQ(f.TakeHolds(), (std::vector<std::pair<uint64_t, uint32_t>>{{5, 0}}));
}

}  // namespace
}  // namespace ctxagent::heap
