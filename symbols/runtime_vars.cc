#include "symbols/runtime_vars.h"

#include <vector>

#include "Zydis/Zydis.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "symbols/probe_plan.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace {

using Kind = DataReference::Kind;

// allgadd is a few hundred bytes; more is a corrupt table.
constexpr uint64_t kMaxAllgaddSize = 64 << 10;

// The one address A whose words A, A+8 and A+16 (a slice header) are all read or written.
absl::StatusOr<uint64_t> SliceHeader(const std::vector<DataReference>& refs) {
  absl::flat_hash_set<uint64_t> accessed;
  for (const DataReference& r : refs) {
    if (r.target != 0 && r.kind != Kind::kLea && r.kind != Kind::kCall) accessed.insert(r.target);
  }
  uint64_t found = 0;
  int count = 0;
  for (uint64_t a : accessed) {
    if (accessed.contains(a + 8) && accessed.contains(a + 16)) {
      found = a;
      ++count;
    }
  }
  if (count != 1) {
    return absl::NotFoundError(
        absl::StrFormat("runtime.allgadd: %d candidate slice headers for runtime.allgs", count));
  }
  return found;
}

// The LEA'd address of `MOV r1, [len_word]; LEA r2, [X]; XCHG [r2], r1`.
absl::StatusOr<uint64_t> AtomicStoreOf(const std::vector<DataReference>& refs, uint64_t len_word) {
  for (size_t i = 0; i + 2 < refs.size(); ++i) {
    const DataReference &load = refs[i], &lea = refs[i + 1], &xchg = refs[i + 2];
    if (load.kind == Kind::kLoad && load.target == len_word && lea.kind == Kind::kLea &&
        lea.target != 0 && xchg.kind == Kind::kXchg && xchg.base == lea.reg &&
        xchg.reg == load.reg) {
      return lea.target;
    }
  }
  return absl::NotFoundError("runtime.allgadd: no atomic store of len(allgs) to runtime.allglen");
}

}  // namespace

absl::StatusOr<AllgVars> FindAllgVarsInCode(const ElfFile& elf, const Pclntab& pclntab) {
  ASSIGN_OR_RETURN(Function f, pclntab.FindFunction("runtime.allgadd"));
  if (f.end <= f.entry || f.end - f.entry > kMaxAllgaddSize) {
    return absl::DataLossError(
        absl::StrFormat("runtime.allgadd: bad bounds %#x-%#x", f.entry, f.end));
  }
  ASSIGN_OR_RETURN(absl::string_view code, elf.ReadAt(f.entry, f.end - f.entry));
  ASSIGN_OR_RETURN(std::vector<DataReference> refs, DecodeDataReferences(code, f.entry));
  AllgVars out;
  ASSIGN_OR_RETURN(out.allgs, SliceHeader(refs));
  ASSIGN_OR_RETURN(out.allglen, AtomicStoreOf(refs, out.allgs + 8));
  return out;
}

absl::StatusOr<AllgVars> FindAllgVars(const ElfFile& elf, const Pclntab& pclntab) {
  absl::StatusOr<uint64_t> allgs = elf.LookupSymbol("runtime.allgs");
  absl::StatusOr<uint64_t> allglen = elf.LookupSymbol("runtime.allglen");
  if (allgs.ok() && allglen.ok()) return AllgVars{*allgs, *allglen};
  return FindAllgVarsInCode(elf, pclntab);
}

namespace {

// Functions that call a method of runtime.mheap_ with `LEA AX, [mheap_]` right before, in every
// release 1.17+ (stack and span allocation; checked on the fixtures, runtime_vars_test).
constexpr absl::string_view kMheapCallers[] = {
    "runtime.(*mcache).allocLarge", "runtime.(*mcentral).grow",
    "runtime.stackalloc",           "runtime.stackfree",
    "runtime.stackpoolalloc",       "runtime.stackpoolfree",
    "runtime.mallocinit",           "runtime.sweepone",
    "runtime.freeStackSpans"};
// A function of these is a few KiB; more is a corrupt table.
constexpr uint64_t kMaxCallerSize = 256 << 10;
// How many instructions may stand between the LEA of the receiver and the call.
constexpr size_t kReceiverWindow = 4;

}  // namespace

absl::StatusOr<uint64_t> FindMheapInCode(const ElfFile& elf, const Pclntab& pclntab) {
  absl::flat_hash_map<uint64_t, int> votes;  // LEA'd receiver -> callers that pass it
  for (absl::string_view name : kMheapCallers) {
    absl::StatusOr<Function> f = pclntab.FindFunction(name);
    if (!f.ok() || f->end <= f->entry || f->end - f->entry > kMaxCallerSize) continue;
    ASSIGN_OR_RETURN(absl::string_view code, elf.ReadAt(f->entry, f->end - f->entry));
    absl::StatusOr<std::vector<DataReference>> refs = DecodeDataReferences(code, f->entry);
    if (!refs.ok()) continue;
    absl::flat_hash_set<uint64_t> passed;
    for (size_t i = 0; i < refs->size(); ++i) {
      const DataReference& call = (*refs)[i];
      if (call.kind != Kind::kCall || call.target == 0) continue;
      absl::StatusOr<Function> callee = pclntab.FunctionForPC(call.target);
      if (!callee.ok() || !absl::StartsWith(callee->name, "runtime.(*mheap).")) continue;
      for (size_t j = i; j-- > 0 && i - j <= kReceiverWindow;) {
        const DataReference& lea = (*refs)[j];
        if (lea.kind == Kind::kLea && lea.reg == ZYDIS_REGISTER_RAX && lea.target != 0) {
          passed.insert(lea.target);
          break;
        }
      }
    }
    for (uint64_t a : passed) ++votes[a];
  }
  uint64_t best = 0;
  int best_votes = 0, second = 0;
  for (const auto& [addr, n] : votes) {
    if (n > best_votes) {
      second = best_votes;
      best = addr;
      best_votes = n;
    } else if (n > second) {
      second = n;
    }
  }
  // At least two callers must agree, and clearly more than on anything else.
  if (best_votes < 2 || second * 2 >= best_votes) {
    return absl::NotFoundError(absl::StrFormat(
        "runtime.mheap_: no receiver passed by two of the heap's callers (%d votes)", best_votes));
  }
  return best;
}

absl::StatusOr<uint64_t> FindSemtableInCode(const ElfFile& elf, const Pclntab& pclntab) {
  const ElfSection* bss = elf.FindSection(".bss");
  if (bss == nullptr) return absl::NotFoundError("no .bss");
  // semTable.rootFor(addr) is inlined into both: `LEA r, [semtable]`, then the index.
  std::vector<absl::flat_hash_set<uint64_t>> leas;
  for (absl::string_view name : {"runtime.semacquire1", "runtime.semrelease1"}) {
    ASSIGN_OR_RETURN(Function f, pclntab.FindFunction(name));
    if (f.end <= f.entry || f.end - f.entry > kMaxCallerSize) {
      return absl::DataLossError(absl::StrFormat("%s: bad bounds", name));
    }
    ASSIGN_OR_RETURN(absl::string_view code, elf.ReadAt(f.entry, f.end - f.entry));
    ASSIGN_OR_RETURN(std::vector<DataReference> refs, DecodeDataReferences(code, f.entry));
    auto& in_bss = leas.emplace_back();
    for (const DataReference& r : refs) {
      if (r.kind == Kind::kLea && r.target >= bss->addr && r.target < bss->addr + bss->size) {
        in_bss.insert(r.target);
      }
    }
  }
  std::vector<uint64_t> both;
  for (uint64_t a : leas[0]) {
    if (leas[1].contains(a)) both.push_back(a);
  }
  if (both.size() != 1) {
    return absl::NotFoundError(absl::StrFormat(
        "runtime.semtable: %d .bss addresses taken by both semacquire1 and semrelease1",
        both.size()));
  }
  return both[0];
}

absl::StatusOr<uint64_t> FindSemtable(const ElfFile& elf, const Pclntab& pclntab) {
  absl::StatusOr<uint64_t> sym = elf.LookupSymbol("runtime.semtable");
  if (sym.ok()) return *sym;
  return FindSemtableInCode(elf, pclntab);
}

absl::StatusOr<uint64_t> FindMheap(const ElfFile& elf, const Pclntab& pclntab) {
  absl::StatusOr<uint64_t> sym = elf.LookupSymbol("runtime.mheap_");
  if (sym.ok()) return *sym;
  return FindMheapInCode(elf, pclntab);
}

}  // namespace ctxagent::symbols
