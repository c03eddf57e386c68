#include "agent/session/agent_loop.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace ctxagent {

Clock& RealClock() {
  class Real : public Clock {
   public:
    absl::Time Now() override { return absl::Now(); }
  };
  static Real* clock = new Real;
  return *clock;
}

AgentLoop::AgentLoop(const Options& options, Clock& clock, Driver& driver)
    : options_(options),
      clock_(clock),
      driver_(driver),
      next_refresh_(options.first_refresh),
      drain_every_(options.poll),
      last_drain_(clock.Now()) {}

void AgentLoop::PaceDrains(absl::Time now, uint64_t handled) {
  if (options_.quiet_events_per_second <= 0) return;
  const double per_s = static_cast<double>(handled - handled_seen_) /
                       std::max(1e-3, absl::ToDoubleSeconds(now - last_drain_));
  handled_seen_ = handled;
  last_drain_ = now;
  drain_every_ = per_s < options_.quiet_events_per_second
                     ? std::min(2 * drain_every_, std::max(options_.poll, options_.refresh))
                     : options_.poll;
}

absl::StatusOr<AgentLoop::Wake> AgentLoop::Step() {
  absl::Time now = clock_.Now();
  const bool ending = now >= options_.end;
  absl::StatusOr<bool> go_on = driver_.Poll(now, ending);
  if (!go_on.ok()) return go_on.status();
  stopped_ = !*go_on || ending;
  if (stopped_) return Wake{now};
  PaceDrains(now, driver_.state().handled);
  // The drain took time: what it decoded happened before this, which the refresh needs (every
  // node's times at most its `now`).
  now = clock_.Now();
  if (now >= next_refresh_) {
    next_refresh_ = now + options_.refresh;
    go_on = driver_.Refresh(now);
    if (!go_on.ok()) return go_on.status();
    stopped_ = !*go_on;
    if (stopped_) return Wake{now};
  }
  const Driver::State state = driver_.state();
  Wake wake{std::min({next_refresh_, options_.end, state.next_due})};
  // Probe events wait in the ring (the probes never wake the agent): this long at most.
  if (state.draining) wake.at = std::min(wake.at, now + drain_every_);
  // Not while a binary is probed: its alarms come every few milliseconds when it is busy, and
  // each batch would be that long of full tracing.
  if (options_.min_wake_gap > absl::ZeroDuration() &&
      woken_[1] - woken_[0] < options_.min_wake_gap && !state.probing) {
    wake.batch = options_.min_wake_gap;
    woken_[0] = absl::InfinitePast();
  }
  return wake;
}

void AgentLoop::RingWoke(absl::Time now) {
  woken_[0] = woken_[1];
  woken_[1] = now;
}

}  // namespace ctxagent
