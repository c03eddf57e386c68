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

// Byte offsets; -1 where the field does not exist in that Go version.
struct GoOffsets {
  // runtime.g
  int32_t g_goid = -1;
  int32_t g_parent_goid = -1;  // 1.21+
  int32_t g_gopc = -1;
  int32_t g_startpc = -1;
  int32_t g_atomicstatus = -1;
  int32_t g_sched = -1;        // gobuf the goroutine starts from
  int32_t gobuf_ctxt = -1;     // gobuf.ctxt: the funcval a new goroutine starts with
  // context.cancelCtx (the parent Context interface is at 0 in every context type)
  int32_t cancelctx_done = -1;      // atomic.Value (1.17+; a chan before); data word at +8 of it
  int32_t cancelctx_children = -1;
  int32_t cancelctx_err = -1;
  int32_t cancelctx_cause = -1;     // 1.20+
  // context.timerCtx
  int32_t timerctx_cancelctx = -1;  // cancelCtx embedded (by value, or a pointer in 1.20)
  // True where timerCtx holds `*cancelCtx` (1.20): the cancelCtx fields are then behind the pointer
  // at timerctx_cancelctx, not inline at timerctx_cancelctx + cancelctx_*.
  bool timerctx_cancelctx_is_ptr = false;
  int32_t timerctx_deadline = -1;
  // context.valueCtx
  int32_t valuectx_context = -1;
  // runtime.hchan / runtime.sudog
  int32_t hchan_closed = -1;
  int32_t hchan_recvq = -1;
  int32_t sudog_g = -1;

  enum class Source { kDwarf, kTable };
  Source source = Source::kTable;

  bool operator==(const GoOffsets& o) const;  // compares the offsets, not `source`
  // Every offset with its name, in declaration order (reports and comparisons).
  std::vector<std::pair<const char*, int32_t>> Named() const;
};

const char* SourceName(GoOffsets::Source source);

// Reads the offsets from the DWARF of the ELF file at `path` (libdw). NotFound without DWARF or
// without one of the types (a program that does not link `context` still has runtime.g: the context
// fields then stay -1 and the result is OK only if runtime.g was found).
absl::StatusOr<GoOffsets> OffsetsFromDwarf(const std::string& path);

// The table entry for a Go release. Unimplemented for releases outside the supported range.
absl::StatusOr<GoOffsets> OffsetsForVersion(const GoVersion& version);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_GO_OFFSETS_H_
