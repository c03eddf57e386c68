#include "agent/heap/heap_mark.h"

#include <cstring>
#include <map>

#include "agent/heap/sema.h"
#include "gtest/gtest.h"
#include "symbols/go_facts.h"
#include "symbols/go_status.h"

namespace ctxagent::heap {
namespace {

// A target's memory made by hand: regions by address.
class FakeMemory : public RemoteMemory {
 public:
  void ReadMany(std::vector<Process::ReadRequest>& requests) override {
    for (auto& r : requests) {
      r.ok = false;
      auto it = regions_.upper_bound(r.addr);
      if (it == regions_.begin()) continue;
      --it;
      const uint64_t off = r.addr - it->first;
      if (off + r.len > it->second.size()) continue;
      memcpy(r.out, it->second.data() + off, r.len);
      r.ok = true;
      ++reads;
    }
  }
  std::vector<uint8_t>& Region(uint64_t addr, size_t len) {
    auto& v = regions_[addr];
    if (v.size() < len) v.resize(len);
    return v;
  }
  void Put(uint64_t addr, uint64_t value) {
    auto it = --regions_.upper_bound(addr);
    memcpy(it->second.data() + (addr - it->first), &value, 8);
  }
  uint64_t reads = 0;

 private:
  std::map<uint64_t, std::vector<uint8_t>> regions_;
};

symbols::GoVersion Go127() {
  symbols::GoVersion v;
  v.major = 1;
  v.minor = 27;
  return v;
}

uint8_t Reason(const std::string& name, const symbols::GoVersion& version = Go127()) {
  const std::vector<std::string> all = symbols::WaitReasonStrings(version);
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == name) return static_cast<uint8_t>(i);
  }
  ADD_FAILURE() << name;
  return 0;
}

constexpr uint64_t kMheap = 0x100000, kSpanArray = 0x200000, kSpanStructs = 0x300000;
constexpr uint64_t kModuledata = 0x500000, kData = 0x600000, kMask = 0x620000;
constexpr uint64_t kHeap = 0xc000000000;  // a span of 128 objects of 64 bytes
constexpr uint64_t kNoScanHeap = 0xc000100000;
constexpr uint64_t kStacks = 0x7000000;
constexpr int kGlobals = 16;  // words of .data; .bss empty
constexpr int kMaxSpans = 4;

// A Go 1.27 heap: one scan span and one no-scan span of 64-byte objects, 16 words of globals
// whose bitmap says which hold pointers, and goroutine stacks of 256 bytes.
class FakeHeap {
 public:
  FakeHeap() {
    facts_.offsets = *symbols::OffsetsForVersion(Go127());
    facts_.version = Go127();
    facts_.span_index_u16 = true;
    facts_.mheap = kMheap;
    facts_.moduledata = kModuledata;
    const auto& o = facts_.offsets;
    mem_.Region(kMheap, o.mheap_allspans + 24);
    mem_.Region(kSpanArray, 8 * kMaxSpans);
    mem_.Region(kModuledata, 600);
    mem_.Region(kData, kGlobals * 8);
    mem_.Region(kMask, 8);
    mem_.Region(kHeap, 8192);
    mem_.Region(kNoScanHeap, 8192);
    mem_.Region(kStacks, 1 << 16);
    AddSpan(0, kHeap, false);
    AddSpan(1, kNoScanHeap, true);
    mem_.Put(kMheap + o.mheap_allspans, kSpanArray);
    mem_.Put(kMheap + o.mheap_allspans + 8, 2);
    mem_.Put(kMheap + o.mheap_allspans + 16, 2);
    mem_.Put(kModuledata + o.moduledata_data, kData);
    mem_.Put(kModuledata + o.moduledata_edata, kData + kGlobals * 8);
    mem_.Put(kModuledata + o.moduledata_bss, kData + kGlobals * 8);
    mem_.Put(kModuledata + o.moduledata_ebss, kData + kGlobals * 8);
    mem_.Put(kModuledata + o.moduledata_gcdatamask, kGlobals);
    mem_.Put(kModuledata + o.moduledata_gcdatamask + 8, kMask);
    mem_.Put(kMask, 0xff);  // the first 8 words of .data hold pointers, the rest do not
  }

  static uint64_t Obj(int i) { return kHeap + i * 64; }
  static uint64_t NoScanObj(int i) { return kNoScanHeap + i * 64; }
  void Global(int word, uint64_t value) { mem_.Put(kData + word * 8, value); }
  void Store(uint64_t addr, uint64_t value) { mem_.Put(addr, value); }

  // A goroutine with a 256-byte stack holding `held`; parked on `waits` with `reason`, or
  // runnable when `reason` is empty.
  size_t Goroutine(const std::string& reason, std::vector<uint64_t> waits,
                   std::vector<uint64_t> held = {}) {
    GoroutineState g;
    g.goid = gs_.size() + 2;
    g.g = kStacks + 0x8000 + gs_.size() * 8;
    g.known = true;
    g.stack_lo = kStacks + gs_.size() * 256;
    g.stack_hi = g.stack_lo + 256;
    g.sched_sp = g.stack_lo + 64;
    for (size_t k = 0; k < held.size(); ++k) mem_.Put(g.sched_sp + k * 8, held[k]);
    if (reason.empty()) {
      g.status = symbols::kGoRunnable;
    } else {
      g.status = symbols::kGoWaiting;
      g.waiting = true;
      g.wait_reason = Reason(reason);
      if (absl::string_view(reason).substr(0, 5) == "sync.") {
        g.sync_object = waits.empty() ? 0 : waits[0];
      } else {
        g.channels = waits;
      }
    }
    gs_.push_back(g);
    return gs_.size() - 1;
  }

  // Another in-use scan span, of `npages` pages of `elemsize`-byte objects at `base`.
  void AddScanSpan(uint64_t base, uint64_t npages, uint64_t elemsize) {
    const int k = spans_++;
    mem_.Region(base, npages * 8192);
    AddSpan(k, base, false, npages, elemsize);
    mem_.Put(kMheap + facts_.offsets.mheap_allspans + 8, spans_);
    mem_.Put(kMheap + facts_.offsets.mheap_allspans + 16, spans_);
  }

  // Small objects' pointer bits at the end of the 64-byte scan span (Go 1.22+), and the span's
  // objects ending before them (and before the inline mark bits), as the runtime sizes it.
  void UseHeapBits(HeapFacts::HeapBits layout) {
    facts_.heap_bits = layout;
    bits_ = kHeap + 8192 - 128 - (layout == HeapFacts::HeapBits::kBeforeInlineMarks ? 128 : 0);
    const uint16_t nelems = (bits_ - kHeap) / 64;
    const auto& o = facts_.offsets;
    auto& v = mem_.Region(kSpanStructs, 256);
    memcpy(&v[o.mspan_nelems], &nelems, 2);
    memcpy(&v[o.mspan_freeindex], &nelems, 2);
  }
  // Sets the pointer bit of the scan span's word at `addr`.
  void PointerBit(uint64_t addr) {
    const uint64_t w = (addr - kHeap) / 8;
    mem_.Region(kHeap, 8192)[bits_ - kHeap + w / 8] |= uint8_t{1} << (w % 8);
  }

  absl::StatusOr<MarkResult> Mark(MarkLimits limits = {}) {
    return heap::Mark(mem_, facts_, gs_, limits);
  }
  std::vector<size_t> Leaked() {
    absl::StatusOr<MarkResult> r = Mark();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->leaked : std::vector<size_t>{};
  }
  FakeMemory& memory() { return mem_; }
  HeapFacts& facts() { return facts_; }
  std::vector<GoroutineState>& goroutines() { return gs_; }

 private:
  void AddSpan(int k, uint64_t base, bool noscan, uint64_t npages = 1, uint64_t elemsize = 64) {
    ASSERT_LT(k, kMaxSpans);
    const auto& o = facts_.offsets;
    const uint64_t s = kSpanStructs + k * 256;
    mem_.Region(s, 256);
    mem_.Put(kSpanArray + k * 8, s);
    mem_.Put(s + o.mspan_startaddr, base);
    mem_.Put(s + o.mspan_npages, npages);
    mem_.Put(s + o.mspan_elemsize, elemsize);
    auto& v = mem_.Region(s, 256);
    const uint16_t nelems = npages * 8192 / elemsize;
    memcpy(&v[o.mspan_nelems], &nelems, 2);
    memcpy(&v[o.mspan_freeindex], &nelems, 2);  // every object allocated
    v[o.mspan_spanclass] = (elemsize <= 32768 ? 6 << 1 : 0) | (noscan ? 1 : 0);  // a size class
    v[o.mspan_state] = 1;
  }

  FakeMemory mem_;
  HeapFacts facts_;
  std::vector<GoroutineState> gs_;
  int spans_ = 2;
  uint64_t bits_ = 0;  // the scan span's pointer bits (UseHeapBits)
};

TEST(HeapMarkTest, ChannelHeldByAGlobalKeepsItsWaiter) {
  FakeHeap h;
  h.Global(0, FakeHeap::Obj(1));
  h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  EXPECT_TRUE(h.Leaked().empty());
}

TEST(HeapMarkTest, ChannelHeldOnlyByItsWaiterLeaks) {
  FakeHeap h;
  // The waiter's own stack holds the channel: a parked goroutine is no root.
  const size_t g = h.Goroutine("chan send", {FakeHeap::Obj(1)}, {FakeHeap::Obj(1)});
  EXPECT_EQ(h.Leaked(), std::vector<size_t>{g});
}

TEST(HeapMarkTest, ContextFactsTellReachedContextsAndHeldCancelFuncs) {
  FakeHeap h;
  constexpr uint64_t kCancelFunc = 0x401000, kOtherFunc = 0x401040;
  h.facts().cancel_funcs = {kCancelFunc};
  auto closure = [&](int obj, uint64_t fn, uint64_t ctx) {
    h.Store(FakeHeap::Obj(obj), fn);
    h.Store(FakeHeap::Obj(obj) + 8, ctx);
  };
  // 1: reached, and so is its cancel func.
  h.Global(0, FakeHeap::Obj(1));
  h.Global(1, FakeHeap::Obj(10));
  closure(10, kCancelFunc, FakeHeap::Obj(1));
  // 2: reached; its cancel func was dropped.
  h.Global(2, FakeHeap::Obj(2));
  closure(11, kCancelFunc, FakeHeap::Obj(2));
  // 3: reached through a closure that is no cancel func.
  h.Global(3, FakeHeap::Obj(12));
  closure(12, kOtherFunc, FakeHeap::Obj(3));
  // 4: a cancel func on a runnable goroutine's stack (a stack-allocated closure).
  h.Goroutine("", {}, {kCancelFunc, FakeHeap::Obj(4)});
  // 5: its cancel func on the stack of a goroutine nothing can wake.
  h.Goroutine("chan receive", {FakeHeap::Obj(20)}, {kCancelFunc, FakeHeap::Obj(5)});
  const std::vector<uint64_t> contexts = {FakeHeap::Obj(1), FakeHeap::Obj(2), FakeHeap::Obj(3),
                                          FakeHeap::Obj(4), FakeHeap::Obj(5)};
  absl::StatusOr<MarkResult> r = heap::Mark(h.memory(), h.facts(), h.goroutines(), {}, contexts);
  ASSERT_TRUE(r.ok()) << r.status();
  const uint8_t kBoth = kContextReached | kCancelHeld;
  EXPECT_EQ(r->contexts, (std::vector<uint8_t>{kBoth, kContextReached, kContextReached, kBoth, 0}));
}

TEST(HeapMarkTest, GlobalWordsWithoutThePointerBitAreNotRoots) {
  FakeHeap h;
  h.Global(9, FakeHeap::Obj(1));  // word 9: not a pointer per the bitmap
  const size_t g = h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  EXPECT_EQ(h.Leaked(), std::vector<size_t>{g});
}

TEST(HeapMarkTest, ReachableThroughHeapObjects) {
  FakeHeap h;
  h.Global(0, FakeHeap::Obj(5));
  h.Store(FakeHeap::Obj(5) + 16, FakeHeap::Obj(9) + 8);  // an interior pointer
  h.Goroutine("select", {FakeHeap::Obj(3), FakeHeap::Obj(9)});
  EXPECT_TRUE(h.Leaked().empty());
}

// Go 1.22+: a small object's words are pointers only where its span's pointer bits say so, as the
// runtime scans it; a scalar that looks like a pointer keeps nothing alive.
TEST(HeapMarkTest, HeapBitsSayWhichWordsOfSmallObjectsArePointers) {
  for (HeapFacts::HeapBits layout :
       {HeapFacts::HeapBits::kSpanEnd, HeapFacts::HeapBits::kBeforeInlineMarks}) {
    SCOPED_TRACE(static_cast<int>(layout));
    FakeHeap h;
    h.UseHeapBits(layout);
    h.Global(0, FakeHeap::Obj(5));
    h.Store(FakeHeap::Obj(5) + 8, FakeHeap::Obj(1));
    const size_t g = h.Goroutine("chan receive", {FakeHeap::Obj(1)});
    EXPECT_EQ(h.Leaked(), std::vector<size_t>{g});
    h.PointerBit(FakeHeap::Obj(5) + 8);
    EXPECT_TRUE(h.Leaked().empty());
  }
}

// Pointer bits where the span's objects would overlap them: not the tabled layout, so the span's
// objects are scanned conservatively (a leak missed rather than invented).
TEST(HeapMarkTest, HeapBitsOverlappingObjectsAreNotTrusted) {
  FakeHeap h;
  h.facts().heap_bits = HeapFacts::HeapBits::kSpanEnd;  // 128 objects: to the span's end
  h.Global(0, FakeHeap::Obj(5));
  h.Store(FakeHeap::Obj(5) + 8, FakeHeap::Obj(1));
  h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  EXPECT_TRUE(h.Leaked().empty());
}

// Small objects' spans are a page: the bits of one claiming more (a corrupt span; a gigabyte's
// bits would not fit a batch) are not read, its objects are scanned conservatively.
TEST(HeapMarkTest, HeapBitsOfLongSpansAreNotTrusted) {
  constexpr uint64_t kLong = kHeap + 0x200000;
  FakeHeap h;
  h.facts().heap_bits = HeapFacts::HeapBits::kSpanEnd;
  h.AddScanSpan(kLong, 16, 64);
  // Its objects end before where its bits would be.
  const uint16_t nelems = (16 * 8192 - 16 * 8192 / 64) / 64;
  auto& span = h.memory().Region(kSpanStructs + 2 * 256, 256);
  memcpy(&span[h.facts().offsets.mspan_nelems], &nelems, 2);
  memcpy(&span[h.facts().offsets.mspan_freeindex], &nelems, 2);
  h.Global(0, kLong);
  h.Store(kLong + 8,
          FakeHeap::Obj(1));  // no pointer bit anywhere: only a conservative scan sees it
  h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  EXPECT_TRUE(h.Leaked().empty());
}

// Go 1.22+: an object over 512 bytes starts with its type, whose mask says which words of each
// element (the type repeated over the object) are pointers; from 1.24 a large type's mask is
// built on demand, behind a slot. A type that makes no sense leaves the object conservative.
TEST(HeapMarkTest, TypeHeadersSayWhichWordsOfLargerObjectsArePointers) {
  constexpr uint64_t kSpan = kHeap + 0x10000, kType = 0x700000, kMaskAt = 0x700100;
  constexpr uint64_t kSlot = 0x700200;
  for (const bool on_demand : {false, true}) {
    SCOPED_TRACE(on_demand);
    FakeHeap h;
    h.facts().heap_bits = HeapFacts::HeapBits::kSpanEnd;
    h.facts().gc_mask_on_demand = on_demand;
    const auto& o = h.facts().offsets;
    h.AddScanSpan(kSpan, 1, 1024);
    h.memory().Region(kType, 0x300);
    // A 16-byte element whose first word is a pointer, the second a scalar.
    h.Store(kType + o.type_size, 16);
    h.Store(kType + o.type_ptrbytes, 8);
    h.memory().Region(kType, 0x300)[o.type_tflag] = on_demand ? 1 << 4 : 0;
    h.Store(kType + o.type_gcdata, on_demand ? kSlot : kMaskAt);
    h.Store(kSlot, kMaskAt);
    h.Store(kMaskAt, 0b1);
    h.Store(kSpan, kType);  // object 0's header
    h.Global(0, kSpan);
    h.Store(kSpan + 8 + 3 * 16 + 8, FakeHeap::Obj(1));  // element 3's scalar
    const size_t g = h.Goroutine("chan receive", {FakeHeap::Obj(1)});
    EXPECT_EQ(h.Leaked(), std::vector<size_t>{g});
    h.Store(kSpan + 8 + 5 * 16, FakeHeap::Obj(1));  // element 5's pointer
    EXPECT_TRUE(h.Leaked().empty());
    h.Store(kSpan + 8 + 5 * 16, 0);
    h.Store(kType + o.type_size, 2048);  // larger than the object: conservative
    EXPECT_TRUE(h.Leaked().empty());
    h.Store(kType + o.type_size, 12);  // not word-aligned: conservative
    EXPECT_TRUE(h.Leaked().empty());
  }
}

TEST(HeapBitsLayoutTest, ByReleaseAndExperiments) {
  using HB = HeapFacts::HeapBits;
  auto layout = [](int minor, const std::string& experiments = "") {
    symbols::GoVersion v = Go127();
    v.minor = minor;
    std::vector<std::pair<std::string, std::string>> settings = {{"CGO_ENABLED", "0"}};
    if (!experiments.empty()) settings.push_back({"GOEXPERIMENT", experiments});
    return HeapBitsLayout(v, settings);
  };
  EXPECT_EQ(layout(21), HB::kNone);
  EXPECT_EQ(layout(22), HB::kSpanEnd);
  EXPECT_EQ(layout(22, "arenas,noallocheaders"), HB::kNone);
  EXPECT_EQ(layout(24), HB::kSpanEnd);
  EXPECT_EQ(layout(25), HB::kSpanEnd);
  EXPECT_EQ(layout(25, "greenteagc"), HB::kBeforeInlineMarks);
  EXPECT_EQ(layout(26), HB::kBeforeInlineMarks);
  EXPECT_EQ(layout(27, "nogreenteagc"), HB::kSpanEnd);
  EXPECT_EQ(layout(28), HB::kNone);  // unsupported
}

TEST(HeapMarkTest, SpansAreFoundByPageAcrossArenas) {
  FakeHeap h;
  // Two pages of 4 KiB objects 1 GiB (16 arenas) above the others, with nothing in between.
  constexpr uint64_t kFar = kHeap + (uint64_t{1} << 30) + 8192;
  h.AddScanSpan(kFar, 2, 4096);
  h.Global(0, kFar + 3 * 4096 + 8);                   // object 3, in the span's second page
  h.Global(1, kFar + 2 * 8192);                       // the page after the span: no object
  h.Global(2, kHeap + (uint64_t{1} << 29));           // an arena without spans
  h.Store(kFar + 3 * 4096 + 4000, FakeHeap::Obj(5));  // and on into the first arena
  const size_t far_waiter = h.Goroutine("chan receive", {kFar + 4096});
  h.Goroutine("chan receive", {FakeHeap::Obj(5)});
  absl::StatusOr<MarkResult> r = h.Mark();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spans, 3u);
  EXPECT_EQ(r->objects_marked, 2u);
  EXPECT_EQ(r->leaked, std::vector<size_t>{far_waiter});
}

TEST(HeapMarkTest, TheSpanIndexCountsAgainstTheMemoryCap) {
  MarkLimits limits;
  limits.max_memory = 1536 << 10;
  FakeHeap near;
  near.AddScanSpan(kHeap + (uint64_t{1} << 21), 1, 64);
  EXPECT_TRUE(near.Mark(limits).ok());
  FakeHeap far;  // 2^18 arenas above the others: a MiB of index
  far.AddScanSpan(kHeap + (uint64_t{1} << 44), 1, 64);
  EXPECT_EQ(far.Mark(limits).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(far.Mark().ok());
}

TEST(HeapMarkTest, NoScanObjectsAreNotScanned) {
  FakeHeap h;
  h.Global(0, FakeHeap::NoScanObj(2));
  h.Store(FakeHeap::NoScanObj(2), FakeHeap::Obj(1));  // bytes that look like a pointer
  const size_t g = h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  EXPECT_EQ(h.Leaked(), std::vector<size_t>{g});
}

TEST(HeapMarkTest, RunnableStacksAreRoots) {
  FakeHeap h;
  h.Goroutine("", {}, {FakeHeap::Obj(4)});
  h.Goroutine("chan receive", {FakeHeap::Obj(4)});
  EXPECT_TRUE(h.Leaked().empty());
}

// g1 waits on c1 and holds c2; g2 waits on c2: g2 wakes only if g1 can.
TEST(HeapMarkTest, ChainsReachTheirFixedPoint) {
  FakeHeap h;
  const size_t g1 = h.Goroutine("chan receive", {FakeHeap::Obj(1)}, {FakeHeap::Obj(2)});
  const size_t g2 = h.Goroutine("chan send", {FakeHeap::Obj(2)});
  EXPECT_EQ(h.Leaked(), (std::vector<size_t>{g1, g2}));
  h.Global(3, FakeHeap::Obj(1));
  EXPECT_TRUE(h.Leaked().empty());
}

TEST(HeapMarkTest, SyncPrimitivesAndForeverWaits) {
  FakeHeap h;
  h.Global(0, FakeHeap::Obj(7));
  h.Goroutine("sync.Mutex.Lock", {FakeHeap::Obj(7) + 8});  // a Mutex inside a live struct
  const size_t wg = h.Goroutine("sync.WaitGroup.Wait", {FakeHeap::Obj(8)});
  const size_t nil_recv = h.Goroutine("chan receive (nil chan)", {});
  const size_t forever = h.Goroutine("select (no cases)", {});
  // Parked on a global: reachable by definition.
  h.Goroutine("sync.Cond.Wait", {kData + 8});
  EXPECT_EQ(h.Leaked(), (std::vector<size_t>{wg, nil_recv, forever}));
  // The main goroutine in `select {}` is not reported, as the runtime's profile.
  h.goroutines()[forever].goid = 1;
  EXPECT_EQ(h.Leaked(), (std::vector<size_t>{wg, nil_recv}));
}

// A channel's wait queue points at its waiters' sudogs, and those at their goroutines: the mark
// must not reach one parked goroutine's stack through another's channel.
TEST(HeapMarkTest, SudogsAndGoroutinesAreOpaque) {
  FakeHeap h;
  const size_t g = h.Goroutine("chan receive", {FakeHeap::Obj(1)}, {FakeHeap::Obj(2)});
  h.goroutines()[g].sudogs = {FakeHeap::Obj(10)};
  h.goroutines()[g].g = FakeHeap::Obj(11);
  h.Global(0, FakeHeap::Obj(12));                     // a live channel ...
  h.Store(FakeHeap::Obj(12), FakeHeap::Obj(10));      // ... whose queue holds g's sudog
  h.Store(FakeHeap::Obj(10), FakeHeap::Obj(11));      // sudog.g
  h.Store(FakeHeap::Obj(10) + 40, FakeHeap::Obj(1));  // sudog.c
  h.Store(FakeHeap::Obj(11) + 8, FakeHeap::Obj(1));   // a g field
  EXPECT_EQ(h.Leaked(), std::vector<size_t>{g});
}

TEST(HeapMarkTest, TornGoroutinesAreRoots) {
  FakeHeap h;
  const size_t torn = h.Goroutine("chan receive", {FakeHeap::Obj(3)}, {FakeHeap::Obj(1)});
  h.goroutines()[torn].known = false;
  h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  EXPECT_TRUE(h.Leaked().empty());
}

TEST(HeapMarkTest, FreeSlotsAreNotObjects) {
  FakeHeap h;
  auto& span = h.memory().Region(kSpanStructs, 256);
  span[h.facts().offsets.mspan_freeindex] = 4;  // objects 4.. are free unless their bit says
  h.memory().Region(0x700000, 16);              // ... and no bit says so
  h.Store(kSpanStructs + h.facts().offsets.mspan_allocbits, 0x700000);
  h.Global(0, FakeHeap::Obj(6));  // a stale pointer to a free slot
  h.Store(FakeHeap::Obj(6), FakeHeap::Obj(1));
  const size_t g = h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  EXPECT_EQ(h.Leaked(), std::vector<size_t>{g});
}

// A target whose runtime structures are garbage: errors, bounded work, never a verdict.
TEST(HeapMarkTest, HostileHeapsAreRefused) {
  {
    FakeHeap h;
    h.Store(kMheap + h.facts().offsets.mheap_allspans + 8, uint64_t{1} << 40);  // len > cap
    EXPECT_EQ(h.Mark().status().code(), absl::StatusCode::kDataLoss);
  }
  {
    FakeHeap h;
    h.Store(kMheap + h.facts().offsets.mheap_allspans + 8, 3'000'000);
    h.Store(kMheap + h.facts().offsets.mheap_allspans + 16, 3'000'000);
    MarkLimits limits;
    limits.max_spans = 1'000'000;
    EXPECT_EQ(h.Mark(limits).status().code(), absl::StatusCode::kResourceExhausted);
  }
  {
    FakeHeap h;  // both spans claim the same pages
    h.Store(kSpanStructs + 256 + h.facts().offsets.mspan_startaddr, kHeap);
    EXPECT_EQ(h.Mark().status().code(), absl::StatusCode::kDataLoss);
  }
  {
    FakeHeap h;  // a cycle through every object, and a cap the work list passes
    h.Global(0, FakeHeap::Obj(0));
    for (int i = 0; i < 128; ++i) h.Store(FakeHeap::Obj(i), FakeHeap::Obj((i + 1) % 128));
    for (int i = 0; i < 128; ++i) h.Store(FakeHeap::Obj(i) + 8, FakeHeap::Obj((i + 7) % 128));
    absl::StatusOr<MarkResult> r = h.Mark();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->objects_marked, 128u);
    MarkLimits tight;
    tight.max_read = 4096;
    EXPECT_EQ(h.Mark(tight).status().code(), absl::StatusCode::kResourceExhausted);
  }
  {
    FakeHeap h;  // a nonsensical span: skipped as torn, the rest still marked
    h.Store(kSpanStructs + 256 + h.facts().offsets.mspan_elemsize, 3);
    h.Global(0, FakeHeap::Obj(1));
    h.Goroutine("chan receive", {FakeHeap::Obj(1)});
    absl::StatusOr<MarkResult> r = h.Mark();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->spans, 1u);
    EXPECT_TRUE(r->leaked.empty());
  }
  for (int garbage : {1, 65}) {
    FakeHeap h;  // span pointers at unmapped garbage: one is torn, more a corrupt heap
    constexpr uint64_t kArray = 0x800000;
    h.memory().Region(kArray, (2 + garbage) * 8);
    h.Store(kArray, kSpanStructs);
    h.Store(kArray + 8, kSpanStructs + 256);
    for (int i = 0; i < garbage; ++i) h.Store(kArray + 16 + i * 8, 0xdead0000 + i * 4096);
    for (int word : {0, 1, 2}) {
      h.Store(kMheap + h.facts().offsets.mheap_allspans + word * 8,
              word == 0 ? kArray : 2 + garbage);
    }
    absl::StatusOr<MarkResult> r = h.Mark();
    if (garbage == 1) {
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->spans, 2u);
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
    }
  }
}

TEST(HeapMarkTest, GoroutineStatesCountAgainstTheMemoryCap) {
  FakeHeap h;
  for (int i = 0; i < 100; ++i) h.Goroutine("sleep", {});
  uint64_t states = 0;
  for (const GoroutineState& g : h.goroutines()) states += HeldBytes(g);
  MarkLimits limits;
  limits.max_memory = states + 256;  // the states fit, not the mark's own tables beside them
  EXPECT_EQ(h.Mark(limits).status().code(), absl::StatusCode::kResourceExhausted);
  limits.max_memory = states + (4 << 20);  // and the mark's tables and one batch's 1 MiB buffer
  absl::StatusOr<MarkResult> r = h.Mark(limits);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->memory, states);
}

// Go 1.19: three goroutines in semacquire, one the treap's root, one its child, one waiting on
// the child's address behind it (waitlink); the treap's root also points back at itself.
TEST(SemaphoreWaitsTest, EveryWaiterOfTheTableGetsItsPrimitive) {
  symbols::GoVersion go119;
  go119.major = 1;
  go119.minor = 19;
  const symbols::GoOffsets o = *symbols::OffsetsForVersion(go119);
  FakeMemory mem;
  constexpr uint64_t kTable = 0x100000, kSudogs = 0x200000;
  mem.Region(kTable, 251 * 64);
  mem.Region(kSudogs, 3 * 128);
  const uint64_t a = kSudogs, b = kSudogs + 128, c = kSudogs + 256;
  mem.Put(kTable + 7 * 64 + o.semaroot_treap, a);
  const uint64_t waiters[][3] = {{a, 0xa000, 0xe1}, {b, 0xb000, 0xe2}, {c, 0xc000, 0xe2}};
  for (const auto& w : waiters) {
    mem.Put(w[0] + o.sudog_g, w[1]);
    mem.Put(w[0] + o.sudog_elem, w[2]);
  }
  mem.Put(a + o.sudog_prev, b);
  mem.Put(a + o.sudog_next, a);  // a cycle: read once
  mem.Put(b + o.sudog_waitlink, c);
  std::vector<GoroutineState> gs;
  for (uint64_t g : {0xa000, 0xb000, 0xc000, 0xd000}) {
    GoroutineState s;
    s.g = g;
    s.known = true;
    s.status = symbols::kGoWaiting;
    s.wait_reason = Reason("semacquire", go119);
    gs.push_back(s);
  }
  ASSERT_TRUE(AddSemaphoreWaits(mem, kTable, o, go119, gs).ok());
  EXPECT_EQ(gs[0].sync_object, 0xe1u);
  EXPECT_EQ(gs[1].sync_object, 0xe2u);
  EXPECT_EQ(gs[2].sync_object, 0xe2u);
  EXPECT_EQ(gs[2].sudogs, std::vector<uint64_t>{c});
  EXPECT_EQ(gs[3].sync_object, 0u);  // not in the table: stays a root
  EXPECT_EQ(ClassifyWait(go119, gs[0]), WaitClass::kSync);
  EXPECT_EQ(ClassifyWait(go119, gs[3]), WaitClass::kRoot);
}

// A Cond's waiters before 1.26: each one's sudog is found in its frames and the mark reaches the
// list through the Cond (head) and each sudog (next).
TEST(CondWaitsTest, WaitersWakeWithTheirCond) {
  for (bool cond_reachable : {true, false}) {
    FakeHeap h;
    const symbols::GoOffsets& o = h.facts().offsets;
    const uint64_t cond = FakeHeap::Obj(10), lost_cond = FakeHeap::Obj(11);
    const uint64_t s1 = FakeHeap::Obj(20), s2 = FakeHeap::Obj(21), s3 = FakeHeap::Obj(22);
    const uint64_t decoy = FakeHeap::Obj(30);
    h.Store(cond + 16, s1);  // notifyList.head
    h.Store(s1 + o.sudog_next, s2);
    h.Store(lost_cond + 16, s3);
    const size_t g1 = h.Goroutine("sync.Cond.Wait", {}, {decoy, s1});
    const size_t g2 = h.Goroutine("sync.Cond.Wait", {}, {s2});
    const size_t g3 = h.Goroutine("sync.Cond.Wait", {}, {s3});
    const size_t g4 = h.Goroutine("sync.Cond.Wait", {}, {decoy});  // its sudog is not found
    std::vector<GoroutineState>& gs = h.goroutines();
    h.Store(s1 + o.sudog_g, gs[g1].g);
    h.Store(s2 + o.sudog_g, gs[g2].g);
    h.Store(s3 + o.sudog_g, gs[g3].g);
    h.Store(decoy + o.sudog_g, gs[g2].g);
    if (cond_reachable) h.Global(0, cond);
    AddCondWaits(h.memory(), o, Go127(), gs);
    EXPECT_EQ(gs[g1].sync_object, s1);
    EXPECT_EQ(gs[g2].sync_object, s2);
    EXPECT_EQ(gs[g3].sync_object, s3);
    EXPECT_EQ(gs[g4].sync_object, 0u);
    EXPECT_TRUE(gs[g1].sudogs.empty());  // scanned, so the list is followed
    const std::vector<size_t> want =
        cond_reachable ? std::vector<size_t>{g3} : std::vector<size_t>{g1, g2, g3};
    EXPECT_EQ(h.Leaked(), want) << cond_reachable;
  }
}

TEST(HeapMarkTest, UntabledReleasesAreRefused) {
  FakeHeap h;
  h.facts().offsets.mheap_allspans = -1;
  EXPECT_EQ(h.Mark().status().code(), absl::StatusCode::kFailedPrecondition);
}

// Stacks by their stack maps: a runnable goroutine's 192 bytes from g.sched.sp are one frame whose
// locals map says only word 0 holds a live pointer.
constexpr uint64_t kFramePc = 0x401234;

absl::StatusOr<symbols::FrameMaps> OneFrame(uint64_t pc) {
  if (pc != kFramePc) return absl::NotFoundError("unknown pc");
  symbols::FrameMaps m;
  m.sp_delta = 184;  // to the return address, the stack's last word
  m.top_frame = true;
  m.locals.present = true;
  m.locals.nbit = 22;  // below the saved frame pointer
  m.locals.bits = {0b1, 0, 0};
  return m;
}

std::vector<size_t> LeakedWithRootHolding(std::vector<uint64_t> held, FrameLookup frames) {
  FakeHeap h;
  h.facts().frames = std::move(frames);
  const size_t root = h.Goroutine("", {}, held);
  h.goroutines()[root].sched_pc = kFramePc;
  const size_t waiter = h.Goroutine("chan receive", {FakeHeap::Obj(1)});
  h.goroutines()[waiter].sched_pc = kFramePc;
  return h.Leaked();
}

TEST(HeapMarkTest, ADeadStackSlotKeepsNothingAlive) {
  EXPECT_EQ(LeakedWithRootHolding({0, FakeHeap::Obj(1)}, OneFrame), std::vector<size_t>{1});
}

TEST(HeapMarkTest, ALiveStackSlotKeepsTheChannelsWaiters) {
  EXPECT_TRUE(LeakedWithRootHolding({FakeHeap::Obj(1)}, OneFrame).empty());
}

TEST(HeapMarkTest, StacksWithoutMapsAreScannedConservatively) {
  auto no_maps = [](uint64_t) -> absl::StatusOr<symbols::FrameMaps> {
    return absl::NotFoundError("stripped of everything");
  };
  EXPECT_TRUE(LeakedWithRootHolding({0, FakeHeap::Obj(1)}, no_maps).empty());
  EXPECT_TRUE(LeakedWithRootHolding({0, FakeHeap::Obj(1)}, nullptr).empty());
}

}  // namespace
}  // namespace ctxagent::heap
