// The fixture the lineage's tests share: a ProcessLineage driven with a synthetic clock and
// addresses, the way the decoder would.
#ifndef CTXAGENT_AGENT_LINEAGE_LINEAGE_TEST_FIXTURE_H_
#define CTXAGENT_AGENT_LINEAGE_LINEAGE_TEST_FIXTURE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/lineage/lineage.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {

using Link = ParentLink::Type;

constexpr uint64_t kBackgroundAddr = 0x5ad3c0;  // &runtime.zerobase on go1.27
constexpr uint64_t kMain = 1;

// Drives a ProcessLineage with a synthetic clock and addresses, the way the decoder would.
class LineageTest : public ::testing::Test {
 protected:
  SiteId At(int line, const std::string& function = "main.handler") {
    return lin_.sites().Intern(Site{function, "/src/app/main.go", line});
  }
  void Advance(absl::Duration d) { now_ += d; }
  static uint64_t GAddr(uint64_t goid) { return 0xc000800000 + goid * 0x200; }

  static std::vector<ParentLink> Bg() { return {{kBackgroundAddr, Link::kBackground}}; }
  static std::vector<ParentLink> Under(uint64_t parent) {
    return {{parent, Link::kCancelable}, {kBackgroundAddr, Link::kBackground}};
  }

  uint64_t Create(uint64_t goid, SiteId site, std::vector<ParentLink> parents,
                  ContextKind kind = ContextKind::kCancel,
                  absl::Duration timeout = absl::InfiniteDuration(), uint64_t addr = 0) {
    ContextCreated e;
    e.time = now_;
    e.goid = goid;
    e.addr = addr != 0 ? addr : (next_addr_ += 0x80);
    e.kind = kind;
    if (timeout != absl::InfiniteDuration()) e.deadline = now_ + timeout;
    e.parents = std::move(parents);
    e.site = site;
    e.g = GAddr(goid);
    lin_.OnContextCreated(e);
    return e.addr;
  }
  void Cancel(uint64_t addr, uint64_t goid, CancelCause cause = CancelCause::kOwnCancel,
              SiteId site = kNoSite, uint64_t parent_word = 0) {
    lin_.OnContextCancelled(ContextCancelled{now_, goid, addr, cause, site, parent_word});
  }
  void Go(uint64_t goid, uint64_t parent, SiteId go_site, std::vector<uint64_t> ctx_addrs = {},
          const std::string& fn = "main.worker") {
    GoroutineCreated e;
    e.time = now_;
    e.goid = goid;
    e.parent_goid = parent;
    e.go_site = go_site;
    e.start_function = fn;
    e.g = GAddr(goid);
    // Closure words as newproc1 sees them: code pointer first, then itab/data pairs and other
    // values.
    e.captured.push_back(0x48fd00);
    for (uint64_t a : ctx_addrs) {
      e.captured.push_back(0x4ca020);  // itab
      e.captured.push_back(a);
    }
    lin_.OnGoroutineCreated(e);
  }
  void Exit(uint64_t goid) { lin_.OnGoroutineExited(GoroutineExited{now_, goid}); }

  std::vector<Finding> Eval() { return lin_.Evaluate(now_, opts_); }
  const ContextNode& Node(uint64_t addr) {
    const ContextNode* n = lin_.FindContext(lin_.ContextAt(addr));
    EXPECT_NE(n, nullptr) << std::hex << addr;
    static const ContextNode kNone;
    return n != nullptr ? *n : kNone;
  }
  ContextId Id(uint64_t addr) { return lin_.ContextAt(addr); }

  std::string Describe(const std::vector<Finding>& findings) {
    std::vector<std::string> lines;
    for (const Finding& f : findings) {
      lines.push_back(absl::StrCat(FindingKindName(f.kind), " line ", lin_.sites().Get(f.site).line,
                                   " x", f.count, ": ", f.explanation));
    }
    return absl::StrJoin(lines, "\n");
  }
  // Only the (kind, line) pairs, for exact comparisons.
  std::vector<std::pair<std::string, int>> Kinds(const std::vector<Finding>& findings) {
    std::vector<std::pair<std::string, int>> out;
    for (const Finding& f : findings) {
      out.emplace_back(FindingKindName(f.kind), lin_.sites().Get(f.site).line);
    }
    return out;
  }

  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  uint64_t next_addr_ = 0xc000100000;
  ProcessLineage lin_{4242};
  FindingOptions opts_;  // grace 5s, leak_after 30s, min_count 3, far_deadline 10m
};

// The target's memory as a test wants it: everything live unless told otherwise.
class FakeMemory : public LivenessOracle {
 public:
  absl::flat_hash_map<uint64_t, State> contexts;    // by address
  absl::flat_hash_map<uint64_t, State> goroutines;  // by g
  int context_queries = 0, goroutine_queries = 0;
  // A query without a parent word is for a cancelled context whose address a pause kept: still
  // there (ended) unless told otherwise.
  std::vector<State> Contexts(const std::vector<ContextQuery>& q) override {
    std::vector<State> out;
    for (const ContextQuery& c : q) {
      ++context_queries;
      const State otherwise = c.parent_word == 0 ? State::kEnded : State::kLive;
      out.push_back(contexts.contains(c.addr) ? contexts[c.addr] : otherwise);
    }
    return out;
  }
  std::vector<State> Goroutines(const std::vector<GoroutineQuery>& q) override {
    std::vector<State> out;
    for (const GoroutineQuery& g : q) {
      ++goroutine_queries;
      out.push_back(goroutines.contains(g.g) ? goroutines[g.g] : State::kLive);
    }
    return out;
  }
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_LINEAGE_LINEAGE_TEST_FIXTURE_H_
