// Keeps tracing under a CPU budget by duty-cycling the probes of a process.
//
// A uprobe costs its trap however little the BPF program does, so below the full-tracing cost the only
// lever is not to be attached. The controller attaches every probe for windows of W and detaches for the
// rest of a period P, with W/P = budget / (measured cost of full tracing). W is never shorter than the
// time a leak needs to show inside one window (leak_after + 2 x grace), so every window can find the
// leaks that recur in it; the period stretches instead. What is live when a window closes is marked
// uncertain (its end may happen unseen), so sampling never invents findings.
//
// Expected time to first detection of a leak that recurs continuously: the rest of the current off
// period plus one window, on average (P - W) / 2 + W, at most P + W. With the defaults (W = 40 s) and a
// measured full cost of twice the budget (ratio 0.5, P = 80 s): 60 s on average, 120 s at most.
#ifndef CTXAGENT_AGENT_SAMPLING_H_
#define CTXAGENT_AGENT_SAMPLING_H_

#include "absl/time/time.h"

namespace ctxagent {

class SamplingController {
 public:
  // `budget`: allowed share of the node's CPU (0.003 = 0.3%); `min_window`: shortest useful window.
  SamplingController(double budget, absl::Duration min_window, absl::Time now);

  // Feeds the cost measured over the last interval (node share; meaningful only while attached) and
  // returns whether the probes should be attached from now on.
  bool Update(absl::Time now, double measured_node_ratio);

  bool attached() const { return attached_; }
  double ratio() const { return ratio_; }                  // planned W / P
  double observed_ratio(absl::Time now) const;             // time attached / time elapsed
  absl::Duration window() const { return window_; }
  absl::Duration period() const { return window_ / ratio_; }

 private:
  double budget_;
  absl::Duration window_;
  absl::Time start_;
  absl::Time window_start_;
  absl::Time last_;
  absl::Duration attached_time_;
  double full_cost_ = 0;  // smoothed node share while attached
  double ratio_ = 1;
  bool attached_ = true;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_SAMPLING_H_
