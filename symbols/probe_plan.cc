#include "symbols/probe_plan.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symbols/go_facts.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace {

// Offsets of g.stackguard0 / g.stackguard1 (R14 = g). //go:systemstack functions compare against
// stackguard1 (e.g. runtime.scanstack); both are the same check for our purpose.
constexpr int64_t kStackguard0 = 0x10;
constexpr int64_t kStackguard1 = 0x18;
// The stack check is at most 5 instructions (big-frame form), optionally after an ABI0 assembly
// function's `MOV R14, FS:[-8]` g load.
constexpr int kMaxPrologueInstructions = 6;
// Go's largest functions are a few hundred KiB; anything bigger is a corrupt table, not code.
constexpr uint64_t kMaxFunctionSize = 4 << 20;

struct Decoded {
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

class Decoder {
 public:
  Decoder() {
    ZydisDecoderInit(&decoder_, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisFormatterInit(&formatter_, ZYDIS_FORMATTER_STYLE_INTEL);
    ZydisFormatterSetProperty(&formatter_, ZYDIS_FORMATTER_PROP_ADDR_PADDING_ABSOLUTE,
                              ZYDIS_PADDING_DISABLED);
  }

  // Decodes the instruction at `code[offset]` (address `address`).
  absl::Status Decode(absl::string_view code, size_t offset, uint64_t address, Decoded* out) const {
    if (offset >= code.size()) {
      return absl::OutOfRangeError(absl::StrFormat("no bytes at %#x", address));
    }
    ZyanStatus status = ZydisDecoderDecodeFull(&decoder_, code.data() + offset,
                                               code.size() - offset, &out->insn, out->ops);
    if (!ZYAN_SUCCESS(status)) {
      return absl::DataLossError(absl::StrFormat(
          "cannot decode instruction at %#x (byte %#04x, %d bytes left, zydis status %#x)", address,
          static_cast<uint8_t>(code[offset]), code.size() - offset, status));
    }
    return absl::OkStatus();
  }

  std::string Format(const Decoded& d, uint64_t address) const {
    char buf[256];
    if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&formatter_, &d.insn, d.ops,
                                                      d.insn.operand_count_visible, buf,
                                                      sizeof(buf), address, nullptr))) {
      return "<unformattable>";
    }
    return buf;
  }

 private:
  ZydisDecoder decoder_;
  ZydisFormatter formatter_;
};

const Decoder& GetDecoder() {
  static const Decoder* decoder = new Decoder();
  return *decoder;
}

bool IsReg(const ZydisDecodedOperand& op, ZydisRegister reg) {
  return op.type == ZYDIS_OPERAND_TYPE_REGISTER && op.reg.value == reg;
}

// [R14 + stackguard], no index.
bool IsStackguardMem(const ZydisDecodedOperand& op) {
  return op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.base == ZYDIS_REGISTER_R14 &&
         op.mem.index == ZYDIS_REGISTER_NONE && op.mem.segment != ZYDIS_REGISTER_FS &&
         op.mem.segment != ZYDIS_REGISTER_GS &&
         (op.mem.disp.value == kStackguard0 || op.mem.disp.value == kStackguard1);
}

// `CMP RSP|R12, [R14+0x10|0x18]`.
bool IsStackCheckCmp(const Decoded& d) {
  return d.insn.mnemonic == ZYDIS_MNEMONIC_CMP && d.insn.operand_count_visible == 2 &&
         (IsReg(d.ops[0], ZYDIS_REGISTER_RSP) || IsReg(d.ops[0], ZYDIS_REGISTER_R12)) &&
         IsStackguardMem(d.ops[1]);
}

// Instructions Go emits before the CMP that touch neither argument registers nor memory the
// arguments live in, so a probe after them reads the same arguments as one at the entry.
bool IsHarmlessPrologue(const Decoded& d) {
  const ZydisDecodedOperand* o = d.ops;
  switch (d.insn.mnemonic) {
    case ZYDIS_MNEMONIC_LEA:  // LEA R12, [RSP-N]
      return IsReg(o[0], ZYDIS_REGISTER_R12) && o[1].type == ZYDIS_OPERAND_TYPE_MEMORY &&
             o[1].mem.base == ZYDIS_REGISTER_RSP && o[1].mem.index == ZYDIS_REGISTER_NONE;
    case ZYDIS_MNEMONIC_MOV:  // MOV R12, RSP (big frames) / MOV R14, FS:[-8] (ABI0 asm)
      return (IsReg(o[0], ZYDIS_REGISTER_R12) && IsReg(o[1], ZYDIS_REGISTER_RSP)) ||
             (IsReg(o[0], ZYDIS_REGISTER_R14) && o[1].type == ZYDIS_OPERAND_TYPE_MEMORY &&
              o[1].mem.segment == ZYDIS_REGISTER_FS);
    case ZYDIS_MNEMONIC_SUB:  // SUB R12, N
      return IsReg(o[0], ZYDIS_REGISTER_R12) && o[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE;
    case ZYDIS_MNEMONIC_JB:  // big frames: SP-N wrapped around
      return true;
    default:
      return false;
  }
}

bool IsConditionalJump(ZydisMnemonic m) {
  switch (m) {
    case ZYDIS_MNEMONIC_JB:
    case ZYDIS_MNEMONIC_JBE:
    case ZYDIS_MNEMONIC_JL:
    case ZYDIS_MNEMONIC_JLE:
    case ZYDIS_MNEMONIC_JNB:
    case ZYDIS_MNEMONIC_JNBE:
    case ZYDIS_MNEMONIC_JNL:
    case ZYDIS_MNEMONIC_JNLE:
    case ZYDIS_MNEMONIC_JNO:
    case ZYDIS_MNEMONIC_JNP:
    case ZYDIS_MNEMONIC_JNS:
    case ZYDIS_MNEMONIC_JNZ:
    case ZYDIS_MNEMONIC_JO:
    case ZYDIS_MNEMONIC_JP:
    case ZYDIS_MNEMONIC_JS:
    case ZYDIS_MNEMONIC_JZ:
      return true;
    default:
      return false;
  }
}

// What arch/x86/kernel/uprobes.c emulates instead of single-stepping: relative JMP/CALL/Jcc,
// plain NOP (0x90), and `PUSH reg` (0x50+r, or 0x41 0x50+r; kernel >= 6.13). `bytes` starts at the
// instruction.
bool KernelEmulates(const Decoded& d, const char* bytes) {
  const ZydisDecodedInstruction& i = d.insn;
  const bool relative = (i.attributes & ZYDIS_ATTRIB_IS_RELATIVE) != 0;
  const auto byte = [bytes](int k) { return static_cast<uint8_t>(bytes[k]); };
  switch (i.mnemonic) {
    case ZYDIS_MNEMONIC_JMP:
    case ZYDIS_MNEMONIC_CALL:
      return relative && (byte(0) == 0xe8 || byte(0) == 0xe9 || byte(0) == 0xeb);
    case ZYDIS_MNEMONIC_NOP:
      return byte(i.length - 1) == 0x90;
    case ZYDIS_MNEMONIC_PUSH:
      return (i.length == 1 && byte(0) >= 0x50 && byte(0) <= 0x57) ||
             (i.length == 2 && byte(0) == 0x41 && byte(1) >= 0x50 && byte(1) <= 0x57);
    default:
      return relative && IsConditionalJump(i.mnemonic);
  }
}

// `bytes` starts at the instruction.
ProbeSite MakeSite(const Decoded& d, uint64_t address, const char* bytes, bool emulated) {
  ProbeSite site;
  site.address = address;
  site.instruction = GetDecoder().Format(d, address);
  site.bytes.assign(bytes, d.insn.length);
  site.emulated = emulated;
  return site;
}

}  // namespace

const char* HookKindName(HookKind kind) {
  switch (kind) {
    case HookKind::kContextCreate:
      return "context_create";
    case HookKind::kContextCancel:
      return "context_cancel";
    case HookKind::kGoroutineCreate:
      return "goroutine_create";
    case HookKind::kGoroutineExit:
      return "goroutine_exit";
  }
  return "unknown";
}

const char* SiteKindName(SiteKind kind) {
  switch (kind) {
    case SiteKind::kStackCheck:
      return "stack_check";
    case SiteKind::kEntry:
      return "entry";
    case SiteKind::kReturn:
      return "return";
    case SiteKind::kHandoff:
      return "handoff";
  }
  return "unknown";
}

std::vector<const ProbeRow*> ProbeRowsForVersion(const GoVersion& v) {
  std::vector<const ProbeRow*> rows;
  if (!IsSupportedGoVersion(v)) return rows;  // releases after the newest are unverified
  for (const ProbeRow& r : kProbeTable) {
    if (v.minor >= r.since && (r.until == 0 || v.minor <= r.until)) rows.push_back(&r);
  }
  return rows;
}

std::vector<HookSpec> HooksForVersion(const GoVersion& v) {
  std::vector<HookSpec> hooks;
  for (const ProbeRow* r : ProbeRowsForVersion(v)) {
    if (hooks.empty() || hooks.back().function != r->function) {
      hooks.push_back(HookSpec{r->function, r->hook, r->required});
    }
    HookSpec& h = hooks.back();
    const bool at_start = r->site == SiteKind::kStackCheck;
    absl::StrAppend(&h.args, h.args.empty() ? "" : " ",
                    at_start ? "" : absl::StrCat(SiteKindName(r->site), ":"), r->args);
    h.needs_ret |= !at_start;
    h.rows.push_back(r);
  }
  return hooks;
}

absl::StatusOr<ProbeSite> FindStackCheckBranch(absl::string_view code, uint64_t entry) {
  const Decoder& decoder = GetDecoder();
  size_t offset = 0;
  bool after_cmp = false;
  for (int n = 0; n < kMaxPrologueInstructions; ++n) {
    Decoded d;
    RETURN_IF_ERROR(decoder.Decode(code, offset, entry + offset, &d));
    if (after_cmp) {
      // JBE is what Go emits; JB is accepted as the same unsigned bound test.
      if ((d.insn.mnemonic == ZYDIS_MNEMONIC_JBE || d.insn.mnemonic == ZYDIS_MNEMONIC_JB) &&
          (d.insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE)) {
        return MakeSite(d, entry + offset, code.data() + offset,
                        KernelEmulates(d, code.data() + offset));
      }
      return absl::NotFoundError(
          absl::StrFormat("stack-bound CMP at %#x is not followed by JBE/JB", entry + offset));
    }
    if (IsStackCheckCmp(d)) {
      after_cmp = true;
    } else if (!IsHarmlessPrologue(d)) {
      return absl::NotFoundError(
          absl::StrFormat("no stack-bound check in the prologue at %#x (instruction %d: %s)", entry,
                          n, decoder.Format(d, entry + offset)));
    }
    offset += d.insn.length;
  }
  return absl::NotFoundError(absl::StrFormat(
      "no stack-bound check in the first %d instructions at %#x", kMaxPrologueInstructions, entry));
}

namespace {

// Decodes every instruction of a function body in order; the sites for which `pick` says whether
// the kernel would emulate them (nullopt: not a site).
absl::StatusOr<std::vector<ProbeSite>> ScanSites(
    absl::string_view code, uint64_t entry,
    const std::function<std::optional<bool>(const Decoded&, uint64_t pc)>& pick) {
  const Decoder& decoder = GetDecoder();
  std::vector<ProbeSite> sites;
  for (size_t offset = 0; offset < code.size();) {
    Decoded d;
    RETURN_IF_ERROR(decoder.Decode(code, offset, entry + offset, &d));
    if (std::optional<bool> emulated = pick(d, entry + offset)) {
      sites.push_back(MakeSite(d, entry + offset, code.data() + offset, *emulated));
    }
    offset += d.insn.length;
  }
  return sites;
}

}  // namespace

absl::StatusOr<std::vector<ProbeSite>> FindRetSites(absl::string_view code, uint64_t entry) {
  return ScanSites(code, entry, [](const Decoded& d, uint64_t) -> std::optional<bool> {
    if (d.insn.mnemonic != ZYDIS_MNEMONIC_RET) return std::nullopt;
    return false;  // single-stepped
  });
}

absl::StatusOr<std::vector<ProbeSite>> FindCallSites(absl::string_view code, uint64_t entry,
                                                     uint64_t target) {
  return ScanSites(code, entry, [target](const Decoded& d, uint64_t pc) -> std::optional<bool> {
    ZyanU64 dest = 0;
    if (d.insn.mnemonic == ZYDIS_MNEMONIC_CALL && d.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
        ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&d.insn, &d.ops[0], pc, &dest)) && dest == target) {
      return true;  // the kernel emulates a relative CALL
    }
    return std::nullopt;
  });
}

absl::StatusOr<std::vector<DataReference>> DecodeDataReferences(absl::string_view code,
                                                                uint64_t entry) {
  const Decoder& decoder = GetDecoder();
  std::vector<DataReference> out;
  for (size_t offset = 0; offset < code.size();) {
    Decoded d;
    const uint64_t pc = entry + offset;
    RETURN_IF_ERROR(decoder.Decode(code, offset, pc, &d));
    offset += d.insn.length;
    DataReference r;
    r.address = pc;
    for (int i = 0; i < d.insn.operand_count_visible; ++i) {
      const ZydisDecodedOperand& op = d.ops[i];
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER && r.reg == 0) {
        r.reg = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, op.reg.value);
      } else if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.base == ZYDIS_REGISTER_RIP) {
        ZyanU64 target = 0;
        if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&d.insn, &op, pc, &target))) r.target = target;
      } else if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.index == ZYDIS_REGISTER_NONE &&
                 op.mem.disp.value == 0) {
        r.base = op.mem.base;
      } else if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE && op.imm.is_relative) {
        ZyanU64 target = 0;  // a direct CALL's callee
        if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&d.insn, &op, pc, &target))) r.target = target;
      }
    }
    switch (d.insn.mnemonic) {
      case ZYDIS_MNEMONIC_LEA:
        r.kind = DataReference::Kind::kLea;
        break;
      case ZYDIS_MNEMONIC_XCHG:
        r.kind = DataReference::Kind::kXchg;
        break;
      case ZYDIS_MNEMONIC_CALL:
        r.kind = DataReference::Kind::kCall;
        break;
      case ZYDIS_MNEMONIC_MOV:  // a load when the register is the destination
        r.kind = d.ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER ? DataReference::Kind::kLoad
                                                              : DataReference::Kind::kOther;
        break;
      default:
        break;
    }
    out.push_back(r);
  }
  return out;
}

absl::StatusOr<ProbeSite> DecodeProbeSite(absl::string_view code, uint64_t address) {
  Decoded d;
  RETURN_IF_ERROR(GetDecoder().Decode(code, 0, address, &d));
  return MakeSite(d, address, code.data(), KernelEmulates(d, code.data()));
}

namespace {

// The CALLs of `row.calls` in `row.in` (newproc's system-stack closure hands the new g to runqput
// right after newproc1 returns). Empty when the runtime is shaped otherwise.
absl::StatusOr<std::vector<ProbeSite>> FindHandoffSites(const ElfFile& elf, const Pclntab& pclntab,
                                                        const ProbeRow& row) {
  if (row.in == nullptr || row.calls == nullptr) return std::vector<ProbeSite>();
  absl::StatusOr<Function> closure = pclntab.FindFunction(row.in);
  absl::StatusOr<Function> runqput = pclntab.FindFunction(row.calls);
  if (!closure.ok() || !runqput.ok() || closure->end <= closure->entry ||
      closure->end - closure->entry > kMaxFunctionSize) {
    return std::vector<ProbeSite>();
  }
  ASSIGN_OR_RETURN(absl::string_view code,
                   elf.ReadAt(closure->entry, closure->end - closure->entry));
  ASSIGN_OR_RETURN(std::vector<ProbeSite> sites,
                   FindCallSites(code, closure->entry, runqput->entry));
  for (ProbeSite& site : sites) {
    ASSIGN_OR_RETURN(site.file_offset, elf.VaddrToFileOffset(site.address));
  }
  return sites;
}

}  // namespace

namespace {

Probe ProbeAt(const ProbeRow& row, SiteKind kind, std::string function, ProbeSite site) {
  return Probe{row.hook,       kind, row.program, row.abi, row.order, std::move(function),
               std::move(site)};
}

// The probe on a function's own code: its stack-check branch, or its entry (NOSPLIT).
absl::StatusOr<Probe> FunctionProbe(const ElfFile& elf, const Function& fn, absl::string_view code,
                                    const ProbeRow& row, ProbePlan& plan) {
  Probe p = ProbeAt(row, SiteKind::kStackCheck, fn.name, {});
  absl::StatusOr<ProbeSite> branch = FindStackCheckBranch(code, fn.entry);
  if (branch.ok()) {
    p.site = *std::move(branch);
  } else if (absl::IsNotFound(branch.status())) {
    // The entry is always an instruction boundary.
    ASSIGN_OR_RETURN(p.site, DecodeProbeSite(code, fn.entry));
    p.kind = SiteKind::kEntry;
    ++plan.entry_fallbacks;
  } else {
    return absl::Status(branch.status().code(),
                        absl::StrCat(fn.name, ": ", branch.status().message()));
  }
  ASSIGN_OR_RETURN(p.site.file_offset, elf.VaddrToFileOffset(p.site.address));
  return p;
}

// The RET sites of `fn`.
absl::Status PlanReturns(const ElfFile& elf, const Function& fn, absl::string_view code,
                         const ProbeRow& row, ProbePlan& plan) {
  absl::StatusOr<std::vector<ProbeSite>> rets = FindRetSites(code, fn.entry);
  if (!rets.ok()) {
    return absl::Status(rets.status().code(), absl::StrCat(fn.name, ": ", rets.status().message()));
  }
  if (rets->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(fn.name, " has no RET instruction to probe"));
  }
  for (ProbeSite& site : *rets) {
    ASSIGN_OR_RETURN(site.file_offset, elf.VaddrToFileOffset(site.address));
    plan.probes.push_back(ProbeAt(row, SiteKind::kReturn, fn.name, std::move(site)));
  }
  return absl::OkStatus();
}

// The probes of one hooked function, one row at a time. `g_has_parent_goid`: see PlanProbes.
absl::Status PlanHook(const ElfFile& elf, const Pclntab& pclntab, const HookSpec& hook,
                      const Function& fn, bool g_has_parent_goid, ProbePlan& plan) {
  ASSIGN_OR_RETURN(absl::string_view code, elf.ReadAt(fn.entry, fn.end - fn.entry));
  bool handed_off = false;
  for (const ProbeRow* row : hook.rows) {
    if ((row->when == PlaceWhen::kNoParentGoid && g_has_parent_goid) ||
        (row->when == PlaceWhen::kNoHandoff && handed_off)) {
      continue;
    }
    switch (row->site) {
      case SiteKind::kStackCheck:
      case SiteKind::kEntry: {  // a stack check's fallback, never a row's site
        ASSIGN_OR_RETURN(Probe p, FunctionProbe(elf, fn, code, *row, plan));
        plan.probes.push_back(std::move(p));
        break;
      }
      case SiteKind::kReturn:
        RETURN_IF_ERROR(PlanReturns(elf, fn, code, *row, plan));
        break;
      case SiteKind::kHandoff: {
        ASSIGN_OR_RETURN(std::vector<ProbeSite> sites, FindHandoffSites(elf, pclntab, *row));
        for (ProbeSite& site : sites) {
          plan.probes.push_back(ProbeAt(*row, SiteKind::kHandoff, row->in, std::move(site)));
        }
        handed_off |= !sites.empty();
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ProbePlan> PlanProbes(const ElfFile& elf, const Pclntab& pclntab,
                                     const GoVersion& version, bool g_has_parent_goid) {
  std::vector<HookSpec> hooks = HooksForVersion(version);
  if (hooks.empty()) {
    return absl::UnimplementedError(absl::StrFormat("unsupported Go version %d.%d (%s)",
                                                    version.major, version.minor, version.raw));
  }
  ProbePlan plan;
  for (HookSpec& hook : hooks) {
    absl::StatusOr<Function> fn = pclntab.FindFunction(hook.function);
    if (!fn.ok()) {
      if (!absl::IsNotFound(fn.status())) return fn.status();
      if (hook.required) {
        // Context hooks are absent when the program never creates a cancelable context; runtime
        // hooks only when the runtime changed shape (an unsupported release).
        return absl::FailedPreconditionError(absl::StrCat(
            hook.kind == HookKind::kContextCreate || hook.kind == HookKind::kContextCancel
                ? "binary does not use context.WithCancel: "
                : "unsupported Go runtime: ",
            "required function ", hook.function, " not found (", fn.status().message(), ")"));
      }
      plan.missing.push_back(hook.function);
      continue;
    }
    if (fn->end <= fn->entry || fn->end - fn->entry > kMaxFunctionSize) {
      return absl::DataLossError(
          absl::StrFormat("%s has implausible bounds [%#x, %#x)", fn->name, fn->entry, fn->end));
    }
    RETURN_IF_ERROR(PlanHook(elf, pclntab, hook, *fn, g_has_parent_goid, plan));
    PlannedHook planned{std::move(hook), *fn, 0};
    ASSIGN_OR_RETURN(planned.entry_file_offset, elf.VaddrToFileOffset(fn->entry));
    plan.hooks.push_back(std::move(planned));
  }
  std::stable_sort(plan.probes.begin(), plan.probes.end(),
                   [](const Probe& a, const Probe& b) { return a.order < b.order; });
  return plan;
}

}  // namespace ctxagent::symbols
