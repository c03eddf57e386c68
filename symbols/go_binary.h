// Everything ctxagent needs to know about one Go executable, read once: version, function table,
// struct offsets and the probe plan.
#ifndef CTXAGENT_SYMBOLS_GO_BINARY_H_
#define CTXAGENT_SYMBOLS_GO_BINARY_H_

#include <sys/stat.h>

#include <cstdint>
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

// Which file a path named when it was looked at. dev+ino name the file while anyone holds it open;
// size and times tell a file that later got the same inode number (or was rewritten) from it.
struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;

  static FileIdentity Of(const struct stat& st);
  bool SameInode(const FileIdentity& o) const { return dev == o.dev && ino == o.ino; }
  bool operator==(const FileIdentity& o) const {
    return SameInode(o) && size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
  }
  template <typename H>
  friend H AbslHashValue(H h, const FileIdentity& f) {
    return H::combine(std::move(h), f.dev, f.ino, f.size, f.mtime_ns, f.ctime_ns);
  }
};

// One Go executable, opened once: the descriptor stays open for the object's life, so everything
// read (and every probe attached through fd_path()) concerns this very file, whatever its path
// (e.g. /proc/<pid>/exe, which follows exec and pid reuse) names later.
class GoBinary {
 public:
  // `path` is an executable, or "/proc/<pid>/exe". Errors name the file and the reason: not a
  // regular file, not ELF, not x86-64, not Go, unsupported Go version, no pclntab, a required hook
  // missing.
  static absl::StatusOr<std::unique_ptr<GoBinary>> Open(const std::string& path);
  ~GoBinary();
  GoBinary(const GoBinary&) = delete;
  GoBinary& operator=(const GoBinary&) = delete;

  const std::string& path() const { return path_; }  // as opened, for messages
  const FileIdentity& identity() const { return identity_; }
  // "/proc/self/fd/N": names the opened file for as long as this object lives.
  std::string fd_path() const;
  // Checks, reading the file through the kept descriptor, that every planned probe site still
  // holds the instruction bytes it was planned on. FailedPrecondition naming the first that
  // does not (the file was rewritten in place).
  absl::Status VerifyProbeSites() const;
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
  // Link-time address of runtime.mheap_, from .symtab or the heap's callers' code
  // (runtime_vars.h): the mark's way to every span.
  const absl::StatusOr<uint64_t>& MheapAddress() const { return mheap_; }
  // Link-time address of runtime.semtable (runtime_vars.h): sync waits before Go 1.26.
  const absl::StatusOr<uint64_t>& SemtableAddress() const { return semtable_; }

 private:
  GoBinary() = default;
  std::string path_;
  int fd_ = -1;
  FileIdentity identity_;
  std::unique_ptr<ElfFile> elf_;
  BuildInfo build_info_;
  std::unique_ptr<Pclntab> pclntab_;
  GoOffsets offsets_;
  ProbePlan plan_;
  bool has_dwarf_ = false;
  absl::StatusOr<AllgVars> allg_vars_ = absl::UnknownError("not looked up");
  absl::StatusOr<uint64_t> mheap_ = absl::UnknownError("not looked up");
  absl::StatusOr<uint64_t> semtable_ = absl::UnknownError("not looked up");
};

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_GO_BINARY_H_
