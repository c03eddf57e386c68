// Which functions ctxagent probes in a Go binary of a given version, and at which instruction.
#ifndef CTXAGENT_SYMBOLS_PROBE_PLAN_H_
#define CTXAGENT_SYMBOLS_PROBE_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bpf/ctxagent.h"  // enum ctx_hook only: what the BPF program does at a probe
#include "symbols/buildinfo.h"
#include "symbols/elf_file.h"
#include "symbols/pclntab.h"

namespace ctxagent::symbols {

enum class HookKind {
  kContextCreate,    // propagateCancel: every cancelable context passes here with its parent
  kContextCancel,    // (*cancelCtx).cancel and friends
  kGoroutineCreate,  // runtime.newproc1
  kGoroutineExit,    // runtime.goexit0 / gdestroy
};
const char* HookKindName(HookKind kind);

// A function to probe and where its arguments are at entry (Go register ABI, amd64).
struct HookSpec {
  std::string function;
  HookKind kind;
  bool required = false;   // a binary that uses context but lacks it cannot be traced
  std::string args;        // human-readable register map, e.g. "c=AX parent=BX:CX child=DI:SI"
  bool needs_ret = false;  // its result matters: its RET instructions, or where it is handed on
};

// The hooks for `version`, in a fixed order. Empty for unsupported versions.
std::vector<HookSpec> HooksForVersion(const GoVersion& version);

struct ProbeSite {
  uint64_t address = 0;      // link-time virtual address
  uint64_t file_offset = 0;  // what a uprobe is attached at
  std::string instruction;   // Intel syntax, for humans
  std::string bytes;         // the instruction's encoding, checked in the file before attaching
  bool emulated = false;     // the kernel emulates it (cheap) rather than single-stepping it
};

// Where in its function a probe sits.
enum class SiteKind {
  kStackCheck,  // the stack-bound check's conditional branch: arguments still in registers
  kEntry,       // the entry (NOSPLIT functions have no stack check)
  kReturn,      // a RET
  kHandoff,     // runtime.newproc.func1's `CALL runtime.runqput` right after newproc1 returned:
                // the new g is in BX and the kernel emulates the CALL (a RET is single-stepped)
};
const char* SiteKindName(SiteKind kind);

// One uprobe, exactly as the tracer attaches it.
struct Probe {
  HookKind hook;
  SiteKind kind;
  ctx_hook handler;      // what the BPF program does when it fires
  std::string function;  // whose code the site is in
  ProbeSite site;
};

// A hooked function, found in the binary.
struct PlannedHook {
  HookSpec hook;
  Function function;
  uint64_t entry_file_offset = 0;
};

struct ProbePlan {
  std::vector<PlannedHook> hooks;
  // Every probe to attach, in attach order: endings (goroutine exit, cancel) before beginnings, so
  // that whatever is seen starting is seen ending too while the rest are being attached.
  std::vector<Probe> probes;
  std::vector<std::string> missing;  // optional hooks the binary does not contain (not linked in)
  int entry_fallbacks = 0;           // probes placed on the entry because no stack check was found
};

// Decodes the start of a function (`code` = bytes from its entry at `entry`) and returns the
// conditional branch of the stack-bound check (`CMP RSP|R12, [R14+0x10]` then `JBE/JB`), or
// NotFound when the prologue has no such check (NOSPLIT functions).
absl::StatusOr<ProbeSite> FindStackCheckBranch(absl::string_view code, uint64_t entry);
// Addresses of every RET in a function's code (linear sweep; Go emits no data inside text).
absl::StatusOr<std::vector<ProbeSite>> FindRetSites(absl::string_view code, uint64_t entry);

// Decodes the single instruction at the start of `code` (at `address`) as a probe site, `emulated`
// telling whether the kernel emulates it (relative JMP/CALL/Jcc, NOP, PUSH reg) or single-steps it.
absl::StatusOr<ProbeSite> DecodeProbeSite(absl::string_view code, uint64_t address);

// Every `CALL target` (direct, rel32) in a function's code.
absl::StatusOr<std::vector<ProbeSite>> FindCallSites(absl::string_view code, uint64_t entry,
                                                     uint64_t target);

// One instruction of a function body reduced to the data it references (for locating runtime
// variables in stripped binaries, see runtime_vars.h).
struct DataReference {
  enum class Kind { kLoad, kLea, kXchg, kCall, kOther };
  uint64_t address = 0;      // of the instruction
  Kind kind = Kind::kOther;  // kLoad: MOV reg, [mem]
  // Absolute address of its [RIP+disp] operand, or a direct CALL's (or jump's) callee; 0: none.
  uint64_t target = 0;
  int reg = 0;   // its first register operand, widened to 64 bits (ZydisRegister); 0: none
  int base = 0;  // base register of a plain [reg] memory operand (ZydisRegister); 0: none
};
// Every instruction of `code` (a function body at `entry`), in order (linear sweep).
absl::StatusOr<std::vector<DataReference>> DecodeDataReferences(absl::string_view code,
                                                                uint64_t entry);

// The full plan. `g_has_parent_goid`: the runtime records a goroutine's creator in g.parentGoid
// (else newproc1's entry is probed for it). FailedPrecondition when a required hook is missing
// (binary does not use context).
absl::StatusOr<ProbePlan> PlanProbes(const ElfFile& elf, const Pclntab& pclntab,
                                     const GoVersion& version, bool g_has_parent_goid);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_PROBE_PLAN_H_
