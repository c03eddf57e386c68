// A traced process seen from outside: its memory and where its executable is mapped.
#ifndef CTXAGENT_AGENT_TRACE_PROCESS_H_
#define CTXAGENT_AGENT_TRACE_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "symbols/elf_file.h"

namespace ctxagent {

class Process {
 public:
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid() const { return pid_; }
  std::string exe_path() const;  // /proc/<pid>/exe: opens the right file inside containers too
  bool Alive() const;
  // Load bias of the main executable (0 for non-PIE): runtime address = link address + bias.
  absl::StatusOr<uint64_t> LoadBias(const symbols::ElfFile& exe) const;
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
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_PROCESS_H_
