// profile.proto (github.com/google/pprof/proto/profile.proto), gzipped, as `go tool pprof`,
// Pyroscope and Parca read it: a hand-written encoder of the few messages a count profile needs.
#ifndef CTXAGENT_AGENT_PROFILE_PPROF_PROTO_H_
#define CTXAGENT_AGENT_PROFILE_PPROF_PROTO_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/profile/profile.h"
#include "agent/profile/stack_symbolizer.h"

namespace ctxagent::profile {

// The executable's text in the target, the one mapping every location points into.
struct Mapping {
  uint64_t start = 0, limit = 0, file_offset = 0;
  std::string file;
  std::string build_id;
};

// The serialized Profile: functions, file names and lines from `symbolizer` (every location
// carries its inlined frames, innermost first), so no reader needs the binary.
std::string EncodeProfile(const Profile& profile, StackSymbolizer& symbolizer,
                          const Mapping& mapping);
// gzip (RFC 1952), what profile.proto files are served as.
absl::StatusOr<std::string> Gzip(absl::string_view data);

}  // namespace ctxagent::profile

#endif  // CTXAGENT_AGENT_PROFILE_PPROF_PROTO_H_
