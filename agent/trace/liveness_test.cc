#include "agent/trace/liveness.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::ElementsAre;
using State = LivenessOracle::State;

// Go objects laid out in this process's own memory, read back through process_vm_readv as the agent
// reads a target's.
struct FakeCancelCtx {
  uint64_t parent[2];  // Context interface
  uint64_t mu;
  uint64_t done[2];
  uint64_t children;
  uint64_t err[2];
};
struct FakeTimerCtx120 {  // Go 1.20: *cancelCtx first
  FakeCancelCtx* cancel;
  uint64_t timer;
};
struct FakeG {
  uint8_t pad[144];
  uint32_t atomicstatus;
  uint32_t stack_lock;
  uint64_t goid;
};

symbols::GoOffsets Offsets() {
  symbols::GoOffsets o;
  o.cancelctx_err = offsetof(FakeCancelCtx, err);
  o.timerctx_cancelctx = 0;
  o.g_goid = offsetof(FakeG, goid);
  o.g_atomicstatus = offsetof(FakeG, atomicstatus);
  return o;
}

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

TEST(LivenessTest, ContextsLiveCancelledGoneAndUnreadable) {
  Process self(getpid());
  symbols::GoOffsets offsets = Offsets();
  MemoryLiveness memory(self, offsets);
  FakeCancelCtx live{{0x4c0000, 0xc000001000}, 0, {0, 0}, 0, {0, 0}};
  FakeCancelCtx cancelled = live;
  cancelled.err[0] = 0x4c1000;  // context.Canceled's itab
  FakeCancelCtx reused = live;
  reused.parent[1] = 0xc000002000;  // another object now lives here
  EXPECT_THAT(
      memory.Contexts({{Addr(&live), ContextKind::kCancel, 0xc000001000},
                       {Addr(&cancelled), ContextKind::kCancel, 0xc000001000},
                       {Addr(&reused), ContextKind::kCancel, 0xc000001000},
                       {0x10, ContextKind::kCancel, 0xc000001000},
                       {Addr(&live), ContextKind::kTimer, 0xc000001000}}),
      ElementsAre(State::kLive, State::kEnded, State::kGone, State::kUnknown, State::kLive));
}

TEST(LivenessTest, Go120TimerCtxIsReadThroughItsCancelCtxPointer) {
  Process self(getpid());
  symbols::GoOffsets offsets = Offsets();
  offsets.timerctx_cancelctx_is_ptr = true;
  MemoryLiveness memory(self, offsets);
  FakeCancelCtx inner{{0x4c0000, 0xc000001000}, 0, {0, 0}, 0, {0x4c2000, 0}};
  FakeTimerCtx120 timer{&inner, 0};
  FakeTimerCtx120 dangling{reinterpret_cast<FakeCancelCtx*>(0x18), 0};
  EXPECT_THAT(memory.Contexts({{Addr(&timer), ContextKind::kTimer, 0xc000001000},
                               {Addr(&dangling), ContextKind::kTimer, 0xc000001000}}),
              ElementsAre(State::kEnded, State::kUnknown));
}

TEST(LivenessTest, GoroutinesDeadReusedOrRunning) {
  Process self(getpid());
  symbols::GoOffsets offsets = Offsets();
  MemoryLiveness memory(self, offsets);
  FakeG running{};
  running.goid = 42;
  running.atomicstatus = 4;  // _Gwaiting
  FakeG scanned = running;
  scanned.atomicstatus = 0x1000 | 4;  // the GC is scanning its stack
  FakeG dead = running;
  dead.atomicstatus = 6;
  FakeG reused = running;
  reused.goid = 977;
  EXPECT_THAT(
      memory.Goroutines({{42, Addr(&running)},
                         {42, Addr(&scanned)},
                         {42, Addr(&dead)},
                         {42, Addr(&reused)},
                         {42, 0x20}}),
      ElementsAre(State::kLive, State::kLive, State::kEnded, State::kEnded, State::kUnknown));
}

TEST(ProcessTest, ReadManyFailsOnlyTheUnreadableRegions) {
  Process self(getpid());
  uint64_t a = 1, b = 2, c = 3;
  uint64_t out[4] = {};
  std::vector<Process::ReadRequest> reqs = {
      {Addr(&a), &out[0], 8}, {0x30, &out[1], 8}, {Addr(&b), &out[2], 8}, {Addr(&c), &out[3], 8}};
  // More regions than one system call takes.
  std::vector<uint64_t> many(3000, 7), many_out(3000);
  for (size_t i = 0; i < many.size(); ++i) {
    reqs.push_back({i == 1500 ? 0x40 : Addr(&many[i]), &many_out[i], 8});
  }
  self.ReadMany(reqs);
  EXPECT_TRUE(reqs[0].ok);
  EXPECT_FALSE(reqs[1].ok);
  EXPECT_TRUE(reqs[2].ok);
  EXPECT_TRUE(reqs[3].ok);
  EXPECT_EQ(out[0], 1u);
  EXPECT_EQ(out[2], 2u);
  EXPECT_EQ(out[3], 3u);
  size_t ok = 0;
  for (size_t i = 4; i < reqs.size(); ++i) ok += reqs[i].ok;
  EXPECT_EQ(ok, 2999u);
  EXPECT_FALSE(reqs[4 + 1500].ok);
  EXPECT_EQ(many_out[2999], 7u);
}

TEST(ProcessTest, ReadManyOfAnExitedProcessReadsNothing) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  uint64_t v = 0, out = 0;
  std::vector<Process::ReadRequest> reqs = {{Addr(&v), &out, 8}};
  Process(child).ReadMany(reqs);
  EXPECT_FALSE(reqs[0].ok);
}

}  // namespace
}  // namespace ctxagent
