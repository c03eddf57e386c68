// One traced process, as both `attach` and the daemon trace it: the decoder of its probe events,
// its lineage, the memory checks that cover what the probes did not watch (contexts, and every
// goroutine's state: what it waits on), and its findings as of the last evaluation.
#ifndef CTXAGENT_AGENT_SESSION_SESSION_H_
#define CTXAGENT_AGENT_SESSION_SESSION_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/control/work_pacer.h"
#include "agent/heap/heap_mark.h"
#include "agent/heap/leak_tracker.h"
#include "agent/lineage/lineage.h"
#include "agent/trace/decoder.h"
#include "agent/trace/goroutines.h"
#include "agent/trace/liveness.h"
#include "agent/trace/process.h"
#include "bpf/ctxagent.h"
#include "symbols/go_binary.h"

namespace ctxagent {

struct SessionOptions {
  FindingOptions findings;
  absl::Duration refresh = absl::Seconds(1);  // how often Refresh is called
  // How often the target's heap is marked for leaked goroutines (agent/heap); zero: never. A
  // goroutine is proven leaked by two marks at least half this apart; a mark that found one not yet
  // proven is followed half this later.
  absl::Duration mark_every = absl::Seconds(10);
  heap::MarkLimits mark_limits;
};

// The limits of one mark holding at most `memory_mb` MiB: it may read 64 times that.
heap::MarkLimits MarkLimitsFor(int memory_mb);

class TracingSession {
 public:
  // `bin` is the process's executable, opened once; it must outlive the session.
  static absl::StatusOr<std::unique_ptr<TracingSession>> Create(pid_t pid,
                                                                const symbols::GoBinary& bin,
                                                                const SessionOptions& options);

  pid_t pid() const { return process_.pid(); }
  const Process& process() const { return process_; }
  const ProcessLineage& lineage() const { return lineage_; }
  const std::vector<Finding>& findings() const { return findings_; }  // as of the last evaluation
  uint64_t events() const { return events_; }
  uint64_t undecodable() const { return undecodable_; }
  uint64_t evaluations() const { return evaluations_; }
  uint64_t goroutine_reads() const { return goroutine_reads_; }  // every goroutine read from memory
  // The heap marks: how many ran, the last one's figures, and why marks stopped (OK while they
  // run; FailedPrecondition where the release's heap is not tabled; DataLoss when the target's
  // runtime structures made no sense, ResourceExhausted past --mark_memory: the process is then
  // traced on without marks).
  uint64_t marks() const { return marks_; }
  const heap::MarkResult& last_mark() const { return last_mark_; }
  const absl::Status& mark_status() const { return mark_status_; }
  const heap::LeakTracker& leaks() const { return leaks_; }
  // Cores its memory reads and its evaluations may use together, half each (their cost grows with
  // the process: see agent/control/work_pacer.h); 0: no limit.
  void set_work_allowance(double cores);
  // How long the last memory read or evaluation holds the next one back (zero when they run at
  // every refresh): how much later than usual its findings can be.
  absl::Duration work_pause() const;

  // One probe event of this process, from probes that see goroutines end or not
  // (ProbeSet::goroutine_exits).
  void Apply(const ctx_event& raw, const EventClock& clock, bool goroutine_exits = true);
  // The probes were detached: what is live may end unseen, and is read from memory from now on.
  void OnProbesPaused();
  // Events were dropped: what is live may have ended unseen and no longer counts.
  void OnEventsLost();
  // Marks what is tracked now uncertain once (the tracker's memory cap; see ProcessLineage).
  void OnCapped() { OnEventsLost(); }

  // The periodic work at `now`: reads what the probes did not watch from memory (as often as the
  // grace period needs), then evaluates and collects, but only when the result can differ from
  // the last evaluation: something changed since, or one of the findings' time thresholds (grace,
  // leak_after) may have passed since that change. Returns whether it evaluated.
  // While the probes are detached it evaluates only after reading memory.
  bool Refresh(absl::Time now, bool probes_attached);
  // The findings at a stop. After the target exited its memory cannot be read: unobserved nodes
  // keep the last evaluation.
  void Finish(absl::Time now, bool target_exited);

 private:
  TracingSession(pid_t pid, const symbols::GoBinary& bin, uint64_t bias,
                 const SessionOptions& options);
  // Refresh's rule, in named parts. Memory is read again once the last read's period and pause
  // passed; the heap is marked on its own period and pause, while marks work.
  bool ReconcileDue(absl::Time now) const;
  bool MarkDue(absl::Time now) const;
  // A threshold counted from the last change (grace, leak_after, collection) may pass by `now`.
  bool Settling(absl::Time now) const;
  // No evaluation for kQuietEvaluation: a deadline coming near can withdraw a finding.
  bool QuietTooLong(absl::Time now) const;
  // Something changed since the last evaluation, or time alone can change its result.
  bool FindingsCanDiffer(absl::Time now) const;
  void Reconcile(absl::Time now);
  void Evaluate(absl::Time now);
  // Marks the heap, proves leaks across marks and finds where the new ones are stuck. Returns
  // whether the proven set changed.
  bool MarkHeap(absl::Time now);
  // The lineage's findings at `now`, then the proven goroutine leaks they do not already name.
  std::vector<Finding> AllFindings(absl::Time now);

  SessionOptions options_;
  Process process_;
  ProcessLineage lineage_;
  Decoder decoder_;
  MemoryLiveness liveness_;
  EventClock clock_;
  GoroutineReader goroutines_;  // every goroutine's state, those that predate the probes included
  heap::ProcessMemory memory_;
  heap::HeapFacts heap_facts_;
  heap::LeakTracker leaks_;
  heap::MarkResult last_mark_;
  absl::Status mark_status_;
  uint64_t marks_ = 0;
  absl::Time next_mark_ = absl::InfinitePast();
  std::vector<Finding> findings_;
  uint64_t events_ = 0, undecodable_ = 0, evaluations_ = 0, goroutine_reads_ = 0;
  bool paused_once_ = false;      // its lineage has nodes the probes did not watch
  bool changed_ = true;           // since the last evaluation
  bool applied_ = false;          // events since the last Refresh
  uint64_t evaluated_live_ = 0;   // LiveFingerprint at the last evaluation
  bool evaluation_held_ = false;  // one was due while its pacer held it back
  WorkPacer reconcile_pacer_, evaluate_pacer_, mark_pacer_;
  absl::Time next_reconcile_ = absl::InfinitePast();
  // Goroutine reads (see Reconcile): the live fingerprint at the last, when the next is due anyway.
  uint64_t read_live_ = 0;
  absl::Duration read_gap_ = absl::ZeroDuration();
  absl::Time next_read_ = absl::InfinitePast();
  // Past this, with nothing changed, no threshold can flip a finding (see Refresh).
  absl::Time settled_after_ = absl::InfiniteFuture();
  absl::Time last_evaluation_ = absl::InfinitePast();
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_SESSION_SESSION_H_
