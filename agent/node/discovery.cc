#include "agent/node/discovery.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agent/trace/process.h"

namespace ctxagent {
namespace {

// More distinct untraceable files than this is churn (e.g. generated scripts): start over.
constexpr size_t kMaxUntraceable = 100000;

// Errors that are about the file, not about the process having gone.
bool ConcernsTheFile(const absl::Status& s) {
  return absl::IsNotFound(s) || absl::IsUnimplemented(s) || absl::IsFailedPrecondition(s) ||
         absl::IsInvalidArgument(s);
}

}  // namespace

absl::StatusOr<RunningExecutable> IdentifyExecutable(const std::string& proc, pid_t pid) {
  absl::StatusOr<uint64_t> start = ProcessStartTime(pid, proc);
  if (!start.ok()) return start.status();
  struct stat st;
  if (stat(absl::StrCat(proc, "/", pid, "/exe").c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("pid ", pid,
                                            " has no executable (gone, or a kernel "
                                            "thread)"));
  }
  // The same start time after the stat: the executable seen is this process's.
  absl::StatusOr<uint64_t> again = ProcessStartTime(pid, proc);
  if (!again.ok() || *again != *start) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, " has exited"));
  }
  return RunningExecutable{symbols::FileIdentity::Of(st), *start};
}

absl::StatusOr<TracedBinary*> BinaryCatalog::Acquire(pid_t pid, const RunningExecutable& exe,
                                                     bool* opened) {
  *opened = false;
  if (auto it = binaries_.find(Key(exe.file)); it != binaries_.end()) {
    ++it->second->processes;
    return it->second.get();
  }
  absl::StatusOr<std::unique_ptr<symbols::GoBinary>> bin =
      symbols::GoBinary::Open(absl::StrCat(proc_, "/", pid, "/exe"));
  absl::StatusOr<RunningExecutable> now = IdentifyExecutable(proc_, pid);
  const bool same_process = now.ok() && now->start_time == exe.start_time;
  if (!bin.ok()) {
    // Decided for the file only when the process still runs it; otherwise (it exec'd, or is gone)
    // the error concerns this process only.
    if (same_process && now->file == exe.file && ConcernsTheFile(bin.status())) {
      if (untraceable_.size() >= kMaxUntraceable) untraceable_.clear();
      untraceable_.insert(exe.file);
    }
    return bin.status();
  }
  if (!same_process) {
    return absl::FailedPreconditionError(absl::StrCat("pid ", pid, " was reused"));
  }
  if (!(*bin)->identity().SameInode(exe.file) || !now->file.SameInode(exe.file)) {
    return absl::FailedPreconditionError(absl::StrCat("pid ", pid, " now runs another binary"));
  }
  auto b = std::make_unique<TracedBinary>();
  b->bin = *std::move(bin);
  b->processes = 1;
  TracedBinary* out = b.get();
  binaries_.emplace(Key(exe.file), std::move(b));
  *opened = true;
  return out;
}

void BinaryCatalog::Release(const symbols::FileIdentity& file,
                            const std::function<void(TracedBinary&)>& last) {
  auto it = binaries_.find(Key(file));
  if (it == binaries_.end() || --it->second->processes > 0) return;
  last(*it->second);
  binaries_.erase(it);
}

}  // namespace ctxagent
