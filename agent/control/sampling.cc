#include "agent/control/sampling.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace ctxagent {

namespace {
// Time constants of the smoothed costs: attached time is scarce when sampling, so its average
// follows faster.
constexpr double kTauOnS = 2.0;
constexpr double kTauOffS = 10.0;
// Below this share the period would exceed hours: keep one window in 1000 to stay measured.
constexpr double kMinRatio = 0.001;

// A first estimate needs this much time: a measurement over a few milliseconds is mostly noise.
constexpr double kFirstEstimateS = 0.5;

// The span over which a new target's cost must stay within the budget, its first window included,
// and the share of that budget the plan spends: the rest is for what follows the first window
// without being planned: reading the goroutines the window left live, evaluating them, answering
// HTTP (20-30 ms of CPU for bench/startup.sh's target, a quarter of the span's budget on 2 CPUs),
// and the probes that keep firing while the agent wakes and detaches them.
constexpr double kFirstSpanS = 20;
constexpr double kFirstSpanShare = 0.4;

// The agent's CPU per probe hit (decoding, lineage), for the first estimate: ~0.6 us measured on
// one core at full load (bench/README.md), more at the low rates where each drain is a wakeup.
constexpr double kAgentSecondsPerHit = 1.5e-6;
// The BPF program's run time per hit inside a service (bench/overhead.sh: 0.5-1.2 us).
constexpr double kBpfSecondsPerHit = 1e-6;
}  // namespace

void SamplingController::Cost::Add(double x, absl::Duration length, double tau_s) {
  const double len_s = absl::ToDoubleSeconds(length);
  if (value < 0) {
    pending_sum += x * len_s;
    pending_s += len_s;
    if (pending_s >= kFirstEstimateS) value = pending_sum / pending_s;
    return;
  }
  value += (1 - std::exp(-len_s / tau_s)) * (x - value);
}

SamplingController::SamplingController(const Options& options, absl::Time now)
    : options_(options),
      start_(now),
      window_start_(now),
      last_tick_(now),
      window_(options.max_window),
      period_(options.max_window) {
  Plan();
}

void SamplingController::Observe(bool attached, double node_ratio, absl::Duration length) {
  if (length <= absl::ZeroDuration()) return;
  (attached ? cost_on_ : cost_off_).Add(node_ratio, length, attached ? kTauOnS : kTauOffS);
  Plan();
}

void SamplingController::ObserveSwitch(double node_seconds) {
  switch_cost_ =
      switch_cost_ == 0 ? node_seconds : switch_cost_ + 0.3 * (node_seconds - switch_cost_);
  Plan();
}

void SamplingController::ObserveTarget(double node_ratio, absl::Duration length) {
  if (options_.target_budget <= 0 || length <= absl::ZeroDuration()) return;
  target_.Add(node_ratio, length, kTauOffS);
  Plan();
}

double SamplingController::budget() const {
  // Until the target's CPU is measured, the node budget alone applies.
  if (options_.target_budget <= 0 || target_.value < 0) return options_.budget;
  const double of_target = options_.target_budget * target_.value;
  return options_.budget > 0 ? std::min(options_.budget, of_target) : of_target;
}

void SamplingController::Plan() {
  if (options_.fixed.set()) {
    window_ = options_.fixed.window;
    period_ = options_.fixed.period;
    ratio_ = std::min(1.0, absl::FDivDuration(window_, period_));
    return;
  }
  const double budget = kSteadyShare * this->budget();
  const double on = cost_on_.value, off = std::max(0.0, cost_off_.value);
  if ((budget <= 0 && options_.target_budget <= 0) || on < 0 || on <= budget) {
    ratio_ = 1;
    window_ = period_ = options_.max_window;
    return;
  }
  // When detaching saves nothing measurable, or the agent alone uses the budget: the rarest
  // windows.
  const double spare = budget - off;
  const bool can = on > off && spare > 0;
  const double r = can ? std::clamp(spare / (on - off), kMinRatio, 1.0) : kMinRatio;
  window_ = std::clamp(options_.max_period * r, options_.min_window, options_.max_window);
  const double w = absl::ToDoubleSeconds(window_);
  const double p = can ? (w * (on - off) + switch_cost_) / spare : w / kMinRatio;
  ratio_ = std::clamp(w / p, kMinRatio, 1.0);
  period_ = window_ / ratio_;
  // The first window (the detached cost is measured after it) and the one after a raised estimate
  // last only what keeps the first kFirstSpanS within its share of the budget, given what the
  // ledger spent so far (reading the binary, attaching, the probe) and the agent's detached cost
  // for the rest of the span: a busy target gets a fraction of a second, one barely over the
  // budget most of the span instead of a quarter second and then a period's wait.
  if (cost_off_.value < 0 || short_window_) {
    double spent = 0, elapsed_s = 0;
    absl::Duration traced = absl::ZeroDuration();  // of the window, already in `spent`
    if (repaying()) {
      spent = ledger_spent_;
      elapsed_s = absl::ToDoubleSeconds(ledger_at_ - ledger_start_);
      traced = std::max(absl::ZeroDuration(), ledger_at_ - window_start_);
    }
    const double left = first_span_allowance() - spent - switch_cost_ -
                        off * std::max(0.0, kFirstSpanS - elapsed_s);
    const double more = can ? std::max(0.0, left) / (on - off) : 0;
    // At least min_first_window from the probe's start: something of the target is seen.
    window_ = std::min(window_, std::max(options_.min_first_window, traced + absl::Seconds(more)));
  }
}

double SamplingController::first_span_allowance() const {
  return std::max(0.0, kFirstSpanShare * budget() * kFirstSpanS);
}

absl::Time SamplingController::Repaid() const {
  const double budget = this->budget(), off = std::max(0.0, cost_off_.value);
  // Nothing can be repaid when the agent alone spends the budget: the period decides.
  if (!repaying() || budget <= off) return absl::InfinitePast();
  // The window [t, t + w] keeps the ledger within the budget if, with the agent detached until t,
  // spent + off (t - at) + w on + switch <= budget (t + w - start).
  const double w = absl::ToDoubleSeconds(window_);
  const double elapsed_s = absl::ToDoubleSeconds(ledger_at_ - ledger_start_);
  const double wait_s = (ledger_spent_ + w * (std::max(0.0, cost_on_.value) - budget) +
                         switch_cost_ - budget * elapsed_s) /
                        (budget - off);
  return ledger_at_ + absl::Seconds(wait_s);
}

void SamplingController::Arrive(absl::Time now) {
  if (options_.fixed.set() || repaying()) return;
  ledger_start_ = ledger_at_ = now;
  ledger_spent_ = 0;
}

void SamplingController::Charge(absl::Time now, double node_seconds) {
  if (!repaying()) return;
  ledger_spent_ += node_seconds;
  ledger_at_ = std::max(ledger_at_, now);
  // The first window ends on what it spent, not only on what the estimate said it would.
  if (cost_off_.value < 0 || short_window_) Plan();
}

void SamplingController::Estimate(double node_ratio, absl::Time window_start) {
  if (cost_on_.value >= 0 && node_ratio <= cost_on_.value) return;
  cost_on_.value = node_ratio;
  cost_on_.pending_sum = cost_on_.pending_s = 0;
  const bool was_full = ratio_ >= 1;
  short_window_ = true;
  Plan();
  if (ratio_ >= 1) {
    short_window_ = false;
  } else if (was_full) {
    window_start_ = window_start;  // full tracing so far: the window is the probe's
  }
}

bool SamplingController::Tick(absl::Time now) {
  if (attached_) attached_time_ += now - last_tick_;
  last_tick_ = now;
  const absl::Duration in_period = now - window_start_;
  if (ratio_ >= 1) {
    attached_ = true;
    // Traced in full within the budget since the arrival's first span: nothing to repay.
    if (now - ledger_start_ >= absl::Seconds(kFirstSpanS)) ledger_start_ = absl::InfiniteFuture();
  } else if (attached_ && in_period >= window_) {
    attached_ = false;  // the window is over: off for the rest of the period
    if (short_window_) {
      short_window_ = false;
      Plan();
    }
  } else if (!attached_ && in_period >= period_ && now >= Repaid()) {
    attached_ = true;  // a new period; what the ledger spent is repaid
    window_start_ = now;
    ledger_start_ = absl::InfiniteFuture();
  }
  if (ratio_ >= 1 && in_period >= window_) window_start_ = now;
  return attached_;
}

absl::Time SamplingController::next_switch() const {
  if (ratio_ >= 1) return absl::InfiniteFuture();
  return attached_ ? window_start_ + window_ : std::max(window_start_ + period_, Repaid());
}

double SamplingController::observed_ratio(absl::Time now) const {
  const absl::Duration total = now - start_;
  if (total <= absl::ZeroDuration()) return 1.0;
  const absl::Duration on = attached_time_ + (attached_ ? now - last_tick_ : absl::ZeroDuration());
  return std::min(1.0, absl::FDivDuration(on, total));
}

DutyCycle::DutyCycle(const SamplingController::Options& options,
                     std::unique_ptr<OverheadMeter> meter, absl::Time now, TracedCpuSource traced)
    : controller_(options, now),
      meter_(std::move(meter)),
      segment_start_(now),
      ncpu_(static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)))),
      traced_(std::move(traced)) {
  if (traced_) last_traced_ = traced_();
}

OverheadSample DutyCycle::Read(absl::Time now, const Hits& hits, bool measured) {
  OverheadSample s = meter_->Update(now, hits);
  if (!traced_) return s;
  const TracedCpu t = traced_();
  if (measured) {
    const bool same = t.processes != 0 && t.processes == last_traced_.processes;
    hit_cost_.Add(on_, now - segment_start_, t.seconds - last_traced_.seconds, s.hits, s.bpf_s,
                  same ? t.processes : 0);
    if (auto trap_s = hit_cost_.trap_s()) {
      TrapCosts costs = trap_costs();
      costs.measured_us = std::max(0.0, *trap_s * 1e6);  // trap_us() floors it
      costs.measured_pairs = hit_cost_.agreed_pairs();
      meter_->set_costs(costs);
    }
  }
  last_traced_ = t;
  return s;
}

void DutyCycle::Spend(absl::Time now, const OverheadSample& s, absl::Duration length) {
  const double spent = s.node_ratio * std::max(0.0, absl::ToDoubleSeconds(length));
  node_seconds_ += spent;
  controller_.Charge(now, spent);
}

OverheadSample DutyCycle::Measure(absl::Time now, const Hits& hits) {
  OverheadSample s = Read(now, hits, true);
  const double length_s = absl::ToDoubleSeconds(now - segment_start_);
  Spend(now, s, now - segment_start_);
  if (length_s > 0) {
    controller_.ObserveTarget(s.target_cpu_s / ncpu_, now - segment_start_);
    const double switching = segment_switch_cpu_ / length_s / ncpu_;
    controller_.Observe(on_, std::max(0.0, s.node_ratio - switching), now - segment_start_);
  }
  segment_start_ = now;
  segment_switch_cpu_ = 0;
  return s;
}

SamplingPlan DutyCycle::plan() const {
  return {controller_.budget(),
          absl::ToDoubleSeconds(controller_.window()),
          absl::ToDoubleSeconds(controller_.period()),
          std::max(0.0, controller_.cost_attached()),
          std::max(0.0, controller_.cost_detached()),
          controller_.switch_cost()};
}

uint64_t DutyCycle::HitsCosting(double node_seconds) const {
  if (node_seconds <= 0) return 0;
  const double per_hit =
      trap_costs().trap_us(false) * 1e-6 + kBpfSecondsPerHit + kAgentSecondsPerHit;
  return std::max<uint64_t>(1, static_cast<uint64_t>(node_seconds * ncpu_ / per_hit));
}

OverheadSample DutyCycle::Probe(absl::Time now, const Hits& hits, absl::Time start) {
  const absl::Duration length = now - segment_start_;
  OverheadSample s = Read(now, hits, true);
  const double length_s = absl::ToDoubleSeconds(length);
  Spend(now, s, length);
  if (length_s > 0) {
    // A cost model, not the agent's CPU over a tenth of a second: that is mostly one-off work
    // (reading other new binaries, say). Traps and BPF as measured, the agent per hit as measured
    // by bench/lifecycle.sh, on top of the agent's detached cost once known.
    const double per_s = s.trap_cpu_s + s.bpf_cpu_s + s.hits_per_s * kAgentSecondsPerHit;
    controller_.Estimate(per_s / ncpu_ + std::max(0.0, controller_.cost_detached()), start);
  }
  segment_start_ = now;
  segment_switch_cpu_ = 0;
  return s;
}

void DutyCycle::Restart(absl::Time now, const Hits& hits) {
  // Not the state's cost, but spent all the same.
  Spend(now, Read(now, hits, false), now - segment_start_);
  segment_start_ = now;
  segment_switch_cpu_ = 0;
}

void DutyCycle::Arrive(absl::Time now, const Hits& hits) {
  // The ledger opens first, so that what Restart forgets is in it.
  controller_.Arrive(now);
  Restart(now, hits);
}

void DutyCycle::Switch(absl::Time now, const Hits& hits, bool on,
                       const std::function<void()>& toggle) {
  Measure(now, hits);
  const double before = ProcessCpuSeconds(0);
  toggle();
  const double cpu = ProcessCpuSeconds(0) - before;
  segment_switch_cpu_ += cpu;
  on_ = on;
  pair_cpu_ += cpu;
  if (on) {  // a detach and its attach: one switch
    controller_.ObserveSwitch(pair_cpu_ / ncpu_);
    pair_cpu_ = 0;
  }
}

}  // namespace ctxagent
