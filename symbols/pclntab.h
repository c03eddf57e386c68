// Go's function table (`.gopclntab`): functions by name and PC, and PC -> file:line with inlined
// frames. Formats: Go 1.16-1.17 (magic 0xFFFFFFFA), 1.18-1.19 (0xFFFFFFF0), 1.20+ (0xFFFFFFF1), in
// non-PIE, internally linked PIE and externally linked PIE binaries, stripped or not.
#ifndef CTXAGENT_SYMBOLS_PCLNTAB_H_
#define CTXAGENT_SYMBOLS_PCLNTAB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "symbols/elf_file.h"

namespace ctxagent::symbols {

struct Function {
  std::string name;
  uint64_t entry = 0;  // link-time virtual address
  uint64_t end = 0;    // exclusive
};

// One frame of a symbolized PC; Symbolize returns the innermost (possibly inlined) frame first.
struct SourceFrame {
  std::string function;
  std::string file;
  int line = 0;
  bool inlined = false;
  // Generated code (FuncIDWrapper: method and ABI wrappers, the closure of a `go f(x)` statement)
  // that the runtime's traceback hides.
  bool wrapper = false;
};

// A stack map (runtime.stackmap) row: which words of a frame region hold live pointers.
struct StackBitmap {
  bool present = false;       // the function has this map (FUNCDATA_{Args,Locals}PointerMaps)
  int32_t nbit = 0;           // words the row covers
  std::vector<uint8_t> bits;  // one bit per word, set where a live pointer is
};

// An address-taken local of a frame (runtime.stackObjectRecord).
struct StackObject {
  int32_t off = 0;  // from varp when negative (locals), else from argp (arguments)
  int32_t size = 0;
};

// What the runtime's stack scan (runtime/stkframe.go getStackMap, mgcmark.go scanframeworker)
// knows of the frame of the function containing a PC.
struct FrameMaps {
  uint64_t entry = 0;      // link-time
  int32_t sp_delta = 0;    // pcsp at the PC: bytes below the SP the function was entered with
  int32_t args = 0;        // bytes of arguments and results (_func.args); negative: unknown
  bool top_frame = false;  // FuncFlagTopFrame: the outermost frame of a stack (goexit, mstart)
  bool sp_write = false;   // FuncFlagSPWrite: writes SP, no unwinding through it
  // Entered by a signal rather than a call (asyncPreempt, debugCallV2, sigpanic): its caller's
  // frame is at an instruction with no stack map and has live pointers in spilled registers.
  bool injected = false;
  // Address-taken locals (FUNCDATA_StackObjects): scanned when a pointer reaches them.
  std::vector<StackObject> stack_objects;
  bool stack_objects_unknown = false;  // some whose extents are not decoded (1.16-1.17, corrupt)
  StackBitmap locals;                  // the words below varp
  StackBitmap arg_words;               // the words from argp
};

class Pclntab {
 public:
  // Locates and validates the table. The ElfFile must outlive the Pclntab.
  static absl::StatusOr<std::unique_ptr<Pclntab>> Parse(const ElfFile& elf);

  uint32_t magic() const { return magic_; }
  uint64_t vaddr() const { return vaddr_; }            // where the table is loaded
  uint64_t text_start() const { return text_start_; }  // from the header, or moduledata on 1.26+
  uint64_t moduledata() const { return moduledata_; }  // 0 when not located
  size_t num_functions() const { return nfunc_; }

  // The i-th function in address order, i < num_functions().
  absl::StatusOr<Function> FunctionAt(size_t i) const;
  // By full symbol name, e.g. "context.(*cancelCtx).propagateCancel". NotFound when absent.
  absl::StatusOr<Function> FindFunction(absl::string_view name) const;
  // The function containing `pc`. NotFound outside the text.
  absl::StatusOr<Function> FunctionForPC(uint64_t pc) const;
  // Frames at `pc`, innermost first; inlined callers are expanded through the inline tree.
  // For a return address, pass `ret - 1` to name the call's line.
  absl::StatusOr<std::vector<SourceFrame>> Symbolize(uint64_t pc) const;
  // The frame of a function stopped at `pc`, a return address or a parked goroutine's
  // g.sched.pc: SP delta at `pc`, stack maps at the call before it (as the runtime, `pc - 1` unless
  // `pc` is the entry). NotFound outside the text; DataLoss when the table is inconsistent.
  // Defined in stack_maps.cc.
  absl::StatusOr<FrameMaps> FrameMapsAt(uint64_t pc) const;

 private:
  Pclntab() = default;
  // (implementation state is private to pclntab.cc)
  uint32_t magic_ = 0;
  uint64_t vaddr_ = 0;
  uint64_t text_start_ = 0;
  uint64_t moduledata_ = 0;
  size_t nfunc_ = 0;
  uint8_t wrapper_func_id_ = 0;
  struct Layout;
  std::shared_ptr<const Layout> layout_;
  // Built on first FindFunction (not thread-safe: call it once before sharing the Pclntab).
  mutable bool by_name_built_ = false;
  // Keys are views into the mapped table: no copy of ~10k names to find a dozen.
  mutable absl::flat_hash_map<absl::string_view, uint32_t> by_name_;
};

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_PCLNTAB_H_
