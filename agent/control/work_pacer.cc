#include "agent/control/work_pacer.h"

#include <time.h>

#include <algorithm>

namespace ctxagent {

double ProcessWorkAllowance(double budget, int ncpu, int processes) {
  if (budget <= 0) return 0;
  return budget * kProcessWorkShare * std::max(ncpu, 1) / std::max(processes, 1);
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void WorkPacer::set_allowance(double cores) {
  if (cores == allowance_) return;
  allowance_ = cores;
  Plan();
}

void WorkPacer::Ran(absl::Time start, double cpu_s) {
  last_start_ = start;
  last_cpu_s_ = std::max(cpu_s, 0.0);
  Plan();
}

void WorkPacer::Plan() {
  pause_ = allowance_ > 0 ? std::min(absl::Seconds(last_cpu_s_ / allowance_), kMaxWorkPause)
                          : absl::ZeroDuration();
  next_ = last_start_ + pause_;
}

}  // namespace ctxagent
