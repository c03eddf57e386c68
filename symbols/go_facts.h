// Go-version facts as data: every runtime/context struct offset and runtime fact ctxagent relies
// on, each with the Go release it applies from (amd64). Read by the DWARF reader, the offset table
// (go_offsets.h) and the agent. Which functions are probed, with which registers: probe_table.h.
#ifndef CTXAGENT_SYMBOLS_GO_FACTS_H_
#define CTXAGENT_SYMBOLS_GO_FACTS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "symbols/buildinfo.h"
#include "symbols/go_offsets.h"

namespace ctxagent::symbols {

// Oldest and newest Go 1.x minor versions whose facts are known (the register ABI starts in 1.17).
inline constexpr int kMinGoMinor = 17;
inline constexpr int kMaxGoMinor = 27;

// True for go1.kMinGoMinor .. go1.kMaxGoMinor, whatever the patch level.
bool IsSupportedGoVersion(const GoVersion& version);
// "go1.17 to go1.27", for error messages.
std::string SupportedGoVersions();

// A value that holds from Go 1.`minor` until the next entry's release. minor == 0 ends a list.
struct Since {
  int minor = 0;
  int32_t value = -1;
};
inline constexpr int kMaxHistory = 6;

// The value of `history` for Go 1.`minor`: the last entry with entry.minor <= minor, or -1.
int32_t ValueAt(const Since (&history)[kMaxHistory], int minor);

// One GoOffsets field: its offset per release and where DWARF describes it. -1 = no such field.
struct OffsetFact {
  const char* name;            // as GoOffsets::Named() reports it, e.g. "g_goid"
  int32_t GoOffsets::*offset;  // the field filled; null for a `flag` fact
  Since history[kMaxHistory];
  const char* type;                  // DWARF type, e.g. "runtime.g"
  const char* member;                // its member, e.g. "goid"
  const char* alt_type = nullptr;    // the same field under another name in other releases
  const char* alt_member = nullptr;  // (runtime.itab.fun is internal/abi.ITab.Fun), or null
  bool GoOffsets::*flag = nullptr;   // a yes/no fact instead: "the member is a pointer" (1) or not
};

// Every offset fact, in GoOffsets declaration order.
absl::Span<const OffsetFact> OffsetFacts();

// Calling-convention and runtime facts that DWARF does not describe (from each release's source
// and disassembly; see docs/internals.md "Go-version facts").
struct GoRuntimeFacts {
  // g.atomicstatus values added after 1.17 (-1 where absent): _Gleaked, _Gdeadextra (both 1.26).
  int32_t g_status_leaked = -1;
  int32_t g_status_dead_extra = -1;
  // mspan.freeindex and mspan.nelems are uint16 (1.22+), else uintptr.
  int32_t mspan_index_u16 = 0;
  // A goroutine parked on a sync primitive (Mutex, RWMutex, WaitGroup, Cond) lists one sudog on
  // g.waiting whose elem is the primitive (1.26+, for the runtime's own leak detection); before,
  // its sudog sits only in the semaphore table or the Cond's notify list.
  int32_t sync_waits_on_g = 0;
  // Objects of up to 512 bytes keep their pointer bits at the end of their span, a bit per word of
  // the span (1.22+, allocation headers: runtime/mbitmap.go heapBitsSmallForAddr); 0 where the
  // bits live elsewhere (the arenas' bitmaps before 1.22).
  int32_t heap_bits_in_span = 0;
  // With the Green Tea GC (the default from 1.26) spans of 16 to 512-byte objects end with 128
  // bytes of inline mark bits, after the pointer bits (spanHeapBitsRange).
  int32_t span_inline_mark_bits = 0;
  // A type with TFlagGCMaskOnDemand (1 << 4) has GCData point to a slot holding its pointer mask,
  // built at its first scan (1.24+; before, that flag meant an unrolled bitmap, and a kind with
  // KindGCProg (1 << 6) a GC program instead of a mask).
  int32_t gc_mask_on_demand = 0;
};

// The facts for a release; Unimplemented outside the supported range.
absl::StatusOr<GoRuntimeFacts> RuntimeFactsForVersion(const GoVersion& version);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_GO_FACTS_H_
