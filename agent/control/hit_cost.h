// What a probe hit costs the traced processes, measured on them rather than on the agent's own
// functions: the trap costs a service several times the calibrated figure (cold caches, a bigger
// working set: bench/README.md measured 2.3x on a quiet machine).
//
// The duty cycle alternates the probes on and off over the same processes, so the processes' CPU
// rate while the probes were on, minus the rate over the off spans on either side (which cancels a
// load that drifts linearly), over the hits of the on span, is what one hit cost them. Its BPF run
// time, measured on its own, is taken out: what is left is the trap. One such pair is noisy (a
// target's CPU per second moves by a few percent on its own), so the figure in force is the median
// of the last pairs, and only once enough of them agree.
#ifndef CTXAGENT_AGENT_CONTROL_HIT_COST_H_
#define CTXAGENT_AGENT_CONTROL_HIT_COST_H_

#include <cstdint>
#include <deque>
#include <optional>

#include "absl/time/time.h"

namespace ctxagent {

class HitCostEstimator {
 public:
  // A span of `length` with the probes `on`: the traced processes' CPU over it (seconds), the
  // probes' hits and BPF run time (seconds), and which processes they were (0: they changed during
  // the span). Spans over other processes are not compared; consecutive spans in one state are one.
  void Add(bool on, absl::Duration length, double cpu_s, uint64_t hits, double bpf_s,
           uint64_t processes);

  // The trap's CPU per hit, in seconds, once at least kMinPairs of the last pairs agree (the
  // median's standard error within kAgreement of it); the last agreed figure while a newer set
  // disagrees.
  std::optional<double> trap_s() const { return agreed_; }
  // How many pairs the figure in force came from.
  int agreed_pairs() const { return agreed_pairs_; }
  // How many pairs were compared so far.
  int pairs() const { return pairs_; }

  // An on span needs this many hits to be compared: fewer are lost in the CPU's own variation.
  static constexpr uint64_t kMinHits = 1000;
  static constexpr int kMinPairs = 5;
  static constexpr int kKeptPairs = 15;
  static constexpr double kAgreement = 0.25;
  // The off span after an on span is compared once this long (seconds).
  static constexpr double kAfterS = 2;

 private:
  struct Span {
    bool on = false;
    double length_s = 0, cpu_s = 0, bpf_s = 0;
    uint64_t hits = 0, processes = 0;
    bool valid = false;
  };
  // Closes `current_`; an off span is compared first.
  void Close();
  // An off span after an on span after an off span: a pair, if they are comparable. Consumes on_.
  void Compare();
  void Agree();

  Span before_;   // the last closed off span
  Span on_;       // the last closed on span, after before_
  Span current_;  // the span being added to
  std::deque<double> estimates_;
  std::optional<double> agreed_;
  int agreed_pairs_ = 0;
  int pairs_ = 0;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CONTROL_HIT_COST_H_
