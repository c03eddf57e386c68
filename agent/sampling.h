// Keeps tracing under a CPU budget by duty-cycling the probes.
//
// A uprobe costs its trap however little the BPF program does, so below the full-tracing cost the only
// lever is not to be attached. The controller attaches every probe for short windows W and detaches
// for the rest of a period P. The average cost is r * C_on + (1 - r) * C_off with r = W / P, C_on the
// measured cost while attached (traps, BPF, agent) and C_off while detached (the agent alone), so
// r = (budget - C_off) / (C_on - C_off). W = r * max_period within [min_window, max_window]: short
// windows, a period of at most max_period while the budget allows it, longer periods beyond.
//
// Windows can be short because a window does not have to see a leak's end: what is live when the
// probes detach is checked in the target's memory afterwards (ProcessLineage::Reconcile). A leak that
// recurs at rate L per second is caught by a window with probability q = 1 - exp(-L * W), and is
// reported leak_after (+ grace, + one refresh) after the window that caught it. The first window opens
// at attach, so a leak recurring at least once per W is found after leak_after; otherwise the expected
// time is leak_after + P * (1/q - 1) + W.
#ifndef CTXAGENT_AGENT_SAMPLING_H_
#define CTXAGENT_AGENT_SAMPLING_H_

#include "absl/time/time.h"

namespace ctxagent {

class SamplingController {
 public:
  struct Options {
    double budget = 0.003;  // share of the node's CPU; <= 0: no limit
    absl::Duration min_window = absl::Milliseconds(250);
    absl::Duration max_window = absl::Seconds(2);
    absl::Duration max_period = absl::Seconds(60);
  };
  SamplingController(const Options& options, absl::Time now);

  // The cost (share of the node's CPU) measured over `length` during which the probes were attached
  // or not. The meter is read at every switch, so a measurement never spans both states.
  void Observe(bool attached, double node_ratio, absl::Duration length);
  // Whether the probes should be attached at `now`. Call it often: windows are short.
  bool Tick(absl::Time now);

  bool attached() const { return attached_; }
  double ratio() const { return ratio_; }  // planned W / P
  double observed_ratio(absl::Time now) const;  // time attached / time elapsed
  // When Tick will next change its answer, if nothing new is observed (InfiniteFuture at ratio 1).
  absl::Time next_switch() const;
  absl::Duration window() const { return window_; }
  absl::Duration period() const { return period_; }
  double cost_attached() const { return cost_on_; }
  double cost_detached() const { return cost_off_; }

 private:
  void Plan();

  Options options_;
  absl::Time start_;
  absl::Time window_start_;
  absl::Time last_tick_;
  absl::Duration attached_time_;
  double cost_on_ = -1;  // smoothed; < 0 until measured
  double cost_off_ = 0;
  double ratio_ = 1;
  absl::Duration window_;
  absl::Duration period_;
  bool attached_ = true;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_SAMPLING_H_
