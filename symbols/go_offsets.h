// Runtime and context struct field offsets the probes read, from DWARF when the binary has it, else
// from a per-Go-version table (each entry checked in tests against the DWARF of that toolchain).
#ifndef CTXAGENT_SYMBOLS_GO_OFFSETS_H_
#define CTXAGENT_SYMBOLS_GO_OFFSETS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "symbols/buildinfo.h"

namespace ctxagent::symbols {

// Byte offsets; -1 where the field does not exist in that Go version. The per-version values and
// where DWARF describes each field are in go_facts.cc (OffsetFacts()).
struct GoOffsets {
  // runtime.g
  int32_t g_goid = -1;
  int32_t g_parent_goid = -1;   // 1.21+
  int32_t g_gopc = -1;          // PC of the `go` statement
  int32_t g_startpc = -1;       // the goroutine's function
  int32_t g_atomicstatus = -1;  // uint32: _Gidle.. (go_status.h), | _Gscan while the GC scans it
  int32_t g_sched = -1;         // gobuf the goroutine resumes from
  int32_t g_m = -1;             // *m running it (nil unless running or in a syscall)
  int32_t g_waitsince = -1;     // int64 nanotime: set by the first GC that sees it blocked, else 0
  int32_t g_waitreason = -1;    // uint8 waitReason (go_status.h), meaningful while _Gwaiting
  int32_t g_waiting = -1;       // *sudog list it is parked on (linked by sudog.waitlink)
  int32_t g_stack_lo = -1;      // g.stack.lo / .hi: the goroutine's stack bounds
  int32_t g_stack_hi = -1;
  // runtime.gobuf
  int32_t gobuf_sp = -1;
  int32_t gobuf_pc = -1;
  int32_t gobuf_ctxt = -1;  // the funcval a new goroutine starts with
  int32_t gobuf_bp = -1;    // frame pointer: the unwind of a parked goroutine starts here
  // context.cancelCtx (the parent Context interface is at 0 in every context type)
  int32_t cancelctx_done = -1;  // atomic.Value (1.17+; a chan before); data word at +8 of it
  int32_t cancelctx_children = -1;
  int32_t cancelctx_err = -1;
  int32_t cancelctx_cause = -1;  // 1.20+
  // context.timerCtx
  int32_t timerctx_cancelctx = -1;  // cancelCtx embedded (by value, or a pointer in 1.20)
  // True where timerCtx holds `*cancelCtx` (1.20): the cancelCtx fields are then behind the pointer
  // at timerctx_cancelctx, not inline at timerctx_cancelctx + cancelctx_*.
  bool timerctx_cancelctx_is_ptr = false;
  int32_t timerctx_deadline = -1;
  // context.valueCtx
  int32_t valuectx_context = -1;
  // runtime.hchan and its wait queues (runtime.waitq {first, last *sudog})
  int32_t hchan_qcount = -1;
  int32_t hchan_closed = -1;  // uint32
  int32_t hchan_recvq = -1;   // waiting receivers
  int32_t hchan_sendq = -1;   // waiting senders
  int32_t waitq_first = -1;
  int32_t waitq_last = -1;
  // runtime.sudog: one per (goroutine, object waited on)
  int32_t sudog_g = -1;
  int32_t sudog_next = -1;  // next waiter on the same channel queue
  int32_t sudog_prev = -1;
  int32_t sudog_elem = -1;      // data element; a maybeTraceablePtr in 1.26+ (see SudogElemWord)
  int32_t sudog_isselect = -1;  // bool: part of a select (one sudog per case, on g.waiting)
  int32_t sudog_waitlink = -1;  // next sudog of the same goroutine (g.waiting list)
  int32_t sudog_c = -1;         // *hchan; a maybeTraceableChan in 1.26+ (see SudogChanWord)
  // runtime.maybeTraceablePtr {vp unsafe.Pointer; vu uintptr} (1.26+): vu always holds the address,
  // vp is cleared while the GC hides the pointer (goroutine leak detection). -1 before 1.26.
  int32_t traceable_ptr_vu = -1;
  // runtime.itab / internal/abi.ITab: the method table after {inter, _type, hash, _}
  int32_t itab_fun = -1;
  // runtime._type / internal/abi.Type, what a heap object's malloc header points to (1.22+): its
  // size, the bytes of it that may hold pointers, its flags and kind, and its pointer mask.
  int32_t type_size = -1;
  int32_t type_ptrbytes = -1;
  int32_t type_tflag = -1;
  int32_t type_kind = -1;
  int32_t type_gcdata = -1;
  // The heap, for the mark (agent/heap): runtime.mheap's list of every span, and per span its
  // objects (mspan); -1 where the release is not tabled (the mark is then unavailable).
  int32_t mheap_allspans = -1;  // []*mspan
  int32_t mspan_startaddr = -1;
  int32_t mspan_npages = -1;
  int32_t mspan_freeindex = -1;  // uintptr, uint16 from 1.22 (GoRuntimeFacts::mspan_index_u16)
  int32_t mspan_nelems = -1;     // likewise
  int32_t mspan_allocbits = -1;  // *gcBits: bit i = object i was live at the last sweep
  int32_t mspan_spanclass = -1;  // uint8: size class << 1 | noscan
  int32_t mspan_state = -1;      // uint8: 1 = in use (mSpanInUse)
  int32_t mspan_elemsize = -1;
  int32_t semaroot_treap = -1;  // runtime.semaRoot.treap: the root's *sudog tree
  // runtime.moduledata: the globals and their pointer bitmaps (runtime.bitvector {n, bytedata}).
  int32_t moduledata_data = -1;
  int32_t moduledata_edata = -1;
  int32_t moduledata_bss = -1;
  int32_t moduledata_ebss = -1;
  int32_t moduledata_gcdatamask = -1;
  int32_t moduledata_gcbssmask = -1;

  // Offsets of the words holding sudog.elem's and sudog.c's address in every version (the `vu`
  // word from 1.26); -1 when unknown.
  int32_t SudogElemWord() const { return TraceableWord(sudog_elem); }
  int32_t SudogChanWord() const { return TraceableWord(sudog_c); }
  // Bytes from the start of a g that hold every g_* field and g.sched's gobuf_* fields: one read
  // per goroutine. 0 when g_goid is unknown.
  int32_t GReadSpan() const;

  enum class Source { kDwarf, kTable };
  Source source = Source::kTable;

  bool operator==(const GoOffsets& o) const;  // compares the offsets, not `source`
  // Every offset with its name, in declaration order (reports and comparisons).
  std::vector<std::pair<const char*, int32_t>> Named() const;

 private:
  int32_t TraceableWord(int32_t field) const {
    return field < 0 ? -1 : field + (traceable_ptr_vu > 0 ? traceable_ptr_vu : 0);
  }
};

const char* SourceName(GoOffsets::Source source);

// Reads the offsets from the DWARF of the ELF file at `path` (libdw). NotFound without DWARF or
// without one of the types (a program that does not link `context` still has runtime.g: the context
// fields then stay -1 and the result is OK only if runtime.g was found).
absl::StatusOr<GoOffsets> OffsetsFromDwarf(const std::string& path);

// The table entry for a Go release. Unimplemented for releases outside the supported range.
absl::StatusOr<GoOffsets> OffsetsForVersion(const GoVersion& version);

// The releases whose table entry go_offsets_test compares with their own DWARF, in every link mode
// (the fixture toolchains). A binary of one of them is not read for DWARF: decompressing it was
// three quarters of reading a new binary (85 of 116 ms of CPU for bench/loadsvc), the largest
// one-off cost of a service appearing under the daemon. For other releases DWARF wins when present.
inline constexpr int kDwarfVerifiedMinors[] = {19, 21, 22, 23, 24, 26, 27};
bool TableVerifiedAgainstDwarf(const GoVersion& version);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_GO_OFFSETS_H_
