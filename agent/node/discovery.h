// Which Go binary each process of a node runs. Every file is opened once and kept open, shared by
// all the processes running it, so probes planned for a file go on that file only, whatever the
// pid that led to it runs later; files that are not traceable Go are remembered by identity.
#ifndef CTXAGENT_AGENT_NODE_DISCOVERY_H_
#define CTXAGENT_AGENT_NODE_DISCOVERY_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "symbols/go_binary.h"

namespace ctxagent {

// What a pid runs, as seen through a /proc: its executable and its start time (which tells it
// from a later process with the same pid).
struct RunningExecutable {
  symbols::FileIdentity file;
  uint64_t start_time = 0;
};
// NotFound when the pid is gone or is a kernel thread (no executable).
absl::StatusOr<RunningExecutable> IdentifyExecutable(const std::string& proc, pid_t pid);

struct TracedBinary {
  std::unique_ptr<symbols::GoBinary> bin;
  std::string name;
  int probes = -1;  // its id in the daemon's ProbeSet
  int processes = 0;
};

class BinaryCatalog {
 public:
  using FileKey = std::pair<uint64_t, uint64_t>;  // dev, inode: stable while the file is held open

  explicit BinaryCatalog(std::string proc) : proc_(std::move(proc)) {}

  // Known not to be traceable Go (not Go, an unsupported release, ...). Decided once per file
  // identity, size and times included: a new file that got a freed inode number is read again.
  bool Untraceable(const symbols::FileIdentity& file) const { return untraceable_.contains(file); }
  // The binary of the process `pid` (`exe`, as identified just before), counting it as one more
  // process of that binary. A file met for the first time is opened from <proc>/<pid>/exe
  // (`*opened` is then set) and must be `exe`'s file still run by the same process: if the process
  // exec'd or the pid was reused meanwhile, FailedPrecondition and nothing is kept. An error about
  // the file itself (not Go, ...) marks it Untraceable.
  absl::StatusOr<TracedBinary*> Acquire(pid_t pid, const RunningExecutable& exe, bool* opened);
  // One process fewer of `file`'s binary; with the last one gone, `last` is called (to detach its
  // probes) and the file is closed.
  void Release(const symbols::FileIdentity& file, const std::function<void(TracedBinary&)>& last);

  absl::flat_hash_map<FileKey, std::unique_ptr<TracedBinary>>& binaries() { return binaries_; }

 private:
  static FileKey Key(const symbols::FileIdentity& f) { return {f.dev, f.ino}; }
  std::string proc_;
  absl::flat_hash_map<FileKey, std::unique_ptr<TracedBinary>> binaries_;
  absl::flat_hash_set<symbols::FileIdentity> untraceable_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_DISCOVERY_H_
