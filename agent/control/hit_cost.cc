#include "agent/control/hit_cost.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ctxagent {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

void HitCostEstimator::Add(bool on, absl::Duration length, double cpu_s, uint64_t hits,
                           double bpf_s, uint64_t processes) {
  if (processes == 0 || (current_.valid && current_.processes != processes)) {
    before_ = on_ = current_ = {};
    if (processes == 0) return;
  }
  if (current_.valid && current_.on != on) Close();
  current_.valid = true;
  current_.on = on;
  current_.processes = processes;
  current_.length_s += absl::ToDoubleSeconds(length);
  current_.cpu_s += cpu_s;
  current_.hits += hits;
  current_.bpf_s += bpf_s;
  // The off span after an on span is compared once long enough, not at its end: periods can be a
  // minute long.
  if (!on && on_.valid && current_.length_s >= kAfterS) Compare();
}

void HitCostEstimator::Close() {
  if (current_.on) {
    on_ = current_;
  } else {
    Compare();
    before_ = current_;
  }
  current_ = {};
}

void HitCostEstimator::Compare() {
  if (before_.valid && on_.valid && on_.hits >= kMinHits && on_.length_s > 0 &&
      before_.length_s > 0 && current_.length_s > 0) {
    // The off rate either side of the on span: a load drifting linearly cancels out.
    const double off_rate =
        (before_.cpu_s / before_.length_s + current_.cpu_s / current_.length_s) / 2;
    const double extra = on_.cpu_s - off_rate * on_.length_s - on_.bpf_s;
    estimates_.push_back(extra / static_cast<double>(on_.hits));
    if (estimates_.size() > kKeptPairs) estimates_.pop_front();
    ++pairs_;
    Agree();
  }
  on_ = {};
}

void HitCostEstimator::Agree() {
  const int n = static_cast<int>(estimates_.size());
  if (n < kMinPairs) return;
  std::vector<double> v(estimates_.begin(), estimates_.end());
  const double median = Median(v);
  for (double& x : v) x = std::abs(x - median);
  // The median's standard error from the median absolute deviation (robust to an outlier pair:
  // a GC cycle, a burst of requests inside one window).
  const double se = 1.2533 * 1.4826 * Median(std::move(v)) / std::sqrt(n);
  if (median > 0 && se <= kAgreement * median) {
    agreed_ = median;
    agreed_pairs_ = n;
  }
}

}  // namespace ctxagent
