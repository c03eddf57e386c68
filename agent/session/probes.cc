#include "agent/session/probes.h"

namespace ctxagent {

ProbeSet::ProbeSet(Tracer& tracer, const TrapCosts& costs, const Options& options, absl::Time now)
    : tracer_(tracer),
      options_(options),
      duty_(options.sampling,
            std::make_unique<OverheadMeter>(costs, tracer.probe_fd(), options.target), now,
            options.traced_cpu) {}

ProbeSet::~ProbeSet() {
  for (auto& [id, b] : binaries_) {
    if (b.attached) tracer_.Detach(b.attachment);
  }
}

absl::StatusOr<int> ProbeSet::Add(const Process* process, const symbols::GoBinary& bin,
                                  absl::Time now) {
  Binary b{process, &bin};
  // While the probes are paused a new binary waits for the next window.
  if (duty_.attached()) {
    // Reading the new binary and attaching are one-off work, not the cost of either state
    // (Restart below forgets them for the controller).
    auto attachment = AttachOne(b);
    if (!attachment.ok()) return attachment.status();
    b.attachment = *attachment;
    b.attached = true;
    probe_start_ = absl::Now();
    probe_end_ = probe_start_ + options_.first_probe;
    probe_until_ = probe_start_ + options_.probe_for;
    duty_.Arrive(probe_start_, tracer_.trap_hits());
    ArmAlarm();
  }
  binaries_.emplace(next_id_, b);
  return next_id_++;
}

void ProbeSet::Remove(int id) {
  auto it = binaries_.find(id);
  if (it == binaries_.end()) return;
  if (it->second.attached) tracer_.Detach(it->second.attachment);
  binaries_.erase(it);
}

absl::StatusOr<uint32_t> ProbeSet::AttachOne(const Binary& b) {
  return b.process != nullptr ? tracer_.Attach(*b.process, *b.bin, goroutine_exits_)
                              : tracer_.AttachEveryProcess(*b.bin, goroutine_exits_);
}

absl::Status ProbeSet::AttachAll() {
  goroutine_exits_ = duty_.controller().ratio() >= 1;
  absl::Status status;
  for (auto& [id, b] : binaries_) {
    if (b.attached) continue;
    auto attachment = AttachOne(b);
    if (!attachment.ok()) {
      status.Update(attachment.status());
      continue;
    }
    b.attachment = *attachment;
    b.attached = true;
  }
  return status;
}

void ProbeSet::ArmAlarm() {
  tracer_.ArmHitAlarm(duty_.HitsCosting(duty_.controller().first_span_allowance() / 8));
}

absl::Status ProbeSet::Tick(absl::Time now, const std::function<void()>& on_pause) {
  if (probing() && now < probe_end_ && !alarm_rang_ && tracer_.HitAlarmRang()) {
    // The segment the alarm ends began before the load did: its rate would understate the load
    // (the plan then paused the target on a tenth of its cost). The next alarm's hits give it.
    duty_.Restart(now, tracer_.trap_hits());
    alarm_rang_ = true;
    ArmAlarm();
  } else if (now >= probe_end_ || (probing() && tracer_.HitAlarmRang())) {
    alarm_rang_ = false;
    // What the probe's hits cost is the first estimate of full tracing: a busy target gets a
    // short first window now, before a full measurement. It needs only the hit counters: the
    // events wait in the ring until the probes are off, if they go off now (see TickAndDrain).
    // The whole time traced in full since the binary came counts toward its first window.
    duty_.Probe(now, tracer_.trap_hits(), probe_start_);
    probe_end_ = absl::InfiniteFuture();
    // Full tracing of a target that was quiet at its first probe and is busy now costs the whole
    // budget in a fraction of a second: its hits are estimated again while still young (a
    // target started by the bench/startup.sh cost 1.2% of the node over its first 20 s, traced
    // in full until the refresh measured it, when its load began after the first probe).
    if (duty_.attached() && now + options_.follow_up <= probe_until_) {
      probe_end_ = now + options_.follow_up;
      ArmAlarm();
    } else {
      tracer_.ArmHitAlarm(0);
    }
  }
  const bool want = duty_.Tick(now);
  if (want == duty_.attached()) return absl::OkStatus();
  absl::Status status;
  duty_.Switch(now, tracer_.trap_hits(), want, [&] {
    if (want) {
      status = AttachAll();
      return;
    }
    for (auto& [id, b] : binaries_) {
      if (b.attached) tracer_.Detach(b.attachment);
      b.attached = false;
    }
  });
  if (!want) {
    probe_end_ = absl::InfiniteFuture();
    tracer_.ArmHitAlarm(0);
    tracer_.Drain();
    on_pause();
  }
  return status;
}

absl::Status ProbeSet::TickAndDrain(const std::function<void()>& on_pause) {
  absl::Status status = Tick(absl::Now(), on_pause);
  while (tracer_.Drain(kDrainChunk) == kDrainChunk) status.Update(Tick(absl::Now(), on_pause));
  return status;
}

OverheadSample ProbeSet::Measure(absl::Time now) { return duty_.Measure(now, tracer_.trap_hits()); }

void ProbeSet::Restart(absl::Time now) {
  duty_.Restart(now, tracer_.trap_hits());
  // A probe in progress measures from here: the start-up work was not the probes' cost.
  if (probe_end_ != absl::InfiniteFuture()) {
    probe_start_ = now;
    probe_end_ = now + options_.first_probe;
  }
}

bool ProbeSet::NewLoss() {
  const uint64_t lost = tracer_.counters().dropped_total();
  if (lost == lost_seen_) return false;
  lost_seen_ = lost;
  return true;
}

absl::Time ProbeSet::next_deadline() const {
  return std::min(probe_end_, duty_.controller().next_switch());
}

}  // namespace ctxagent
