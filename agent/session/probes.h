// The probes of a set of binaries, attached and detached together under the CPU budget
// (agent/control/sampling.h): `attach` has one binary for one process, the daemon every traced
// binary for all of its processes.
#ifndef CTXAGENT_AGENT_SESSION_PROBES_H_
#define CTXAGENT_AGENT_SESSION_PROBES_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/control/overhead.h"
#include "agent/control/sampling.h"
#include "agent/trace/tracer.h"
#include "symbols/go_binary.h"

namespace ctxagent {

// Longest a probe event waits in the ring while the probes are on, in every command (the probes
// never wake the agent; a filling ring and exec events do).
inline constexpr absl::Duration kDefaultDrainLatency = absl::Milliseconds(250);
// Events drained between two ProbeSet::Ticks: a few milliseconds of decoding at most.
inline constexpr int kDrainChunk = 512;

class ProbeSet {
 public:
  struct Options {
    SamplingController::Options sampling;
    pid_t target = 0;  // the one process whose CPU a target budget is about (attach); 0: none
    // A new binary's probes are on for this long before the budget plans its first window: a
    // busy target's hits over it give the cost of full tracing (see Tick).
    absl::Duration first_probe = absl::Milliseconds(100);
    // A target can turn busy after that probe (a service that starts serving): for this long
    // after a binary is added its hits are estimated again every `follow_up`, or as soon as
    // they cost an eighth of the first span's budget (before the first full measurement, a
    // refresh away, can see it).
    absl::Duration probe_for = absl::Seconds(5);
    absl::Duration follow_up = absl::Milliseconds(250);
    // The traced processes' CPU: what a hit costs them is then measured (DutyCycle).
    TracedCpuSource traced_cpu;
  };
  ProbeSet(Tracer& tracer, const TrapCosts& costs, const Options& options, absl::Time now);
  ~ProbeSet();

  // Adds `bin`'s probes for `process` (null: every process running it; else it must outlive the
  // set, and every attach first checks it still runs `bin`), attached now unless the duty
  // cycle has them paused (then at the next window). Returns the binary's id in this set.
  absl::StatusOr<int> Add(const Process* process, const symbols::GoBinary& bin, absl::Time now);
  void Remove(int id);

  // Switches every binary's probes when the duty cycle says so at `now`, and ends a first probe.
  // After a detach the ring is drained, then `on_pause` runs. An attach that fails is returned
  // (that binary stays off until the next window); the others are attached all the same.
  absl::Status Tick(absl::Time now, const std::function<void()>& on_pause);
  // What an agent's loop runs: Tick, then the drain of the ring in chunks (kDrainChunk) with a Tick
  // between two. While the agent decodes a busy target's backlog the probes keep firing: a window
  // that ends meanwhile must close first (draining first kept bench/startup.sh's target traced
  // 30-40 ms past its first window on the test VM, a third of what its first 20 s cost).
  absl::Status TickAndDrain(const std::function<void()>& on_pause);
  // The cost since the last read, charged to the state the probes were in.
  OverheadSample Measure(absl::Time now);
  // Forgets the cost since the last read (one-off start-up work).
  void Restart(absl::Time now);
  // Whether events were dropped since the last call.
  bool NewLoss();

  bool attached() const { return duty_.attached(); }
  // Whether the probes attached now see goroutines end. While the budget samples, a window leaves
  // the goroutine-exit probes out (a quarter of a busy service's hits: its requests' goroutines
  // start and end): a goroutine's end is read from its runtime.g instead, at the next reconcile
  // (ProcessLineage::Reconcile), which the events of such a window ask for (TracingSession::Apply).
  // Decided at each window's start; a window traced in full (ratio 1, the first) keeps them.
  bool goroutine_exits() const { return goroutine_exits_; }
  // Whether a new binary's cost is being probed (its hits can wake the agent: Tracer::ArmHitAlarm).
  bool probing() const { return probe_end_ != absl::InfiniteFuture(); }
  // When Tick next has something to do (InfiniteFuture if nothing is scheduled).
  absl::Time next_deadline() const;
  double observed_ratio(absl::Time now) const { return duty_.controller().observed_ratio(now); }
  SamplingPlan plan() const { return duty_.plan(); }
  double node_seconds() const { return duty_.node_seconds(); }
  double cpu_seconds() const { return duty_.cpu_seconds(); }
  const TrapCosts& trap_costs() const { return duty_.trap_costs(); }
  size_t size() const { return binaries_.size(); }

 private:
  struct Binary {
    const Process* process;
    const symbols::GoBinary* bin;
    uint32_t attachment = 0;
    bool attached = false;
  };
  absl::Status AttachAll();
  // The probes wake the agent after hits worth an eighth of a new binary's first span: a target
  // turning busy between follow-ups is estimated again before it spends the span's budget.
  void ArmAlarm();
  absl::StatusOr<uint32_t> AttachOne(const Binary& b);

  Tracer& tracer_;
  Options options_;
  DutyCycle duty_;
  std::map<int, Binary> binaries_;
  int next_id_ = 0;
  absl::Time probe_end_ = absl::InfiniteFuture();  // of the first probe in progress
  absl::Time probe_start_;  // the first probe's: the first window counts from it
  absl::Time probe_until_ = absl::InfinitePast();  // follow-up probes until then
  bool alarm_rang_ = false;  // once since the last estimate: the next ring estimates
  bool goroutine_exits_ = true;
  uint64_t lost_seen_ = 0;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_SESSION_PROBES_H_
