// The heap mark's row per in-use span of the target (heap_mark.cc), and how it reads the target's
// fields.
#ifndef CTXAGENT_AGENT_HEAP_HEAP_SPAN_H_
#define CTXAGENT_AGENT_HEAP_HEAP_SPAN_H_

#include <cstdint>
#include <cstring>

namespace ctxagent::heap {

// A field of `bytes` (little-endian) at `off` in what was read.
inline uint64_t Load(const uint8_t* p, uint64_t off, int bytes = 8) {
  uint64_t v = 0;
  memcpy(&v, p + off, bytes);
  return v;
}

// One cache line: MarkWord touches one per word it follows.
struct alignas(64) Span {
  uint64_t base = 0;
  uint64_t bytes = 0;  // npages * page size
  uint64_t elemsize = 0;
  uint64_t nelems = 0;
  uint64_t freeindex = 0;
  uint64_t allocbits = 0;  // *gcBits in the target
  uint64_t bit = 0;        // index of its first object in the bitmaps
  uint32_t div_mul = 0;    // as the runtime's mspan.divMul (0: divide)
  bool noscan = false;
  bool watched = false;  // holds an opaque object or one a goroutine waits on
  bool queued = false;   // holds grey objects, in grey_spans_ or the round being drained
  // Where its objects say which words are pointers (else every word may be one).
  enum Pointers : uint8_t {
    kAnyWord,
    kSpanBits,    // a bit per word at the span's end (Marker::HeapBitsAt)
    kTypeHeader,  // each object's first word: its type (a malloc header)
  };
  Pointers pointers = kAnyWord;
};
static_assert(sizeof(Span) == 64);

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_HEAP_SPAN_H_
