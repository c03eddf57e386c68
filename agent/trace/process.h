// A traced process seen from outside: its memory and where its executable is mapped.
#ifndef CTXAGENT_AGENT_TRACE_PROCESS_H_
#define CTXAGENT_AGENT_TRACE_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "symbols/elf_file.h"
#include "symbols/go_binary.h"

namespace ctxagent {

// The writable mappings of a process (/proc/<pid>/maps), adjacent ones merged: where its heap,
// stacks and every runtime structure live. A pointer read from the target that falls outside is
// garbage, refused before it costs a read.
class WritableMemory {
 public:
  // From the text of /proc/<pid>/maps.
  static WritableMemory Parse(absl::string_view maps);
  // The bytes from `addr` to the end of its mapping; 0 outside every writable mapping.
  uint64_t Extent(uint64_t addr) const;
  bool Contains(uint64_t addr, uint64_t len) const { return len <= Extent(addr) && len > 0; }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // [start, end), sorted, disjoint
};

// A pid number is reused once its process is gone; the start time it is constructed with tells
// this process from a later one with the same number.
class Process {
 public:
  explicit Process(pid_t pid);
  pid_t pid() const { return pid_; }
  // Clock ticks after boot (field 22 of /proc/<pid>/stat); 0 when the pid was gone at construction.
  uint64_t start_time() const { return start_time_; }
  std::string exe_path() const;  // /proc/<pid>/exe: opens the right file inside containers too
  // Still running (not a zombie), and not a later process that got the same pid.
  bool Alive() const;
  // OK when the pid names a process (a thread group leader), not one of its other threads.
  // NotFound without such a pid; InvalidArgument for a thread, naming its process.
  absl::Status CheckIsProcess() const;
  // OK when this process still runs the file `exe` (it did not exec another program since), and
  // the pid was not reused: FailedPrecondition "pid N now runs another binary" / "pid N was
  // reused", NotFound once it is gone.
  absl::Status CheckRuns(const symbols::FileIdentity& exe) const;
  // The FailedPrecondition CheckRuns returns after an exec (also when the exec is known from its
  // event and the process is gone since).
  absl::Status CalledExec() const;
  // Load bias of the main executable (0 for non-PIE): runtime address = link address + bias.
  absl::StatusOr<uint64_t> LoadBias(const symbols::ElfFile& exe) const;
  // Its writable mappings now; NotFound once it is gone.
  absl::StatusOr<WritableMemory> Writable() const;
  // Reads `len` bytes of the target's memory (process_vm_readv); the target keeps running, so what
  // is read may be stale by the time it is used.
  absl::Status Read(uint64_t addr, void* out, size_t len) const;
  absl::StatusOr<uint64_t> ReadWord(uint64_t addr) const;

  struct ReadRequest {
    uint64_t addr = 0;
    void* out = nullptr;
    size_t len = 0;
    bool ok = false;  // set by ReadMany
  };
  // Reads many small regions in few system calls (up to IOV_MAX regions each); an unreadable
  // region fails alone.
  void ReadMany(std::vector<ReadRequest>& requests) const;

 private:
  pid_t pid_;
  uint64_t start_time_ = 0;
};

// Field 22 of <proc>/<pid>/stat (the start time in clock ticks); NotFound when `pid` is gone.
absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid, const std::string& proc = "/proc");

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_PROCESS_H_
