// Pclntab::FrameMapsAt: the per-function facts the Go runtime's precise stack scan reads, decoded
// from the table and its funcdata (go:func.*), which stripped binaries keep.
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "symbols/pclntab.h"
#include "symbols/pclntab_layout.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace {

// internal/abi/symtab.go, the same in every release the table formats cover.
constexpr uint32_t kPcdataStackMapIndex = 1;
constexpr uint32_t kFuncdataArgsPointerMaps = 0;
constexpr uint32_t kFuncdataLocalsPointerMaps = 1;
constexpr uint32_t kFuncdataStackObjects = 2;
constexpr uint8_t kFuncFlagTopFrame = 1 << 0;
constexpr uint8_t kFuncFlagSPWrite = 1 << 1;
// A frame of more words than this (1 GiB, the runtime's maxstacksize) is a corrupt map.
constexpr int32_t kMaxMapBits = (1 << 30) / 8;
constexpr uint64_t kMaxStackObjects = 1 << 16;

// Row `index` of the runtime.stackmap {n, nbit int32; bytedata [n][(nbit+7)/8]uint8} at `addr`.
// Not present when there is none or it makes no sense (the caller then scans conservatively).
StackBitmap ReadStackmap(const ElfFile& elf, uint64_t addr, int32_t index) {
  StackBitmap map;
  absl::StatusOr<absl::string_view> head = elf.ReadAt(addr, 8);
  if (addr == 0 || !head.ok()) return map;
  const int32_t n = static_cast<int32_t>(pcln::Le32(head->data()));
  const int32_t nbit = static_cast<int32_t>(pcln::Le32(head->data() + 4));
  if (n <= 0 || nbit < 0 || nbit > kMaxMapBits || index < 0 || (index >= n && nbit > 0)) {
    return map;
  }
  const uint64_t row = (static_cast<uint64_t>(nbit) + 7) / 8;
  absl::StatusOr<absl::string_view> bits = elf.ReadAt(addr + 8 + row * index, row);
  if (!bits.ok()) return map;
  map.present = true;
  map.nbit = nbit;
  map.bits.assign(bits->begin(), bits->end());
  return map;
}

// {n uintptr; records [n]{off, size, ptrBytes int32; gcdataoff uint32}} (1.18+; 1.16-1.17 keep a
// *_type instead, not decoded).
void ReadStackObjects(const ElfFile& elf, bool decoded, uint64_t addr, FrameMaps* frame) {
  absl::StatusOr<absl::string_view> head = elf.ReadAt(addr, 8);
  const uint64_t n = head.ok() ? pcln::Le64(head->data()) : 1;
  if (n == 0) return;
  absl::StatusOr<absl::string_view> records =
      n <= kMaxStackObjects ? elf.ReadAt(addr + 8, n * 16) : absl::OutOfRangeError("");
  if (!decoded || !records.ok()) {
    frame->stack_objects_unknown = true;
    return;
  }
  for (uint64_t i = 0; i < n; ++i) {
    StackObject o;
    o.off = static_cast<int32_t>(pcln::Le32(records->data() + 16 * i));
    o.size = static_cast<int32_t>(pcln::Le32(records->data() + 16 * i + 4));
    if (o.size < 0) {
      frame->stack_objects_unknown = true;
      return;
    }
    frame->stack_objects.push_back(o);
  }
}

bool IsInjected(absl::string_view name) {
  return name == "runtime.asyncPreempt" || name == "runtime.debugCallV2" ||
         name == "runtime.sigpanic";
}

}  // namespace

absl::StatusOr<FrameMaps> Pclntab::FrameMapsAt(uint64_t pc) const {
  const Layout& l = *layout_;
  ASSIGN_OR_RETURN(uint64_t i, l.IndexForPC(pc));
  ASSIGN_OR_RETURN(pcln::FuncInfo f, l.Func(i));
  FrameMaps frame;
  frame.entry = f.entry;
  frame.args = f.args;
  frame.top_frame = (f.flag & kFuncFlagTopFrame) != 0;
  frame.sp_write = (f.flag & kFuncFlagSPWrite) != 0;
  ASSIGN_OR_RETURN(absl::string_view name, l.Name(f.nameoff));
  frame.injected = IsInjected(name);
  ASSIGN_OR_RETURN(frame.sp_delta, l.PcValue(f.pcsp, f.entry, pc));
  if (frame.sp_delta < 0 || frame.sp_delta % 8 != 0) {
    return absl::DataLossError(absl::StrFormat("%s: SP delta %d at %#x", name, frame.sp_delta, pc));
  }
  // At the entry, the entry map (index 0); past it, the map of the call being returned to.
  int32_t index = -1;
  if (pc != f.entry) {
    ASSIGN_OR_RETURN(uint32_t table, l.Pcdata(f, kPcdataStackMapIndex));
    ASSIGN_OR_RETURN(index, l.PcValue(table, f.entry, pc - 1));
  }
  if (index == -1) index = 0;  // the prologue, as the runtime assumes
  ASSIGN_OR_RETURN(uint64_t locals, l.Funcdata(f, kFuncdataLocalsPointerMaps));
  frame.locals = ReadStackmap(*l.elf, locals, index);
  ASSIGN_OR_RETURN(uint64_t args, l.Funcdata(f, kFuncdataArgsPointerMaps));
  frame.arg_words = ReadStackmap(*l.elf, args, index);
  ASSIGN_OR_RETURN(uint64_t objects, l.Funcdata(f, kFuncdataStackObjects));
  if (objects != 0) {
    ReadStackObjects(*l.elf, l.format != Layout::Format::k116, objects, &frame);
  }
  return frame;
}

}  // namespace ctxagent::symbols
