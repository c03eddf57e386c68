// Which processes the daemon traces: selectors over a process's binary, cgroup and pod identity.
#ifndef CTXAGENT_AGENT_NODE_SELECTOR_H_
#define CTXAGENT_AGENT_NODE_SELECTOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ctxagent {

// A process selector: "binary:GLOB", "cgroup:SUBSTRING", "namespace:NAME", "pod:GLOB".
struct Selector {
  enum class Field { kBinary, kCgroup, kNamespace, kPod } field;
  std::string pattern;
  static absl::StatusOr<Selector> Parse(const std::string& text);
};

// What a selector is matched against.
struct ProcessLabels {
  std::string binary;  // executable base name
  std::string cgroup;  // cgroup path
  std::string namespace_;
  std::string pod;
  std::string container;
  std::string pod_uid;  // from the cgroup path; empty outside Kubernetes
};

bool Matches(const Selector& s, const ProcessLabels& p);
// Included when no include selector is given or one matches, and no exclude selector matches.
bool Selected(const std::vector<Selector>& include, const std::vector<Selector>& exclude,
              const ProcessLabels& p);
// Whether the decision depends on the binary's name only (then it holds for every process of a
// file).
bool OnlyBinarySelectors(const std::vector<Selector>& include,
                         const std::vector<Selector>& exclude);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_SELECTOR_H_
