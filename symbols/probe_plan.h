// Which functions ctxagent probes in a Go binary of a given version, and at which instruction.
#ifndef CTXAGENT_SYMBOLS_PROBE_PLAN_H_
#define CTXAGENT_SYMBOLS_PROBE_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "symbols/buildinfo.h"
#include "symbols/elf_file.h"
#include "symbols/pclntab.h"
#include "symbols/probe_table.h"

namespace ctxagent::symbols {

const char* HookKindName(HookKind kind);
const char* SiteKindName(SiteKind kind);

// The probe table's rows for `version`, in table order. Empty for unsupported versions.
std::vector<const ProbeRow*> ProbeRowsForVersion(const GoVersion& version);

// A function to probe: its rows of the probe table for one release.
struct HookSpec {
  std::string function;
  HookKind kind;
  bool required = true;  // ProbeRow::required
  // Its rows' registers, those read elsewhere than at its start prefixed with the site, e.g.
  // "fn=AX callergp=BX callerpc=CX handoff:newg=BX return:newg=AX".
  std::string args;
  bool needs_ret = false;  // its result matters: its RET instructions, or where it is handed on
  std::vector<const ProbeRow*> rows;
};

// The hooks for `version`, in the table's order. Empty for unsupported versions.
std::vector<HookSpec> HooksForVersion(const GoVersion& version);

struct ProbeSite {
  uint64_t address = 0;      // link-time virtual address
  uint64_t file_offset = 0;  // what a uprobe is attached at
  std::string instruction;   // Intel syntax, for humans
  std::string bytes;         // the instruction's encoding, checked in the file before attaching
  bool emulated = false;     // the kernel emulates it (cheap) rather than single-stepping it
};

// One uprobe, exactly as the tracer attaches it.
struct Probe {
  HookKind hook;
  SiteKind kind;
  const char* program;  // the BPF program it runs (ProbeRow::program)
  uint32_t abi;         // the layout that program is told (ProbeRow::abi)
  AttachOrder order;
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
  std::vector<Probe> probes;         // every probe to attach, in attach order (AttachOrder)
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
