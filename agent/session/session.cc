#include "agent/session/session.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "agent/heap/unwind.h"

namespace ctxagent {
namespace {

// With nothing changed, time alone can still withdraw a finding as a deadline comes near (an
// orphaned context whose deadline is due within grace, a timer no longer far): those instants are
// not worth tracking per node, an evaluation this often catches them.
constexpr absl::Duration kQuietEvaluation = absl::Seconds(60);

// The longest goroutine states (views; a goroutine that parks on a Done channel it was not bound
// to) can be behind while the live tracked nodes stay the same.
constexpr absl::Duration kQuietRead = absl::Seconds(30);

// What Reconcile can change that findings depend on.
bool SameEnds(const LineageStats& a, const LineageStats& b) {
  return a.inferred_cancels == b.inferred_cancels && a.inferred_exits == b.inferred_exits &&
         a.live_contexts == b.live_contexts && a.live_goroutines == b.live_goroutines;
}

}  // namespace

heap::MarkLimits MarkLimitsFor(int memory_mb) {
  heap::MarkLimits limits;
  limits.max_memory = static_cast<uint64_t>(memory_mb) << 20;
  limits.max_read = limits.max_memory * 64;
  limits.max_spans = limits.max_memory / 64;
  return limits;
}

absl::StatusOr<std::unique_ptr<TracingSession>> TracingSession::Create(
    pid_t pid, const symbols::GoBinary& bin, const SessionOptions& options) {
  auto bias = Process(pid).LoadBias(bin.elf());
  if (!bias.ok()) return bias.status();
  auto session = std::unique_ptr<TracingSession>(new TracingSession(pid, bin, *bias, options));
  // Every goroutine, those that predate the probes included: a process that leaked for days shows
  // its parked goroutines in the first evaluation.
  session->lineage_.ObserveGoroutines(absl::Now(), session->goroutines_);
  ++session->goroutine_reads_;
  return session;
}

TracingSession::TracingSession(pid_t pid, const symbols::GoBinary& bin, uint64_t bias,
                               const SessionOptions& options)
    : options_(options),
      process_(pid),
      lineage_(pid),
      decoder_(bin, process_, bias, lineage_.sites()),
      liveness_(process_, bin.offsets()),
      goroutines_(bin, process_, bias, decoder_, clock_, options.mark_limits.max_memory),
      memory_(process_),
      heap_facts_(heap::HeapFactsFor(bin, bias)),
      leaks_(options.mark_every / 2) {}

void TracingSession::Apply(const ctx_event& raw, const EventClock& clock, bool goroutine_exits) {
  ++events_;
  auto e = decoder_.Decode(raw, clock);
  if (!e.ok()) {
    ++undecodable_;
    return;
  }
  if (auto* started = std::get_if<GoroutineCreated>(&*e); started != nullptr && !goroutine_exits) {
    started->exit_unseen = true;
    paused_once_ = true;  // its end is for Reconcile to read
  }
  lineage_.Apply(*e);
  applied_ = true;
}

void TracingSession::OnProbesPaused() {
  lineage_.OnProbesPaused();
  paused_once_ = true;
  changed_ = true;
}

void TracingSession::OnEventsLost() {
  lineage_.OnEventsLost();
  changed_ = true;
}

void TracingSession::set_work_allowance(double cores) {
  reconcile_pacer_.set_allowance(cores / 3);
  evaluate_pacer_.set_allowance(cores / 3);
  mark_pacer_.set_allowance(cores / 3);
}

absl::Duration TracingSession::work_pause() const {
  return std::max({reconcile_pacer_.pause(), evaluate_pacer_.pause(), mark_pacer_.pause()});
}

bool TracingSession::MarkHeap(absl::Time now) {
  const double cpu = ThreadCpuSeconds();
  absl::StatusOr<std::vector<GoroutineState>> goroutines = goroutines_.ReadEvery();
  // The tracked contexts are asked about: whether each is reachable, whether its cancel func is,
  // and which goroutines hold it.
  const std::vector<uint64_t> contexts = lineage_.ContextAddresses();
  absl::StatusOr<bool> changed =
      goroutines.ok()
          ? heap::MarkAndTrack(memory_, heap_facts_, options_.mark_limits, *std::move(goroutines),
                               now, decoder_, leaks_, last_mark_, contexts)
          : goroutines.status();
  ++marks_;
  // A leak found by one mark is proven by the next one at least half a period later: it comes
  // then rather than a whole period later (bench/startup.sh's leak, proven ~5 s sooner). A target
  // that keeps leaking is marked twice as often, within the mark pacer's allowance.
  next_mark_ =
      now + (changed.ok() && leaks_.unproven() > 0 ? options_.mark_every / 2 : options_.mark_every);
  if (changed.ok()) {
    const bool facts = lineage_.ObserveMark(now, contexts, last_mark_.contexts, last_mark_.holds);
    changed = *changed || facts;
  } else if (process_.Alive()) {
    // Not a verdict: a target whose runtime makes no sense, or a heap past the cap, is traced on
    // without marks (one mark per process is all it may cost).
    mark_status_ = changed.status();
    lineage_.OnMarksStopped();
  }
  const double spent = ThreadCpuSeconds() - cpu;
  last_mark_.cpu_seconds = spent;
  mark_pacer_.Ran(now, spent);
  return changed.value_or(false);
}

std::vector<Finding> TracingSession::AllFindings(absl::Time now) {
  std::vector<Finding> out = lineage_.Evaluate(now, options_.findings);
  // Where a finding's goroutines are stuck, as `goroutine?debug=2` would show it: the first one
  // an ignored cancellation describes, the first parked one waiting on a Done channel nothing
  // can close.
  for (Finding& f : out) {
    const bool ignored = f.kind == FindingKind::kIgnoredCancel;
    if (!ignored && f.kind != FindingKind::kOrphanedDone && f.kind != FindingKind::kLostCancel) {
      continue;
    }
    for (uint64_t goid : f.goroutines) {
      const GoroutineNode* g = lineage_.FindGoroutine(goid);
      if (g != nullptr && g->state != nullptr && g->state->waiting) {
        f.blocked_at = decoder_.BlockingSite(heap::Unwind(memory_, *g->state));
      }
      if (ignored || f.blocked_at != kNoSite) break;
    }
    if (f.blocked_at != kNoSite) {
      absl::StrAppend(&f.explanation, ignored ? " at " : "; the first waits at ",
                      SiteString(lineage_.sites().Get(f.blocked_at)));
    }
  }
  std::vector<Finding> leaks = heap::GoroutineLeakFindings(now, leaks_, lineage_, out);
  out.insert(out.end(), std::make_move_iterator(leaks.begin()),
             std::make_move_iterator(leaks.end()));
  return out;
}

void TracingSession::Reconcile(absl::Time now) {
  const double cpu = ThreadCpuSeconds();
  const LineageStats before = lineage_.stats();
  if (paused_once_) lineage_.Reconcile(now, liveness_);
  if (!SameEnds(before, lineage_.stats())) changed_ = true;
  // Reading memory costs per unobserved node: often enough to keep findings as fresh as the grace
  // period, not at every refresh.
  const absl::Duration period = std::max(options_.refresh, options_.findings.grace);
  // Every goroutine is read again at once when the live tracked nodes changed since the last read;
  // while they stay the same and reads find nothing new, each read waits twice as long as the last,
  // up to kQuietRead. A service whose contexts come and go between reads (the idle daemon's
  // floor: ~8 reads of its memory per process) is read twice a minute, not every period.
  const uint64_t live = lineage_.LiveFingerprint();
  if (live != read_live_ || now >= next_read_) {
    const bool states_changed = lineage_.ObserveGoroutines(now, goroutines_);
    ++goroutine_reads_;
    if (states_changed) changed_ = true;
    read_gap_ =
        live == read_live_ && !states_changed ? std::min(2 * read_gap_, kQuietRead) : period;
    read_live_ = live;
    next_read_ = now + read_gap_;
  }
  next_reconcile_ = now + period;
  reconcile_pacer_.Ran(now, ThreadCpuSeconds() - cpu);
}

void TracingSession::Evaluate(absl::Time now) {
  // Every node's times are at most `now`: its thresholds (creation or end + grace or leak_after,
  // collection 2 x grace after its end) pass by then.
  if (changed_) {
    settled_after_ = now + std::max(2 * options_.findings.grace, options_.findings.leak_after);
  }
  changed_ = false;
  evaluated_live_ = lineage_.LiveFingerprint();
  const double cpu = ThreadCpuSeconds();
  findings_ = AllFindings(now);
  lineage_.Collect(now, options_.findings);
  evaluate_pacer_.Ran(now, ThreadCpuSeconds() - cpu);
  last_evaluation_ = now;
  ++evaluations_;
}

bool TracingSession::ReconcileDue(absl::Time now) const {
  return now >= next_reconcile_ && reconcile_pacer_.Due(now);
}

bool TracingSession::MarkDue(absl::Time now) const {
  return options_.mark_every > absl::ZeroDuration() && mark_status_.ok() && now >= next_mark_ &&
         mark_pacer_.Due(now);
}

bool TracingSession::Settling(absl::Time now) const {
  return now <= settled_after_ + options_.refresh;
}

bool TracingSession::QuietTooLong(absl::Time now) const {
  return now - last_evaluation_ >= kQuietEvaluation;
}

bool TracingSession::FindingsCanDiffer(absl::Time now) const {
  return changed_ || Settling(now) || QuietTooLong(now);
}

bool TracingSession::Refresh(absl::Time now, bool probes_attached) {
  // Events change the findings only if they changed the live nodes: contexts and goroutines that
  // came and went since the last evaluation (an idle service's requests) leave every finding as
  // it was.
  if (applied_) {
    applied_ = false;
    if (lineage_.LiveFingerprint() != evaluated_live_) changed_ = true;
  }
  const bool reconciled = ReconcileDue(now);
  if (reconciled) Reconcile(now);
  // A leak proven (or withdrawn) is reported at this refresh, probes on or off; it starts no
  // threshold, so the lineage's settling is left as it is.
  const bool leaks_changed = MarkDue(now) && MarkHeap(now);
  // Detached, the lineage changes only when memory is read: the last findings stand meanwhile.
  const bool lineage_seen = probes_attached || reconciled;
  const bool due = evaluation_held_ || leaks_changed || (lineage_seen && FindingsCanDiffer(now));
  // One held back runs once its pacer allows, whatever changed meanwhile: a threshold that passed
  // in the pause must still be seen.
  evaluation_held_ = due && !evaluate_pacer_.Due(now);
  if (!due || evaluation_held_) return false;
  Evaluate(now);
  return true;
}

void TracingSession::Finish(absl::Time now, bool target_exited) {
  if (target_exited && paused_once_) return;
  if (!target_exited) Reconcile(now);
  findings_ = AllFindings(now);
}

}  // namespace ctxagent
