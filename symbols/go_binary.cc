#include "symbols/go_binary.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace {

// Prefixes an error with the file it concerns, keeping the code.
absl::Status Annotate(const absl::Status& s, absl::string_view path) {
  if (absl::StrContains(s.message(), path)) return s;
  return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
}

}  // namespace

FileIdentity FileIdentity::Of(const struct stat& st) {
  auto ns = [](const timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; };
  return {st.st_dev, st.st_ino, st.st_size, ns(st.st_mtim), ns(st.st_ctim)};
}

GoBinary::~GoBinary() {
  if (fd_ >= 0) close(fd_);
}

std::string GoBinary::fd_path() const { return absl::StrCat("/proc/self/fd/", fd_); }

absl::Status GoBinary::VerifyProbeSites() const {
  std::string now;
  for (const Probe& p : plan_.probes) {
    const ProbeSite& s = p.site;
    now.resize(s.bytes.size());
    const ssize_t n = pread(fd_, now.data(), now.size(), static_cast<off_t>(s.file_offset));
    if (n == static_cast<ssize_t>(now.size()) && now == s.bytes) continue;
    if (n < 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path_));
    }
    now.resize(std::max<ssize_t>(n, 0));
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s changed since it was read: %s at file offset %#x holds %s, planned %s (%s); not "
        "attaching its probes",
        path_, p.function, s.file_offset, now.empty() ? "nothing" : absl::BytesToHexString(now),
        absl::BytesToHexString(s.bytes), s.instruction));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GoBinary>> GoBinary::Open(const std::string& path) {
  std::unique_ptr<GoBinary> bin(new GoBinary());
  bin->path_ = path;
  // O_NONBLOCK: a FIFO given as the binary must be refused, not waited on.
  bin->fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (bin->fd_ < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  struct stat st;
  if (fstat(bin->fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  bin->identity_ = FileIdentity::Of(st);
  ASSIGN_OR_RETURN(bin->elf_, ElfFile::OpenFd(bin->fd_, path));
  if (bin->elf_->machine() != EM_X86_64) {
    return absl::UnimplementedError(absl::StrCat(path, ": not an x86-64 executable"));
  }
  auto info = ReadBuildInfo(*bin->elf_);
  if (!info.ok()) return Annotate(info.status(), path);
  bin->build_info_ = *std::move(info);
  const GoVersion& v = bin->build_info_.version;
  if (!IsSupportedGoVersion(v)) {
    return absl::UnimplementedError(
        absl::StrCat(path, ": Go version ", v.raw,
                     " is not supported (supported: ", SupportedGoVersions(), ")"));
  }
  auto pcln = Pclntab::Parse(*bin->elf_);
  if (!pcln.ok()) return Annotate(pcln.status(), path);
  bin->pclntab_ = *std::move(pcln);

  bin->has_dwarf_ = bin->elf_->FindSection(".debug_info") != nullptr ||
                    bin->elf_->FindSection(".zdebug_info") != nullptr;
  absl::StatusOr<GoOffsets> offsets = absl::NotFoundError("no DWARF");
  if (bin->has_dwarf_ && !TableVerifiedAgainstDwarf(v)) offsets = OffsetsFromDwarf(bin->fd_path());
  if (!offsets.ok()) offsets = OffsetsForVersion(v);
  if (!offsets.ok()) return Annotate(offsets.status(), path);
  bin->offsets_ = *offsets;

  auto plan = PlanProbes(*bin->elf_, *bin->pclntab_, v, bin->offsets_.g_parent_goid >= 0);
  if (!plan.ok()) return Annotate(plan.status(), path);
  bin->plan_ = *std::move(plan);
  // Not fatal: only the goroutine enumeration needs them.
  bin->allg_vars_ = FindAllgVars(*bin->elf_, *bin->pclntab_);
  if (!bin->allg_vars_.ok()) bin->allg_vars_ = Annotate(bin->allg_vars_.status(), path);
  bin->mheap_ = FindMheap(*bin->elf_, *bin->pclntab_);
  if (!bin->mheap_.ok()) bin->mheap_ = Annotate(bin->mheap_.status(), path);
  bin->semtable_ = FindSemtable(*bin->elf_, *bin->pclntab_);
  if (!bin->semtable_.ok()) bin->semtable_ = Annotate(bin->semtable_.status(), path);
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
