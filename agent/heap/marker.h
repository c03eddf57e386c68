// The heap mark's state (heap_mark.h: Mark), shared by the files that implement it: heap_mark.cc
// (roots, marking, scanning) and heap_spans.cc (the span table, the objects' types).
#ifndef CTXAGENT_AGENT_HEAP_MARKER_H_
#define CTXAGENT_AGENT_HEAP_MARKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/heap/context_facts.h"
#include "agent/heap/heap_facts.h"
#include "agent/heap/heap_mark.h"
#include "agent/heap/heap_span.h"

namespace ctxagent::heap {

inline constexpr uint64_t kPageSize = 8192;
inline constexpr uint64_t kArenaPages = 8192;  // a heap arena of 64 MiB, as the runtime's on amd64
inline constexpr uint32_t kNoSpan = UINT32_MAX;
inline constexpr uint64_t kMaxSpanPages = uint64_t{1} << 20;  // 8 GiB in one span: a corrupt span
inline constexpr uint8_t kSpanInUse = 1;                      // runtime.mSpanInUse, every release
inline constexpr uint64_t kMaxStack = uint64_t{1} << 30;      // the runtime's maxstacksize on amd64
inline constexpr uint64_t kMaxGlobals = uint64_t{1} << 30;
// One process_vm_readv: at most this many regions and bytes.
inline constexpr size_t kBatchRegions = 1024;
inline constexpr uint64_t kBatchBytes = uint64_t{1} << 20;
// Queued objects of one span this close are read as one region: a region costs the kernel a page
// walk, far more than copying a few free or unmarked slots between them.
inline constexpr uint64_t kMaxGap = 256;
// In-use spans whose fields make no sense, tolerated as torn reads of spans changing under the
// mark (skipped); more is a corrupt heap. An unreadable span pointer counts too: the runtime never
// frees an mspan.
inline constexpr uint64_t kMaxTornSpans = 64;
// Objects up to this size keep their pointer bits in their span (HeapFacts::heap_bits), before the
// 128 bytes of inline mark bits of a Green Tea span of 16 to 512-byte objects.
inline constexpr uint64_t kMaxHeapBitsObject = 512;
// Their spans are a page; a longer one's bits (read with its objects, in one batch) are not
// trusted: a corrupt span claiming a gigabyte must not ask for a 16 MiB bitmap.
inline constexpr uint64_t kMaxHeapBitsSpan = 8 * 8192;
inline constexpr uint64_t kInlineMarkBitsBytes = 128;
// Larger objects of a size class start with their type (a malloc header); abi.Type's flags.
inline constexpr uint64_t kMaxSizeClassBytes = 32768;
inline constexpr uint8_t kTFlagGCMaskOnDemand = 1 << 4;
inline constexpr uint8_t kKindGCProg = 1 << 6;

class Marker {
 public:
  Marker(RemoteMemory& memory, const HeapFacts& facts, const std::vector<GoroutineState>& gs,
         const MarkLimits& limits, absl::Span<const uint64_t> contexts,
         ContextFacts::WithoutCancelItab without_cancel)
      : memory_(memory),
        facts_(facts),
        o_(facts.offsets),
        gs_(gs),
        limits_(limits),
        contexts_(facts.cancel_funcs, contexts, without_cancel) {}

  absl::StatusOr<MarkResult> Run();

 private:
  absl::Status ReadSpans();
  absl::Status ReadSpanFields(const std::vector<uint64_t>& ptrs);
  absl::Status ReadAllocBits();
  absl::Status ScanGlobals();
  absl::Status ScanGlobalRange(uint64_t start, uint64_t end, int32_t mask_field);
  absl::Status ClassifyGoroutines();
  absl::Status ScanGoroutine(size_t i);
  absl::Status Drain();
  absl::Status ScanRange(uint64_t addr, uint64_t len, const std::vector<uint8_t>* mask);
  // The words of `data` whose bit in `mask` (a bit per word from `first_word`) is set; every word
  // without a mask.
  void ScanWords(const uint8_t* data, uint64_t len, absl::Span<const uint8_t> mask, bool masked,
                 uint64_t first_word);
  // Where the pointer bits of a kSpanBits span start: a bit per word of the span.
  uint64_t HeapBitsAt(const Span& s) const {
    uint64_t at = s.base + s.bytes - s.bytes / 64;
    if (facts_.heap_bits == HeapFacts::HeapBits::kBeforeInlineMarks && s.elemsize >= 16) {
      at -= kInlineMarkBitsBytes;
    }
    return at;
  }
  // Marks the object `word` points into, if any; greys it (queues it for scanning) unless it is
  // pointer-free or opaque.
  void MarkWord(uint64_t word);
  void FindReachedContexts();  // once marking is done: each asked-for context's facts
  // For ContextFacts::FollowHolds: the allocated, scannable object at `addr` (not a g or sudog).
  uint64_t ObjectAt(uint64_t addr, uint64_t* base) const;
  absl::Status IndexSpans();
  // Flags the span of `addr`: only marks in such spans look up opaque_ and waiters_.
  void Watch(uint64_t addr) {
    uint64_t index = 0;
    if (const Span* s = Find(addr, &index)) spans_[s - spans_.data()].watched = true;
  }
  // The span holding `addr` and the object's index in it; null outside every in-use span.
  const Span* Find(uint64_t addr, uint64_t* index) const;
  // Reads and scans the grey objects of `round` (spans by address) from `first`, as many as one
  // system call reads; returns the first span not drained.
  absl::StatusOr<size_t> ScanBatch(const std::vector<uint32_t>& round, size_t first);
  bool Test(const std::vector<uint64_t>& bits, uint64_t i) const {
    return (bits[i >> 6] >> (i & 63)) & 1;
  }
  absl::Status Read(std::vector<Process::ReadRequest>& requests);
  // The types of the batch's type-header objects not met before (their first word, in the first
  // `regions` requests of `r`, whose objects end at `ends`), read into types_: the type, then
  // its mask, or first the slot holding it where the mask is built on demand.
  absl::Status ReadTypes(const std::vector<Process::ReadRequest>& r, size_t regions,
                         const std::vector<size_t>& ends);
  // A type-header object's type, when it was read and makes sense for the object.
  struct TypeMask {
    uint64_t size = 0, ptr_bytes = 0;
    std::vector<uint8_t> mask;  // a bit per word of the first ptr_bytes
    bool known = false;
  };
  const TypeMask* TypeOf(const uint8_t* object, uint64_t elemsize) const {
    auto it = types_.find(Load(object, 0));
    if (it == types_.end() || !it->second.known) return nullptr;
    return it->second.size <= elemsize - 8 ? &it->second : nullptr;
  }
  absl::Status Hold(uint64_t bytes);

  RemoteMemory& memory_;
  const HeapFacts& facts_;
  const symbols::GoOffsets& o_;
  const std::vector<GoroutineState>& gs_;
  const MarkLimits& limits_;
  ContextFacts contexts_;
  MarkResult result_;
  uint64_t held_ = 0;

  std::vector<Span> spans_;  // in-use spans by address
  uint64_t heap_lo_ = UINT64_MAX, heap_hi_ = 0;
  // The span of every heap page, as the runtime's heapArena.spans: per arena holding a span, a
  // table of kArenaPages entries in pages_, found by arena (from arena_lo_) in arenas_.
  uint64_t arena_lo_ = 0;
  std::vector<uint32_t> arenas_, pages_;
  // One bit per object of every span; grey: marked, not yet scanned.
  std::vector<uint64_t> allocated_, marked_, grey_;
  absl::flat_hash_set<uint64_t> opaque_;  // g and sudog objects: marked, never scanned
  std::vector<uint32_t> grey_spans_;      // spans queued since the round being drained began
  std::vector<uint64_t> objects_;         // one batch's regions' objects: span << 32 | index
  // Parked goroutines by the object bit they wait on: they become roots when it is marked.
  absl::flat_hash_map<uint64_t, std::vector<size_t>> waiters_;
  std::vector<bool> rooted_;
  std::vector<size_t> ready_;  // goroutines rooted, stacks not yet scanned
  std::vector<uint8_t> buffer_;
  absl::flat_hash_map<uint64_t, TypeMask> types_;  // by the type's address in the target
};

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_MARKER_H_
