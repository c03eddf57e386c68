#include "agent/lineage/lineage_state.h"

#include <vector>

#include "gtest/gtest.h"

namespace ctxagent::lineage_internal {
namespace {

using Link = ParentLink::Type;

constexpr uint64_t kBackgroundAddr = 0x5ad3c0;
constexpr SiteId kSite = 7;
const absl::Time kT0 = absl::FromUnixSeconds(1000);

ContextCreated Created(uint64_t goid, uint64_t addr, std::vector<ParentLink> parents) {
  ContextCreated e;
  e.time = kT0;
  e.goid = goid;
  e.addr = addr;
  e.kind = ContextKind::kCancel;
  e.parents = std::move(parents);
  e.site = kSite;
  e.g = 0xc000800000 + goid;
  return e;
}
std::vector<ParentLink> Bg() { return {{kBackgroundAddr, Link::kBackground}}; }
std::vector<ParentLink> Under(uint64_t parent) {
  return {{parent, Link::kCancelable}, {kBackgroundAddr, Link::kBackground}};
}
GoroutineCreated Started(uint64_t goid, uint64_t parent, std::vector<uint64_t> captured) {
  GoroutineCreated e;
  e.time = kT0;
  e.goid = goid;
  e.parent_goid = parent;
  e.start_function = "main.worker";
  e.captured = std::move(captured);
  e.g = 0xc000800000 + goid;
  return e;
}

TEST(StateTest, CreatingAContextCountsItAndItsCreatorLive) {
  State s;
  const uint64_t empty = s.live_sum();
  s.CreateContext(Created(1, 0x100, Bg()));
  EXPECT_EQ(s.counters().contexts_created, 1u);
  EXPECT_EQ(s.counters().goroutines_seen, 1u);
  EXPECT_EQ(s.live_contexts(), 1u);
  EXPECT_EQ(s.live_goroutines(), 1u);
  EXPECT_NE(s.live_sum(), empty);
  EXPECT_EQ(s.site_counts().at(kSite).created, 1u);
  const ContextId root = s.ContextAt(0x100);
  ASSERT_NE(root, 0u);
  EXPECT_EQ(s.FindCtx(root)->parent_word(), kBackgroundAddr);
  EXPECT_EQ(s.FindGo(1)->first_rooted, root);

  s.CreateContext(Created(1, 0x200, Under(0x100)));
  const Ctx* child = s.FindCtx(s.ContextAt(0x200));
  EXPECT_EQ(child->parent, root);
  EXPECT_EQ(s.FindCtx(root)->children, 1u);
  EXPECT_EQ(s.live_contexts(), 2u);
  EXPECT_EQ(s.live_goroutines(), 1u) << "the creator is counted once";
}

TEST(StateTest, CancelEndsAContextOnceAndNamesWhoCancelledIt) {
  State s;
  s.CreateContext(Created(1, 0x100, Bg()));
  const ContextId id = s.ContextAt(0x100);
  const uint64_t live = s.live_sum();
  s.OnCancelEvent(ContextCancelled{kT0, 5, 0x100, CancelCause::kOwnCancel, 3, kBackgroundAddr});
  const Ctx* c = s.FindCtx(id);
  EXPECT_TRUE(c->is_cancelled());
  EXPECT_EQ(c->cancel_goid(), 5u);
  EXPECT_EQ(c->parent_word(), 0u) << "the word now names the canceller";
  EXPECT_EQ(c->cancel_site, 3u);
  EXPECT_EQ(s.live_contexts(), 0u);
  EXPECT_NE(s.live_sum(), live);
  EXPECT_EQ(s.counters().cancelled_own, 1u);
  EXPECT_EQ(s.site_counts().at(kSite).cancelled, 1u);
  // Go ignores a second cancel, and so do the counters.
  const uint64_t ended = s.live_sum();
  s.OnCancelEvent(ContextCancelled{kT0, 6, 0x100, CancelCause::kParent});
  EXPECT_EQ(s.FindCtx(id)->cancel_goid(), 5u);
  EXPECT_EQ(s.counters().cancelled_parent, 0u);
  EXPECT_EQ(s.site_counts().at(kSite).cancelled, 1u);
  EXPECT_EQ(s.live_sum(), ended);
  // A cancel at an address never seen created.
  s.OnCancelEvent(ContextCancelled{kT0, 5, 0x999, CancelCause::kOwnCancel});
  EXPECT_EQ(s.counters().unknown_cancels, 1u);
}

TEST(StateTest, CancelWithAnotherParentWordIsAnotherContextsAndEndsThisOne) {
  State s;
  s.CreateContext(Created(1, 0x100, Bg()));
  const ContextId id = s.ContextAt(0x100);
  s.OnCancelEvent(ContextCancelled{kT0, 5, 0x100, CancelCause::kOwnCancel, kNoSite, 0xbad});
  EXPECT_TRUE(s.FindCtx(id)->gone());
  EXPECT_FALSE(s.FindCtx(id)->is_cancelled());
  EXPECT_EQ(s.ContextAt(0x100), 0u);
  EXPECT_EQ(s.live_contexts(), 0u);
  EXPECT_EQ(s.counters().unknown_cancels, 1u);
  EXPECT_EQ(s.counters().cancelled_own, 0u);
}

TEST(StateTest, GoneContextEndsOnceAndLeavesItsAddress) {
  State s;
  s.CreateContext(Created(1, 0x100, Bg()));
  const ContextId id = s.ContextAt(0x100);
  const uint64_t live = s.live_sum();
  s.ContextGone(id);
  EXPECT_TRUE(s.FindCtx(id)->gone());
  EXPECT_EQ(s.ContextAt(0x100), 0u);
  EXPECT_EQ(s.live_contexts(), 0u);
  const uint64_t gone = s.live_sum();
  EXPECT_NE(gone, live);
  s.ContextGone(id);
  EXPECT_EQ(s.live_contexts(), 0u) << "not ended twice";
  EXPECT_EQ(s.live_sum(), gone);
}

TEST(StateTest, AddressReuseEndsAndFreesTheOldContext) {
  State s;
  s.CreateContext(Created(1, 0x100, Bg()));
  const ContextId old_id = s.ContextAt(0x100);
  s.CreateContext(Created(1, 0x100, Bg()));
  EXPECT_NE(s.ContextAt(0x100), old_id);
  EXPECT_EQ(s.FindCtx(old_id), nullptr) << "nothing needed it";
  EXPECT_EQ(s.counters().address_reuses, 1u);
  EXPECT_EQ(s.counters().freed_contexts, 1u);
  EXPECT_EQ(s.live_contexts(), 1u);
  EXPECT_EQ(s.contexts().size(), 1u);
}

TEST(StateTest, GoroutineStartAndExitKeepTheReferencesTheyHold) {
  State s;
  s.CreateContext(Created(1, 0x100, Bg()));
  const ContextId id = s.ContextAt(0x100);
  const uint64_t before = s.live_sum();
  s.StartGoroutine(Started(2, 1, {0x100}));
  EXPECT_EQ(s.live_goroutines(), 2u);
  EXPECT_EQ(s.counters().goroutines_seen, 2u);
  EXPECT_EQ(s.FindCtx(id)->bound_live, 1u);
  EXPECT_EQ(s.FindCtx(id)->spawn_refs, 1u) << "its spawner works under it";
  EXPECT_EQ(s.FindGo(2)->spawner_context, id);

  s.OnExitEvent(GoroutineExited{kT0 + absl::Seconds(1), 2});
  EXPECT_EQ(s.live_goroutines(), 1u);
  EXPECT_EQ(s.FindCtx(id)->bound_live, 0u);
  EXPECT_EQ(s.FindCtx(id)->spawn_refs, 0u);
  EXPECT_EQ(s.live_sum(), before) << "the same nodes are live again";
  s.OnExitEvent(GoroutineExited{kT0, 2});
  EXPECT_EQ(s.live_goroutines(), 1u) << "not exited twice";
  s.OnExitEvent(GoroutineExited{kT0, 99});
  EXPECT_EQ(s.counters().unknown_exits, 1u);

  GoroutineState st;
  st.goid = 40;
  s.AddGoroutineFromMemory(st, ToNs(kT0));
  s.AddGoroutineFromMemory(st, ToNs(kT0));
  EXPECT_TRUE(s.FindGo(40)->before_attach);
  EXPECT_EQ(s.live_goroutines(), 2u);
  EXPECT_EQ(s.counters().goroutines_seen, 3u);
}

TEST(StateTest, CollectFreesFinishedNodesOnly) {
  State s;
  s.CreateContext(Created(1, 0x100, Bg()));
  s.CreateContext(Created(1, 0x200, Under(0x100)));
  const ContextId root = s.ContextAt(0x100), child = s.ContextAt(0x200);
  s.OnCancelEvent(ContextCancelled{kT0, 1, 0x200, CancelCause::kOwnCancel});
  s.StartGoroutine(Started(2, 1, {}));
  s.OnExitEvent(GoroutineExited{kT0, 2});
  const uint64_t live = s.live_sum();
  s.Collect(ToNs(kT0));
  EXPECT_EQ(s.FindCtx(child), nullptr);
  EXPECT_EQ(s.FindGo(2), nullptr);
  EXPECT_NE(s.FindCtx(root), nullptr);
  EXPECT_EQ(s.FindCtx(root)->children, 0u);
  EXPECT_EQ(s.counters().freed_contexts, 1u);
  EXPECT_EQ(s.live_contexts(), 1u);
  EXPECT_EQ(s.live_sum(), live);
}

// The same facts, seen by the probes in one state and read from memory after a pause in the other:
// the same nodes end, with the same counts and fingerprint; only how they became known differs.
TEST(StateTest, ProbesAndMemoryReachTheSameStateForTheSameFacts) {
  State probed, read;
  for (State* s : {&probed, &read}) {
    s->CreateContext(Created(1, 0x100, Bg()));
    s->CreateContext(Created(1, 0x200, Under(0x100)));
    s->StartGoroutine(Started(2, 1, {0x200}));
  }
  const ContextId root = probed.ContextAt(0x100), child = probed.ContextAt(0x200);
  ASSERT_EQ(read.ContextAt(0x100), root);
  const absl::Time t = kT0 + absl::Seconds(2);
  probed.OnCancelEvent(ContextCancelled{t, 1, 0x100, CancelCause::kOwnCancel});
  probed.OnCancelEvent(ContextCancelled{t, 1, 0x200, CancelCause::kParent});
  probed.OnExitEvent(GoroutineExited{t, 2});
  read.ProbesPaused();
  read.CancelContext(root, ToNs(t), CancelCause::kOwnCancel, kNoSite, 0, Seen::kInMemory);
  read.CancelContext(child, ToNs(t), CancelCause::kParent, kNoSite, 0, Seen::kInMemory);
  read.ExitGoroutine(2, ToNs(t), Seen::kInMemory);

  EXPECT_EQ(read.live_sum(), probed.live_sum());
  EXPECT_EQ(read.live_contexts(), 0u);
  EXPECT_EQ(probed.live_contexts(), 0u);
  EXPECT_EQ(read.live_goroutines(), probed.live_goroutines());
  EXPECT_EQ(read.site_counts().at(kSite).cancelled, 2u);
  EXPECT_EQ(probed.site_counts().at(kSite).cancelled, 2u);
  for (ContextId id : {root, child}) {
    EXPECT_TRUE(read.FindCtx(id)->is_cancelled());
    EXPECT_EQ(read.FindCtx(id)->cause, probed.FindCtx(id)->cause);
    EXPECT_EQ(read.FindCtx(id)->cancelled, probed.FindCtx(id)->cancelled);
    EXPECT_EQ(read.FindCtx(id)->bound_live, probed.FindCtx(id)->bound_live);
    EXPECT_EQ(read.FindCtx(id)->spawn_refs, probed.FindCtx(id)->spawn_refs);
  }
  EXPECT_EQ(probed.counters().cancelled_own + probed.counters().cancelled_parent, 2u);
  EXPECT_EQ(read.counters().inferred_cancels, 2u);
  EXPECT_EQ(read.counters().inferred_exits, 1u);
  EXPECT_EQ(read.counters().cancelled_own + read.counters().cancelled_parent, 0u);
  EXPECT_EQ(probed.FindCtx(child)->cancel_goid(), 1u);
  EXPECT_EQ(read.FindCtx(child)->cancel_goid(), 0u) << "memory does not say who";
  EXPECT_EQ(probed.ContextAt(0x100), root) << "a cancelled context's address is known until reused";
  EXPECT_EQ(read.ContextAt(0x100), 0u) << "may be reused unseen";
}

}  // namespace
}  // namespace ctxagent::lineage_internal
