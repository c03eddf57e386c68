// Keeps the work that grows with a process's size (reading every goroutine from its memory,
// evaluating its whole lineage) inside a share of the CPU budget. The duty cycle only gates the
// probes: without this, one process with 100k live contexts cost the daemon 7.8% of the node.
#ifndef CTXAGENT_AGENT_CONTROL_WORK_PACER_H_
#define CTXAGENT_AGENT_CONTROL_WORK_PACER_H_

#include "absl/time/time.h"

namespace ctxagent {

// The share of the budget that per-process work (memory reads, evaluation) may take; the probes
// and the rest of the agent keep the other half.
inline constexpr double kProcessWorkShare = 0.5;

// The longest pause: findings of the largest processes are at most this much later than usual.
// The budget comes first: a one-minute cap let one process with 100k live contexts (a memory read
// and an evaluation of ~0.15 s each on the test VM, paused ~100 s each under the default budget)
// cost 0.58% of the node (bench/idle.sh). At max_contexts_per_process (200k) the pauses stay under
// this; it bounds only a run whose cost was measured absurdly high.
inline constexpr absl::Duration kMaxWorkPause = absl::Minutes(5);

// Cores each of `processes` traced processes may spend on its per-process work under `budget`
// (a share of the node's `ncpu` cores); 0 (no limit) when the budget is.
double ProcessWorkAllowance(double budget, int ncpu, int processes);

// CPU seconds used so far by the calling thread.
double ThreadCpuSeconds();

// Spaces the runs of one periodic job so that it uses at most `allowance` cores: a run that cost
// C CPU seconds is followed by a pause of C / allowance, at most kMaxWorkPause.
class WorkPacer {
 public:
  // Cores; 0: no limit. The pause after the last run follows a change at once.
  void set_allowance(double cores);
  // False while the last run's pause lasts.
  bool Due(absl::Time now) const { return now >= next_; }
  // When the last run's pause ends.
  absl::Time due() const { return next_; }
  // A run that started at `start` and cost `cpu_s`.
  void Ran(absl::Time start, double cpu_s);
  // The pause after the last run (zero without a limit).
  absl::Duration pause() const { return pause_; }

 private:
  void Plan();

  double allowance_ = 0;
  double last_cpu_s_ = 0;
  absl::Time last_start_ = absl::InfinitePast();
  absl::Duration pause_ = absl::ZeroDuration();
  absl::Time next_ = absl::InfinitePast();
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CONTROL_WORK_PACER_H_
