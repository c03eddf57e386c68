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
  if (v.major != 1 || v.minor < kMinGoMinor || v.minor > kMaxGoMinor) {
    return absl::UnimplementedError(absl::StrCat(path, ": Go version ", v.raw,
                                                 " is not supported (supported: go1.", kMinGoMinor,
                                                 " to go1.", kMaxGoMinor, ")"));
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
  return bin;
}

}  // namespace ctxagent::symbols
