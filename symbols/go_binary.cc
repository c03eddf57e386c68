#include "symbols/go_binary.h"

#include <elf.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace {

// Prefixes an error with the file it concerns, keeping the code.
absl::Status Annotate(const absl::Status& s, absl::string_view path) {
  if (absl::StrContains(s.message(), path)) return s;
  return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<GoBinary>> GoBinary::Open(const std::string& path) {
  std::unique_ptr<GoBinary> bin(new GoBinary());
  bin->path_ = path;
  ASSIGN_OR_RETURN(bin->elf_, ElfFile::Open(path));
  if (bin->elf_->machine() != EM_X86_64) {
    return absl::UnimplementedError(absl::StrCat(path, ": not an x86-64 executable"));
  }
  auto info = ReadBuildInfo(*bin->elf_);
  if (!info.ok()) return Annotate(info.status(), path);
  bin->build_info_ = *std::move(info);
  const GoVersion& v = bin->build_info_.version;
  if (!IsSupportedGoVersion(v)) {
    return absl::UnimplementedError(absl::StrCat(path, ": Go version ", v.raw,
                                                 " is not supported (supported: ",
                                                 SupportedGoVersions(), ")"));
  }
  auto pcln = Pclntab::Parse(*bin->elf_);
  if (!pcln.ok()) return Annotate(pcln.status(), path);
  bin->pclntab_ = *std::move(pcln);

  bin->has_dwarf_ = bin->elf_->FindSection(".debug_info") != nullptr ||
                    bin->elf_->FindSection(".zdebug_info") != nullptr;
  absl::StatusOr<GoOffsets> offsets = absl::NotFoundError("no DWARF");
  if (bin->has_dwarf_) offsets = OffsetsFromDwarf(path);
  if (!offsets.ok()) offsets = OffsetsForVersion(v);
  if (!offsets.ok()) return Annotate(offsets.status(), path);
  bin->offsets_ = *offsets;

  auto plan = PlanProbes(*bin->elf_, *bin->pclntab_, v);
  if (!plan.ok()) return Annotate(plan.status(), path);
  bin->plan_ = *std::move(plan);
  // Not fatal: only the goroutine enumeration needs them.
  bin->allg_vars_ = FindAllgVars(*bin->elf_, *bin->pclntab_);
  if (!bin->allg_vars_.ok()) bin->allg_vars_ = Annotate(bin->allg_vars_.status(), path);
  return bin;
}

absl::StatusOr<uint64_t> GoBinary::AllgsAddress() const {
  if (!allg_vars_.ok()) return allg_vars_.status();
  return allg_vars_->allgs;
}

absl::StatusOr<uint64_t> GoBinary::AllglenAddress() const {
  if (!allg_vars_.ok()) return allg_vars_.status();
  return allg_vars_->allglen;
}

}  // namespace ctxagent::symbols
