// `ctxagent profile <pid> [FILE]`: a goroutine profile of a running Go process, read from its
// memory without stopping it and without probes (no BPF needed: reading another process's memory
// is enough, i.e. ptrace rights over it).
#ifndef CTXAGENT_AGENT_CLI_PROFILE_COMMAND_H_
#define CTXAGENT_AGENT_CLI_PROFILE_COMMAND_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ctxagent {

struct ProfileOptions {
  int pid = 0;
  std::string type = "goroutine";  // goroutine | leak | create
  std::string output = "pprof";    // pprof (gzipped profile.proto) | text
  std::string output_file;         // else stdout
  int seconds = 0;  // > 0: the delta between a read now and one this many seconds later
  // leak: the two heap marks that must agree, this far apart, and the memory one may hold.
  absl::Duration mark_every = absl::Seconds(2);
  int mark_memory_mb = 256;
};

absl::Status RunProfileCommand(const ProfileOptions& options);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CLI_PROFILE_COMMAND_H_
