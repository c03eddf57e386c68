// `ctxagent attach <pid>`: trace one running Go process, show its lineage live, report findings.
#ifndef CTXAGENT_AGENT_CLI_ATTACH_COMMAND_H_
#define CTXAGENT_AGENT_CLI_ATTACH_COMMAND_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/control/sampling.h"
#include "agent/lineage/lineage.h"
#include "agent/session/probes.h"
#include "agent/trace/tracer.h"

namespace ctxagent {

struct AttachOptions {
  int pid = 0;
  absl::Duration duration = absl::InfiniteDuration();  // stop after this long
  std::string output = "tree";                         // tree | json | dot | html
  std::string output_file;                             // write the report there, not to stdout
  std::string view = "sites";  // live view and report: sites (site graph) | contexts (each one)
  FindingOptions findings;
  absl::Duration refresh = absl::Seconds(1);  // live view and evaluation period
  // The heap marks that prove goroutines leaked (agent/heap): how often (0: never), and the memory
  // one mark may hold in MiB (its reads are capped alongside, see MarkOptions).
  absl::Duration mark_every = absl::Seconds(10);
  int mark_memory_mb = 256;
  bool live = true;                            // redraw the tree in place (a terminal)
  absl::Duration poll = kDefaultDrainLatency;  // longest a probe event waits in the ring
  double budget = kDefaultBudget;  // share of the node's CPU tracing may use; 0 = everything
  double target_budget = 0;   // share of the target's own CPU tracing may use; 0 = no such limit
  FixedDutyCycle duty_cycle;  // set: this duty cycle instead of the budget's plan
  uint32_t ring_bytes = Tracer::kDefaultRingBytes;
  std::string http;  // serve /processes/<pid>/... on this host:port; empty: none
};

// Traces until SIGINT/SIGTERM, the duration or the target's exit, then prints the report.
absl::Status RunAttachCommand(const AttachOptions& options);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CLI_ATTACH_COMMAND_H_
