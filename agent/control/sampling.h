// Keeps tracing under a CPU budget by duty-cycling the probes.
//
// A uprobe costs its trap however little the BPF program does, so below the full-tracing cost the
// only lever is not to be attached. The controller attaches every probe for short windows W and
// detaches for the rest of a period P. Per period it costs W * C_on + (P - W) * C_off + S, with
// C_on the measured cost while attached (traps, BPF, agent), C_off while detached (the agent alone)
// and S the agent's CPU to attach and detach once, so P = (W * (C_on - C_off) + S) / (A - C_off),
// with A the aim: two thirds of the budget, the headroom being what the costs are not known to. W
// is (A - C_off) / (C_on - C_off) * max_period within [min_window, max_window]: a
// period near max_period while the budget allows it (longer beyond), as few switches as that allows
// (each attach and detach briefly stalls the target: its p99.9 latency showed it at a switch every
// 4 s). Leaving S out of C_on matters: in a quarter-second window the attach alone can look like a
// busy target.
//
// Windows can be short because a window does not have to see a leak's end: what is live when the
// probes detach is checked in the target's memory afterwards (ProcessLineage::Reconcile). A leak
// that recurs at rate L per second is caught by a window with probability q = 1 - exp(-L * W), and
// is reported leak_after (+ grace, + one refresh) after the window that caught it. The first window
// opens at attach, so a leak recurring at least once per W is found after leak_after; otherwise the
// expected time is leak_after + P * (1/q - 1) + W.
//
// Within budget from the first second, not only on average: a binary whose probes go on while
// the cost of full tracing is unknown is first probed briefly (ProbeSet), and the probe's cost is a
// first estimate (Estimate). From its arrival (Arrive) everything tracing spends goes to a ledger:
// reading and attaching the binary, the probe, the windows, the agent in between. Until the
// detached cost is measured, and after an estimate raised the cost, the window is what keeps the
// ledger within 40% of the budget over the first 20 s (at least min_first_window), re-planned at
// every charge so that it ends on what it spent: the seconds after a busy target appears hold one
// short window, not a window sized for a longer average, and a target barely over the budget is
// traced for most of them. The next window then waits, beyond its period, until the ledger's
// average from the arrival to that window's end is within the budget: the first period repays what
// the arrival spent, instead of a steady window following inside the first minute. That window
// closes the ledger.
#ifndef CTXAGENT_AGENT_CONTROL_SAMPLING_H_
#define CTXAGENT_AGENT_CONTROL_SAMPLING_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "agent/control/hit_cost.h"
#include "agent/control/overhead.h"

namespace ctxagent {

// The budget promise: a share of the node's CPU (0.3%), for every command.
inline constexpr double kDefaultBudget = 0.003;

// What the steady plan spends of the budget: the budget is a ceiling for a cost known to about a
// quarter (a hit's cost on the target varies that much from one on/off pair to the next, the
// agent's own CPU jumps with its memory reads), so the periods aim below it. Spending the whole
// budget, bench/startup.sh's target at 1k contexts/s cost 0.23% of the node over its first minute.
// The first period still repays the arrival to the budget itself (Repaid): a later second window
// would find a leak the first missed later than 15 s.
inline constexpr double kSteadyShare = 2.0 / 3;

// A duty cycle that replaces the budget's plan (--duty_cycle): the probes are on for `window` at
// the start of every `period`, whatever tracing costs. Unset (zero): the budget decides.
struct FixedDutyCycle {
  absl::Duration window = absl::ZeroDuration();
  absl::Duration period = absl::ZeroDuration();
  bool set() const { return window > absl::ZeroDuration(); }
};

// The controller's plan and what it measured (node shares; switch: node share x seconds).
struct SamplingPlan {
  double budget = 0, window_s = 0, period_s = 0, cost_attached = 0, cost_detached = 0,
         switch_cost = 0;
};

class SamplingController {
 public:
  struct Options {
    double budget = kDefaultBudget;  // share of the node's CPU; <= 0: no limit
    double target_budget = 0;  // share of the traced process's own CPU (attach); <= 0: no limit
    FixedDutyCycle fixed;      // set: this duty cycle instead of the budget's plan
    absl::Duration min_window = absl::Milliseconds(250);
    // The first window's floor, below min_window: at 100k contexts/s a quarter second of full
    // tracing alone cost 0.4% of the node (bench/startup.sh). A leak it misses is proven from the
    // heap's marks (goroutine_leak) or caught by a later window.
    absl::Duration min_first_window = absl::Milliseconds(50);
    absl::Duration max_window = absl::Seconds(15);
    absl::Duration max_period = absl::Seconds(60);
  };
  SamplingController(const Options& options, absl::Time now);

  // The cost (share of the node's CPU) measured over `length` during which the probes were attached
  // or not. The meter is read at every switch, so a measurement never spans both states.
  void Observe(bool attached, double node_ratio, absl::Duration length);
  // A first estimate of the attached cost from a short probe (a new binary's probes on since
  // `window_start`); it only ever raises the estimate. The current window counts from
  // `window_start` and is short (see above).
  void Estimate(double node_ratio, absl::Time window_start);
  // A new binary's probes went on at `now`: opens the ledger unless one is open (see above).
  void Arrive(absl::Time now);
  // What tracing cost up to `now` since the previous charge (node share x seconds, everything
  // included), for the ledger.
  void Charge(absl::Time now, double node_seconds);
  // CPU seconds (as a share of the node: CPU seconds / CPUs) one detach + attach took.
  void ObserveSwitch(double node_seconds);
  // The traced process's own CPU use (share of the node), for a target budget.
  void ObserveTarget(double node_ratio, absl::Duration length);
  // The budget in force: the node budget, or the target budget's share of the node if lower.
  double budget() const;
  // Whether the probes should be attached at `now`. Call it often: windows are short.
  bool Tick(absl::Time now);

  bool attached() const { return attached_; }
  double ratio() const { return ratio_; }       // planned W / P
  double observed_ratio(absl::Time now) const;  // time attached / time elapsed
  // When Tick will next change its answer, if nothing new is observed (InfiniteFuture at ratio 1).
  absl::Time next_switch() const;
  bool repaying() const { return ledger_start_ != absl::InfiniteFuture(); }
  absl::Duration window() const { return window_; }
  absl::Duration period() const { return period_; }
  double cost_attached() const { return cost_on_.value; }  // < 0 until measured
  double cost_detached() const { return cost_off_.value; }
  double switch_cost() const { return switch_cost_; }
  // What a new binary's first span may spend (node share x seconds; see above).
  double first_span_allowance() const;

 private:
  void Plan();
  // The earliest start of a window that keeps the ledger's average within the budget.
  absl::Time Repaid() const;

  Options options_;
  absl::Time start_;
  absl::Time window_start_;
  absl::Time last_tick_;
  absl::Duration attached_time_;
  // A smoothed cost; < 0 until enough time was measured for a first estimate.
  struct Cost {
    double value = -1;
    double pending_sum = 0, pending_s = 0;
    void Add(double x, absl::Duration length, double tau_s);
  };
  Cost cost_on_, cost_off_, target_;
  double switch_cost_ = 0;  // smoothed, node share x seconds
  double ratio_ = 1;
  absl::Duration window_;
  absl::Duration period_;
  bool attached_ = true;
  bool short_window_ = false;  // the window after an estimate raised the cost
  // The ledger (InfiniteFuture: closed): since when, spent so far, last charged at.
  absl::Time ledger_start_ = absl::InfiniteFuture();
  double ledger_spent_ = 0;
  absl::Time ledger_at_;
};

// What an agent runs: the controller fed by an overhead meter read at every switch and refresh (so
// a measurement never spans both states), with the CPU of attaching and detaching counted as the
// switch cost, not as the state's. With the traced processes' CPU (`traced`), the same reads give
// what a hit costs them (HitCostEstimator), which replaces the calibrated trap cost once measured.
class DutyCycle {
 public:
  using Hits = TrapHits;
  DutyCycle(const SamplingController::Options& options, std::unique_ptr<OverheadMeter> meter,
            absl::Time now, TracedCpuSource traced = nullptr);

  bool Tick(absl::Time now) { return controller_.Tick(now); }
  // The cost since the last read goes to the state the probes were in; returns it.
  OverheadSample Measure(absl::Time now, const Hits& hits);
  // Forgets the cost since the last read (one-off start-up work).
  void Restart(absl::Time now, const Hits& hits);
  // A new binary's probes went on at `now`: like Restart, and what it forgets (reading and
  // attaching the binary) opens the controller's ledger.
  void Arrive(absl::Time now, const Hits& hits);
  // Ends a first probe that started at `start` (see SamplingController::Estimate).
  OverheadSample Probe(absl::Time now, const Hits& hits, absl::Time start);
  // Closes the current segment, then runs `toggle` (the detach, or the attach).
  void Switch(absl::Time now, const Hits& hits, bool on, const std::function<void()>& toggle);
  bool attached() const { return on_; }  // as last switched
  // What tracing cost since the start, in node share x seconds (start-up work forgotten by
  // Restart aside): averages over any interval without a meter of their own.
  double node_seconds() const { return node_seconds_; }
  double cpu_seconds() const { return node_seconds_ * ncpu_; }  // the same in CPU seconds
  const SamplingController& controller() const { return controller_; }
  SamplingPlan plan() const;
  // How many probe hits cost `node_seconds` (trap, BPF and agent), at least 1; 0 for 0.
  uint64_t HitsCosting(double node_seconds) const;
  // The trap costs in force (measured on the traced processes, or the calibration).
  const TrapCosts& trap_costs() const { return meter_->costs(); }

 private:
  // Reads the meter since the last read, and the traced processes' CPU over the same time for the
  // hit cost (`measured`: a span of the current state, else the span is only skipped).
  OverheadSample Read(absl::Time now, const Hits& hits, bool measured);
  // Adds the cost `s` over `length` to what tracing spent.
  void Spend(absl::Time now, const OverheadSample& s, absl::Duration length);

  SamplingController controller_;
  std::unique_ptr<OverheadMeter> meter_;
  absl::Time segment_start_;
  bool on_ = true;
  double segment_switch_cpu_ = 0;  // CPU seconds switching inside the current segment
  double pair_cpu_ = 0;            // CPU seconds of the detach awaiting its attach
  double node_seconds_ = 0;
  int ncpu_;
  TracedCpuSource traced_;
  TracedCpu last_traced_;
  HitCostEstimator hit_cost_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CONTROL_SAMPLING_H_
