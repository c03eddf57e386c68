// The one loop of every command that traces (`attach`, the daemon): switch the probes and drain
// the ring, refresh when due (measure, evaluate, render), then wait until something is next due.
// The commands differ only in what they trace and render (AgentLoop::Driver); when to drain, to
// refresh and to wake is decided here, against an injected clock.
#ifndef CTXAGENT_AGENT_SESSION_AGENT_LOOP_H_
#define CTXAGENT_AGENT_SESSION_AGENT_LOOP_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ctxagent {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

// absl::Now().
Clock& RealClock();

class AgentLoop {
 public:
  struct Options {
    absl::Duration refresh = absl::Seconds(1);
    absl::Time first_refresh = absl::InfinitePast();
    absl::Time end = absl::InfiniteFuture();  // past it the loop drains once more and stops
    // Longest a probe event waits in the ring while the probes are on.
    absl::Duration poll = absl::Milliseconds(250);
    // Drains stretch (each waits twice as long as the last, up to the refresh period) while
    // events come slower than this per second, and go back to `poll` when they come faster; 0:
    // every `poll`.
    double quiet_events_per_second = 0;
    // Ring wakeups closer than this (a burst of execs) are batched: the next wait first sleeps
    // this long, unless a binary is probed. Zero: never.
    absl::Duration min_wake_gap = absl::ZeroDuration();
  };

  // What one command traces and renders.
  class Driver {
   public:
    // What the loop's wake rules read after a step.
    struct State {
      // The earliest of the probes' next switch (ProbeSet::next_deadline) and the driver's own
      // deadlines (a rescan).
      absl::Time next_due = absl::InfiniteFuture();
      bool draining = false;  // probe events can wait in the ring: probes on, something traced
      bool probing = false;   // a new binary's cost is probed: its hits wake the loop
      uint64_t handled = 0;   // events handled so far (Tracer::handled)
    };
    virtual ~Driver() = default;
    // The probes' switch and the drain of the ring (ProbeSet::TickAndDrain), or once `ending`
    // the drain alone; then whatever of the driver's own is due (a rescan). Returns whether to go
    // on; an error ends the loop with it.
    virtual absl::StatusOr<bool> Poll(absl::Time now, bool ending) = 0;
    // The periodic work: measure, refresh the sessions, render. Returns whether to go on.
    virtual absl::StatusOr<bool> Refresh(absl::Time now) = 0;
    virtual State state() const = 0;
  };

  // When to wake: at `at`, or at a ring event before; the wait first sleeps `batch` (capped at
  // `at`) when ring wakeups come in a burst.
  struct Wake {
    absl::Time at;
    absl::Duration batch = absl::ZeroDuration();
  };

  AgentLoop(const Options& options, Clock& clock, Driver& driver);

  // One turn at the clock's now; returns when to wake. Once stopped() there is nothing to wait
  // for.
  absl::StatusOr<Wake> Step();
  bool stopped() const { return stopped_; }
  // The wait ended with a ring event (not at the wake time) at `now`.
  void RingWoke(absl::Time now);
  // How long a probe event may wait in the ring now.
  absl::Duration drain_every() const { return drain_every_; }

 private:
  // Stretches the drains while events are few, back to `poll` once they are not.
  void PaceDrains(absl::Time now, uint64_t handled);

  const Options options_;
  Clock& clock_;
  Driver& driver_;
  bool stopped_ = false;
  absl::Time next_refresh_;
  absl::Duration drain_every_;
  absl::Time last_drain_ = absl::InfinitePast();
  uint64_t handled_seen_ = 0;
  absl::Time woken_[2] = {absl::InfinitePast(), absl::InfinitePast()};  // the last two ring wakeups
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_SESSION_AGENT_LOOP_H_
