// What tracing costs, measured continuously: probe hits x the per-hit trap cost calibrated on this
// machine, plus the BPF programs' own run time (kernel BPF stats), plus the agent's CPU.
#ifndef CTXAGENT_AGENT_CONTROL_OVERHEAD_H_
#define CTXAGENT_AGENT_CONTROL_OVERHEAD_H_

#include <sys/types.h>

#include <array>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/trace/tracer.h"

namespace ctxagent {

// Cost of one uprobe hit beyond the probed instruction, by how the kernel handles it.
struct TrapCosts {
  double emulated_us = 0.65;  // conditional branch after the stack check (what the plan picks)
  double stepped_us = 9.3;    // instructions the kernel single-steps (RET sites)
};

// How the meter counts, for the summaries and logs that report its figure.
inline constexpr char kOverheadCounted[] =
    "probe hits x the trap cost calibrated on the agent's own functions, BPF run time, the agent's "
    "CPU";

// Measures both on this machine by probing two tiny functions of the agent itself (~0.1 s).
absl::StatusOr<TrapCosts> CalibrateTrapCosts();

// CPU seconds consumed so far by `pid` (utime + stime from /proc/<pid>/stat); 0 pid = self.
double ProcessCpuSeconds(pid_t pid);

struct OverheadSample {
  double node_ratio = 0;    // share of the whole node's CPU, over the last interval
  double target_ratio = 0;  // share of the traced process's own CPU use (attach only)
  double trap_cpu_s = 0;    // per second: hits x trap cost
  double bpf_cpu_s = 0;     // per second: BPF program run time
  double agent_cpu_s = 0;   // per second: the agent process
  double target_cpu_s =
      0;  // per second: the traced process, without the traps and BPF (attach only)
  double hits_per_s = 0;
};

class OverheadMeter {
 public:
  // `prog_fd`: the probe program (its run time needs kernel BPF stats, enabled here while the
  // meter lives). `target`: the traced process, or 0 for the daemon.
  OverheadMeter(TrapCosts costs, int prog_fd, pid_t target);
  ~OverheadMeter();
  // Cost since the previous call; `hits` are the cumulative probe hits.
  OverheadSample Update(absl::Time now, const TrapHits& hits);
  const TrapCosts& costs() const { return costs_; }

 private:
  TrapCosts costs_;
  int prog_fd_;
  int stats_fd_ = -1;
  pid_t target_;
  int ncpu_;
  absl::Time last_time_;
  TrapHits last_hits_{};
  uint64_t last_bpf_ns_ = 0;
  double last_agent_s_ = 0, last_target_s_ = 0;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CONTROL_OVERHEAD_H_
