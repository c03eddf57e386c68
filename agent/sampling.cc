#include "agent/sampling.h"

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

void Smooth(double& avg, double x, absl::Duration length, double tau_s) {
  const double a = 1 - std::exp(-absl::ToDoubleSeconds(length) / tau_s);
  avg += a * (x - avg);
}
}  // namespace

SamplingController::SamplingController(const Options& options, absl::Time now)
    : options_(options),
      start_(now),
      window_start_(now),
      last_tick_(now),
      window_(options.max_window),
      period_(options.max_window) {}

void SamplingController::Observe(bool attached, double node_ratio, absl::Duration length) {
  if (length <= absl::ZeroDuration()) return;
  if (attached) {
    if (cost_on_ < 0) {
      cost_on_ = node_ratio;
    } else {
      Smooth(cost_on_, node_ratio, length, kTauOnS);
    }
  } else {
    Smooth(cost_off_, node_ratio, length, kTauOffS);
  }
  Plan();
}

void SamplingController::Plan() {
  const double budget = options_.budget;
  if (budget <= 0 || cost_on_ < 0 || cost_on_ <= budget) {
    ratio_ = 1;
  } else if (cost_on_ <= cost_off_ || budget <= cost_off_) {
    ratio_ = kMinRatio;  // detaching saves nothing measurable, or the agent alone uses the budget
  } else {
    ratio_ = std::clamp((budget - cost_off_) / (cost_on_ - cost_off_), kMinRatio, 1.0);
  }
  window_ = std::clamp(options_.max_period * ratio_, options_.min_window, options_.max_window);
  period_ = ratio_ >= 1 ? window_ : window_ / ratio_;
}

bool SamplingController::Tick(absl::Time now) {
  if (attached_) attached_time_ += now - last_tick_;
  last_tick_ = now;
  const absl::Duration in_period = now - window_start_;
  if (ratio_ >= 1) {
    attached_ = true;
  } else if (attached_ && in_period >= window_) {
    attached_ = false;  // the window is over: off for the rest of the period
  } else if (!attached_ && in_period >= period_) {
    attached_ = true;  // a new period
    window_start_ = now;
  }
  if (ratio_ >= 1 && in_period >= window_) window_start_ = now;
  return attached_;
}

absl::Time SamplingController::next_switch() const {
  if (ratio_ >= 1) return absl::InfiniteFuture();
  return window_start_ + (attached_ ? window_ : period_);
}

double SamplingController::observed_ratio(absl::Time now) const {
  const absl::Duration total = now - start_;
  if (total <= absl::ZeroDuration()) return 1.0;
  const absl::Duration on = attached_time_ + (attached_ ? now - last_tick_ : absl::ZeroDuration());
  return std::min(1.0, absl::FDivDuration(on, total));
}

}  // namespace ctxagent
