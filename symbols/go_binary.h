// Everything ctxagent needs to know about one Go executable, read once: version, function table,
// struct offsets and the probe plan.
#ifndef CTXAGENT_SYMBOLS_GO_BINARY_H_
#define CTXAGENT_SYMBOLS_GO_BINARY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "symbols/buildinfo.h"
#include "symbols/elf_file.h"
#include "symbols/go_offsets.h"
#include "symbols/pclntab.h"
#include "symbols/probe_plan.h"

namespace ctxagent::symbols {

// Oldest and newest Go minor versions whose layouts the table knows (1.17 .. 1.27).
inline constexpr int kMinGoMinor = 17;
inline constexpr int kMaxGoMinor = 27;

class GoBinary {
 public:
  // `path` is an executable, or "/proc/<pid>/exe". Errors name the file and the reason: not ELF,
  // not x86-64, not Go, unsupported Go version, no pclntab, a required hook missing.
  static absl::StatusOr<std::unique_ptr<GoBinary>> Open(const std::string& path);

  const std::string& path() const { return path_; }
  const ElfFile& elf() const { return *elf_; }
  const BuildInfo& build_info() const { return build_info_; }
  const Pclntab& pclntab() const { return *pclntab_; }
  const GoOffsets& offsets() const { return offsets_; }
  const ProbePlan& plan() const { return plan_; }
  bool stripped() const { return !elf_->has_symtab(); }
  bool has_dwarf() const { return has_dwarf_; }
  bool pie() const { return elf_->is_pie(); }

 private:
  GoBinary() = default;
  std::string path_;
  std::unique_ptr<ElfFile> elf_;
  BuildInfo build_info_;
  std::unique_ptr<Pclntab> pclntab_;
  GoOffsets offsets_;
  ProbePlan plan_;
  bool has_dwarf_ = false;
};

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_GO_BINARY_H_
