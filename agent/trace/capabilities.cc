#include "agent/trace/capabilities.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ctxagent {
namespace {

struct Required {
  int bit;
  const char* name;
  const char* why;
};

// Kernel 6.16+ (and stable backports of CVE-2025-38466) require CAP_SYS_ADMIN for uprobes again.
constexpr Required kRequired[] = {
    {39, "CAP_BPF", "load BPF programs and maps"},
    {38, "CAP_PERFMON", "attach tracing programs"},
    {21, "CAP_SYS_ADMIN", "create uprobes"},
    {19, "CAP_SYS_PTRACE", "read the target's memory and /proc/<pid>/exe"},
    {2, "CAP_DAC_READ_SEARCH", "read other users' executables"},
};

}  // namespace

absl::Status CheckCapabilities(uint64_t cap_eff) {
  std::vector<std::string> missing;
  for (const Required& r : kRequired) {
    if ((cap_eff & (uint64_t{1} << r.bit)) == 0) {
      missing.push_back(std::string(r.name) + " (" + r.why + ")");
    }
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError("missing capabilities: " + absl::StrJoin(missing, ", "));
}

bool ParseCapEff(absl::string_view status_file, uint64_t* out) {
  for (absl::string_view line : absl::StrSplit(status_file, '\n')) {
    if (absl::ConsumePrefix(&line, "CapEff:")) {
      return absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line), out);
    }
  }
  return false;
}

absl::Status CheckOwnCapabilities() {
  std::ifstream in("/proc/self/status");
  std::stringstream text;
  text << in.rdbuf();
  uint64_t eff = 0;
  if (!ParseCapEff(text.str(), &eff)) {
    return absl::InternalError("cannot read the effective capabilities from /proc/self/status");
  }
  return CheckCapabilities(eff);
}

}  // namespace ctxagent
