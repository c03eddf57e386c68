// What tracing costs, measured continuously: probe hits x the per-hit trap cost (measured on the
// traced processes once known: hit_cost.h; until then calibrated on this machine), plus the BPF
// programs' own run time (kernel BPF stats), plus the agent's CPU.
#ifndef CTXAGENT_AGENT_CONTROL_OVERHEAD_H_
#define CTXAGENT_AGENT_CONTROL_OVERHEAD_H_

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/trace/tracer.h"

namespace ctxagent {

// Cost of one uprobe hit beyond the probed instruction, by how the kernel handles it.
struct TrapCosts {
  double emulated_us = 0.65;  // conditional branch after the stack check (what the plan picks)
  double stepped_us = 9.3;    // instructions the kernel single-steps (RET sites)
  // Measured on the traced processes (HitCostEstimator), whatever the kind of each hit, and from
  // how many on/off pairs; < 0: not yet, the calibration above is in force.
  double measured_us = -1;
  int measured_pairs = 0;

  bool measured() const { return measured_us >= 0; }
  // The calibration is a floor: no service traps faster than the agent's hot loop, and a target
  // using all of its CPUs pays for hits in throughput, not CPU (its on/off difference reads ~0).
  double trap_us(bool stepped) const {
    const double calibrated = stepped ? stepped_us : emulated_us;
    return measured() ? std::max(measured_us, calibrated) : calibrated;
  }
  // Where the figure in force comes from, for the summaries and metrics.
  const char* source() const { return measured() ? "targets" : "calibration"; }
};

// How the meter counts with `costs`, in words, for the logs and summaries that report its figure.
std::string OverheadCounted(const TrapCosts& costs);

// Measures both on this machine by probing two tiny functions of the agent itself (~0.1 s).
absl::StatusOr<TrapCosts> CalibrateTrapCosts();

// CPU seconds consumed so far by `pid`, all its threads, to the nanosecond (its process CPU clock);
// 0 pid = self; 0 for a process that is gone.
double ProcessCpuSeconds(pid_t pid);

// The traced processes' CPU so far, and which processes they are (a hash of their pids; 0: none):
// two reads are compared only over the same processes.
struct TracedCpu {
  double seconds = 0;
  uint64_t processes = 0;
};
using TracedCpuSource = std::function<TracedCpu()>;
// What `pids`' CPU reads as; pids in a stable order.
TracedCpu ReadTracedCpu(const std::vector<pid_t>& pids);

struct OverheadSample {
  double node_ratio = 0;    // share of the whole node's CPU, over the last interval
  double target_ratio = 0;  // share of the traced process's own CPU use (attach only)
  double trap_cpu_s = 0;    // per second: hits x trap cost
  double bpf_cpu_s = 0;     // per second: BPF program run time
  double agent_cpu_s = 0;   // per second: the agent process
  double target_cpu_s =
      0;  // per second: the traced process, without the traps and BPF (attach only)
  double hits_per_s = 0;
  uint64_t hits = 0;  // over the interval
  double bpf_s = 0;   // over the interval
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
  void set_costs(const TrapCosts& costs) { costs_ = costs; }

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
