// Everything ctxagent needs to know about one Go executable, read once: version, function table,
// struct offsets and the probe plan.
#ifndef CTXAGENT_SYMBOLS_GO_BINARY_H_
#define CTXAGENT_SYMBOLS_GO_BINARY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "symbols/buildinfo.h"
#include "symbols/elf_file.h"
#include "symbols/go_facts.h"
#include "symbols/go_offsets.h"
#include "symbols/pclntab.h"
#include "symbols/probe_plan.h"
#include "symbols/runtime_vars.h"

namespace ctxagent::symbols {

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
  // Link-time addresses of runtime.allgs ([]*g) and runtime.allglen (uintptr), from .symtab or,
  // in stripped binaries, from runtime.allgadd's code (runtime_vars.h). A reader takes allglen
  // first, then allgs' array: the runtime stores the grown array before the length.
  absl::StatusOr<uint64_t> AllgsAddress() const;
  absl::StatusOr<uint64_t> AllglenAddress() const;

 private:
  GoBinary() = default;
  std::string path_;
  std::unique_ptr<ElfFile> elf_;
  BuildInfo build_info_;
  std::unique_ptr<Pclntab> pclntab_;
  GoOffsets offsets_;
  ProbePlan plan_;
  bool has_dwarf_ = false;
  absl::StatusOr<AllgVars> allg_vars_ = absl::UnknownError("not looked up");
};

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_GO_BINARY_H_
