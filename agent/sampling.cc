#include "agent/sampling.h"

#include <algorithm>

namespace ctxagent {

namespace {
// Never below this share: some tracing must happen for the cost to stay measured.
constexpr double kMinRatio = 0.02;
// Weight of a new measurement in the smoothed full-tracing cost.
constexpr double kSmoothing = 0.3;
}  // namespace

SamplingController::SamplingController(double budget, absl::Duration min_window, absl::Time now)
    : budget_(budget), window_(min_window), start_(now), window_start_(now), last_(now) {}

bool SamplingController::Update(absl::Time now, double measured_node_ratio) {
  if (attached_) {
    attached_time_ += now - last_;
    if (measured_node_ratio > 0) {
      full_cost_ = full_cost_ == 0 ? measured_node_ratio
                                   : (1 - kSmoothing) * full_cost_ + kSmoothing * measured_node_ratio;
    }
    ratio_ = full_cost_ <= budget_ ? 1.0 : std::max(kMinRatio, budget_ / full_cost_);
  }
  last_ = now;
  if (ratio_ >= 1.0) {
    attached_ = true;
    return true;
  }
  const absl::Duration in_period = now - window_start_;
  if (attached_ && in_period >= window_) {
    attached_ = false;  // the window is over: off for the rest of the period
  } else if (!attached_ && in_period >= window_ / ratio_) {
    attached_ = true;  // a new period
    window_start_ = now;
  }
  return attached_;
}

double SamplingController::observed_ratio(absl::Time now) const {
  absl::Duration total = now - start_;
  if (total <= absl::ZeroDuration()) return 1.0;
  return std::min(1.0, absl::FDivDuration(attached_time_ + (attached_ ? now - last_ : absl::ZeroDuration()), total));
}

}  // namespace ctxagent
