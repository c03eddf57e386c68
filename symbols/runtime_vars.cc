#include "symbols/runtime_vars.h"

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
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
    if (r.target != 0 && r.kind != Kind::kLea) accessed.insert(r.target);
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

}  // namespace ctxagent::symbols
