// `ctxagent daemon`: one agent per node. Finds Go processes (running ones at start, new ones from
// exec events), attaches once per binary, keeps a lineage per process, exports metrics and JSON
// views over HTTP, and forgets processes that exit.
#ifndef CTXAGENT_AGENT_NODE_DAEMON_H_
#define CTXAGENT_AGENT_NODE_DAEMON_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/lineage/lineage.h"

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
};

bool Matches(const Selector& s, const ProcessLabels& p);
// Included when no include selector is given or one matches, and no exclude selector matches.
bool Selected(const std::vector<Selector>& include, const std::vector<Selector>& exclude,
              const ProcessLabels& p);

struct DaemonOptions {
  std::string listen = "0.0.0.0:9464";  // /metrics, /healthz, /readyz
  // /processes and /processes/<pid>/...: source paths and function names, so loopback by default;
  // empty: not served.
  std::string detail_listen = "127.0.0.1:9465";
  std::vector<Selector> include, exclude;
  std::string host_proc = "/proc";  // the host's /proc (mounted elsewhere in a container)
  std::string log_pods_root = "/var/log/pods";
  FindingOptions findings;
  absl::Duration refresh = absl::Seconds(5);  // evaluation and metrics period
  absl::Duration poll = absl::Milliseconds(20);
  absl::Duration rescan = absl::Seconds(30);  // /proc rescan, a safety net for missed execs
  uint64_t max_contexts_per_process = 200000;
  uint64_t max_contexts_total = 1000000;
  int max_site_labels = 10;
  uint32_t ring_bytes = 16 << 20;
  double budget =
      0.003;  // share of the node's CPU tracing may use (duty-cycled above); 0 = no limit
};

// Runs until SIGINT/SIGTERM; returns the exit code. Errors are one line on stderr.
int RunDaemon(const DaemonOptions& options);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_DAEMON_H_
