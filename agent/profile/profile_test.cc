// The profile forms against a real Go binary's pclntab (pprofprog, built by Go 1.27, stripped):
// traceback rules, the runtime's text formats, grouping, and a profile.proto that `go tool pprof`
// (Debian's Go) reads back with the same stacks and counts.
#include "agent/profile/profile.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/lineage/lineage.h"
#include "agent/profile/pprof_proto.h"
#include "agent/profile/profiler.h"
#include "agent/profile/stack_symbolizer.h"
#include "agent/profile/text_format.h"
#include "gtest/gtest.h"
#include "symbols/go_binary.h"

namespace ctxagent::profile {
namespace {

constexpr uint64_t kBias = 0x10000;  // as if loaded elsewhere (PIE)

class ProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto bin = symbols::GoBinary::Open(CTXAGENT_PPROFPROG_127);
    ASSERT_TRUE(bin.ok()) << bin.status();
    bin_ = *std::move(bin);
    symbolizer_ = std::make_unique<StackSymbolizer>(bin_->pclntab(), kBias);
  }
  // A return address `offset` bytes into `function`, in the target's address space.
  uint64_t Pc(const std::string& function, uint64_t offset) {
    auto f = bin_->pclntab().FindFunction(function);
    EXPECT_TRUE(f.ok()) << function;
    return f.ok() ? f->entry + kBias + offset : 0;
  }
  std::unique_ptr<symbols::GoBinary> bin_;
  std::unique_ptr<StackSymbolizer> symbolizer_;
};

GoroutineStack Parked(uint64_t goid, const std::string& state, std::vector<uint64_t> pcs) {
  GoroutineStack g;
  g.state.goid = goid;
  g.state.known = true;
  g.state.waiting = true;
  g.state.state = state;
  g.pcs = std::move(pcs);
  return g;
}

TEST(TracebackRulesTest, RuntimeInternalsHiddenExportedShown) {
  EXPECT_FALSE(ShownInTraceback("runtime.gopark", true));
  EXPECT_FALSE(ShownInTraceback("runtime.(*mheap).alloc", false));
  EXPECT_FALSE(ShownInTraceback("runtime.goexit", false));
  EXPECT_TRUE(ShownInTraceback("runtime.Gosched", false));
  EXPECT_TRUE(ShownInTraceback("runtime.(*Func).Name", false));
  EXPECT_FALSE(ShownInTraceback("runtime.(*func).Name", false));
  EXPECT_TRUE(ShownInTraceback("sync.runtime_SemacquireMutex", true));
  EXPECT_TRUE(ShownInTraceback("main.receiver", true));
  EXPECT_FALSE(ShownInTraceback("nodot", false));
  EXPECT_FALSE(ShownInTraceback("runtime.gopanic", true));
  EXPECT_TRUE(ShownInTraceback("runtime.gopanic", false));
  EXPECT_EQ(PrintedFunctionName("runtime.gopanic"), "panic");
  EXPECT_EQ(PrintedFunctionName("main.Map[go.shape.int,go.shape.string]"), "main.Map[...]");
  EXPECT_EQ(PrintedFunctionName("main.(*T[go.shape.int]).M"), "main.(*T[...]).M");
}

TEST(WaitBucketTest, Buckets) {
  const absl::Time now = absl::FromUnixSeconds(1'000'000);
  EXPECT_EQ(WaitBucket(absl::InfinitePast(), now), "");
  EXPECT_EQ(WaitBucket(now - absl::Seconds(59), now), "<1m");
  EXPECT_EQ(WaitBucket(now - absl::Minutes(5), now), "1m-10m");
  EXPECT_EQ(WaitBucket(now - absl::Minutes(30), now), "10m-1h");
  EXPECT_EQ(WaitBucket(now - absl::Hours(2), now), "1h-1d");
  EXPECT_EQ(WaitBucket(now - absl::Hours(30), now), ">1d");
}

TEST_F(ProfileTest, SymbolizesReturnAddressesWithTheBias) {
  const uint64_t pc = Pc("main.spawn", 0x40);
  const PcInfo& info = symbolizer_->Lookup(pc);
  EXPECT_EQ(info.function, "main.spawn");
  EXPECT_EQ(info.entry, pc - 0x40);
  ASSERT_FALSE(info.frames.empty());
  EXPECT_EQ(info.frames.back().function, "main.spawn");
  EXPECT_TRUE(absl::EndsWith(info.frames.back().file, "pprofprog/main.go"));
  EXPECT_TRUE(symbolizer_->Lookup(0x10).frames.empty()) << "outside the text";
}

TEST_F(ProfileTest, DumpIsTheRuntimesFormat) {
  StackSnapshot s;
  s.taken = absl::Now();
  GoroutineStack g =
      Parked(7, "chan receive",
             {Pc("runtime.gopark", 0x20), Pc("main.receiver", 0x12), Pc("runtime.goexit", 1)});
  g.state.waiting_since = s.taken - absl::Seconds(200);
  g.state.gopc = Pc("main.spawn", 0x40);
  g.state.parent_goid = 1;
  s.goroutines.push_back(g);
  const std::string dump = GoroutineDump(s, *symbolizer_, true);
  const auto& receiver = symbolizer_->Lookup(Pc("main.receiver", 0x12)).frames.back();
  const auto& spawn = symbolizer_->Lookup(Pc("main.spawn", 0x40)).frames.front();
  EXPECT_EQ(dump, absl::StrCat("goroutine 7 [chan receive, 3 minutes]:\n",  //
                               "main.receiver(...)\n\t", receiver.file, ":", receiver.line,
                               " +0x12\n",  //
                               "created by main.spawn in goroutine 1\n\t", spawn.file, ":",
                               spawn.line, " +0x40\n"));
  // Before Go 1.21 there is no " in goroutine P"; under a minute, no minutes.
  s.goroutines[0].state.waiting_since = s.taken - absl::Seconds(59);
  const std::string old = GoroutineDump(s, *symbolizer_, false);
  EXPECT_TRUE(absl::StartsWith(old, "goroutine 7 [chan receive]:\n")) << old;
  EXPECT_TRUE(absl::StrContains(old, "created by main.spawn\n")) << old;
}

TEST_F(ProfileTest, GroupsByStackAndLabels) {
  StackSnapshot s;
  s.taken = absl::Now();
  s.changed = 2;
  s.running = 1;
  const std::vector<uint64_t> a = {Pc("runtime.gopark", 0x20), Pc("main.receiver", 0x12)};
  const std::vector<uint64_t> b = {Pc("runtime.gopark", 0x20), Pc("main.sender", 0x12)};
  s.goroutines = {Parked(3, "chan receive", a), Parked(4, "chan send", b),
                  Parked(5, "chan receive", a), Parked(6, "running", {})};
  const Profile p = StacksProfile(s, "goroutine");
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(p.total, 3);
  EXPECT_EQ(p.samples[0].count, 2);
  EXPECT_EQ(p.samples[0].pcs, a);
  EXPECT_EQ(p.samples[0].labels[0],
            std::make_pair(std::string("wait_reason"), std::string("chan receive")));
  EXPECT_EQ(p.samples[1].count, 1);
  ASSERT_EQ(p.comments.size(), 1u);
  EXPECT_TRUE(absl::StrContains(p.comments[0], "read 6 goroutines")) << p.comments[0];
  EXPECT_TRUE(absl::StrContains(p.comments[0], "2 changed under the read, 0 not unwound"));
  EXPECT_TRUE(absl::StrContains(p.comments[0], "and 1 running"));
  const std::string text = CountProfileText(p, *symbolizer_);
  EXPECT_TRUE(absl::StartsWith(text, "goroutine profile: total 3\n2 @ 0x")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\tmain.receiver+0x11\t")) << text;
  EXPECT_FALSE(absl::StrContains(text, "runtime.gopark")) << "leading runtime frames hidden";
}

// A goroutine the lineage knows bound to a context is labelled with that context's creation site;
// one it does not know is not.
TEST_F(ProfileTest, LabelsTheSiteOfTheContextAGoroutineIsBoundTo) {
  ProcessLineage lineage(1);
  ContextCreated c;
  c.time = absl::Now();
  c.goid = 1;
  c.addr = 0xc000100000;
  c.kind = ContextKind::kCancel;
  c.parents = {{0x5ad3c0, ParentLink::Type::kBackground}};
  c.site = lineage.sites().Intern({"main.handle", "/src/app/main.go", 42});
  lineage.OnContextCreated(c);
  GoroutineCreated g;
  g.time = c.time;
  g.goid = 7;
  g.parent_goid = 1;
  g.start_function = "main.watch";
  g.captured = {0x48fd00, 0x4ca020, c.addr};  // code pointer, then the context's itab and data
  lineage.OnGoroutineCreated(g);
  StackSnapshot s;
  s.taken = absl::Now();
  const std::vector<uint64_t> a = {Pc("runtime.gopark", 0x20), Pc("main.watch", 0x12)};
  s.goroutines = {Parked(7, "chan receive", a), Parked(8, "chan receive", a)};
  LabelContexts(lineage, s);
  EXPECT_EQ(s.goroutines[0].context_site, "main.go:42");
  EXPECT_EQ(s.goroutines[1].context_site, "");
  const Profile p = StacksProfile(s, "goroutine");
  ASSERT_EQ(p.samples.size(), 2u);
  int labelled = 0;
  for (const Sample& sample : p.samples) {
    for (const auto& [key, value] : sample.labels) {
      labelled += key == "context_site" && value == "main.go:42";
    }
  }
  EXPECT_EQ(labelled, 1);
}

// What Debian's `go tool pprof -raw` reads of `profile` encoded (empty on failure).
std::string PprofRaw(const Profile& profile, StackSymbolizer& symbolizer) {
  auto gz = Gzip(EncodeProfile(profile, symbolizer, {}));
  EXPECT_TRUE(gz.ok());
  const std::string path = ::testing::TempDir() + "/" + profile.name + ".pb.gz";
  std::ofstream(path, std::ios::binary) << gz.value_or("");
  FILE* p =
      popen(absl::StrCat("/usr/lib/go-1.27/bin/go tool pprof -raw ", path, " 2>&1").c_str(), "r");
  if (p == nullptr) return "";
  std::string raw;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) raw.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << raw;
  return raw;
}

TEST_F(ProfileTest, GoToolPprofReadsTheProto) {
  StackSnapshot s;
  s.taken = absl::Now();
  const std::vector<uint64_t> a = {Pc("runtime.gopark", 0x20), Pc("main.receiver", 0x12),
                                   Pc("runtime.goexit", 1)};
  s.goroutines = {Parked(3, "chan receive", a), Parked(5, "chan receive", a)};
  const std::string raw = PprofRaw(StacksProfile(s, "goroutine"), *symbolizer_);
  EXPECT_TRUE(absl::StrContains(raw, "PeriodType: goroutine count")) << raw;
  // runtime.goexit is left out, as the runtime's own profiles leave it out.
  EXPECT_TRUE(absl::StrContains(raw, "          2: 1 2 \n")) << raw;
  EXPECT_FALSE(absl::StrContains(raw, "runtime.goexit")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, "wait_reason:[chan receive]")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, " main.receiver ")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, " runtime.gopark ")) << raw;
}

// The second read minus the first by stack and labels: what appeared counts up, what went away
// down, what stayed the same is not sampled; pprof reads the negative count and the duration.
TEST_F(ProfileTest, DeltaSubtractsByStackAndLabels) {
  const std::vector<uint64_t> a = {Pc("runtime.gopark", 0x20), Pc("main.receiver", 0x12)};
  const std::vector<uint64_t> b = {Pc("runtime.gopark", 0x20), Pc("main.sender", 0x12)};
  const std::vector<uint64_t> c = {Pc("runtime.gopark", 0x20), Pc("main.selector", 0x12)};
  StackSnapshot first, second;
  first.taken = absl::FromUnixSeconds(1000);
  second.taken = first.taken + absl::Seconds(5);
  second.changed = 1;
  first.goroutines = {Parked(1, "chan receive", a), Parked(2, "chan receive", a),
                      Parked(3, "chan send", b), Parked(4, "select", c)};
  second.goroutines = {Parked(1, "chan receive", a), Parked(2, "chan receive", a),
                       Parked(3, "chan send", b),    Parked(5, "chan send", b),
                       Parked(6, "chan send", b),    Parked(7, "chan receive", b)};
  const Profile d =
      DeltaProfile(StacksProfile(first, "goroutine"), StacksProfile(second, "goroutine"));
  EXPECT_EQ(d.name, "goroutine");
  EXPECT_EQ(d.taken, second.taken);
  EXPECT_EQ(d.duration, absl::Seconds(5));
  ASSERT_EQ(d.samples.size(), 3u);  // a's cancel out
  EXPECT_EQ(d.samples[0].pcs, b);
  EXPECT_EQ(d.samples[0].count, 2);
  EXPECT_EQ(d.samples[1].pcs, b);  // the same stack with another wait reason: another sample
  EXPECT_EQ(d.samples[1].count, 1);
  EXPECT_EQ(d.samples[2].pcs, c);
  EXPECT_EQ(d.samples[2].count, -1);
  EXPECT_EQ(d.total, 2);
  ASSERT_EQ(d.comments.size(), 3u);
  EXPECT_TRUE(absl::StrContains(d.comments[2], "second read: ctxagent read 7 goroutines"));
  EXPECT_TRUE(absl::StrContains(d.comments[2], "1 changed")) << d.comments[2];
  EXPECT_TRUE(DeltaProfile(StacksProfile(second, "goroutine"), StacksProfile(second, "goroutine"))
                  .samples.empty());

  const std::string raw = PprofRaw(d, *symbolizer_);
  EXPECT_TRUE(absl::StrContains(raw, "Duration: 5s")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, "          2: ")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, "         -1: ")) << raw;
  EXPECT_FALSE(absl::StrContains(raw, " main.receiver ")) << raw;
}

}  // namespace
}  // namespace ctxagent::profile
