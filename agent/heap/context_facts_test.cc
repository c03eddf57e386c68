#include "agent/heap/context_facts.h"

#include <cstring>

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

}  // namespace
}  // namespace ctxagent::heap
