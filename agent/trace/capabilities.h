// The Linux capabilities ctxagent needs, checked up front so that a missing one is named instead of
// surfacing later as an EPERM from some syscall (deploy/README.md explains each).
#ifndef CTXAGENT_AGENT_TRACE_CAPABILITIES_H_
#define CTXAGENT_AGENT_TRACE_CAPABILITIES_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ctxagent {

// `cap_eff` is the effective set (the CapEff line of /proc/<pid>/status, as a bit mask).
// FailedPrecondition naming every missing capability and what it is for.
absl::Status CheckCapabilities(uint64_t cap_eff);
// The calling process's effective set.
absl::Status CheckOwnCapabilities();
// Parses the hex mask of a "CapEff:" line of /proc/<pid>/status.
bool ParseCapEff(absl::string_view status_file, uint64_t* out);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_CAPABILITIES_H_
