// The daemon's metrics: per-process counters and gauges, findings by site, what tracing costs.
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "agent/control/work_pacer.h"
#include "agent/node/daemon.h"
#include "agent/view/views.h"

namespace ctxagent {
namespace {

// The exported overhead is averaged over ~5 minutes: under sampling a refresh is either a window
// (far above the budget) or not (far below); what the budget and its alert are about is the
// average.
constexpr double kOverheadAverageS = 300;

}  // namespace

// Adds what a process created and cancelled since the last export to the counters.
void Daemon::ExportCounters(TracedProcess& p) {
  LineageStats st = p.session->lineage().stats();
  for (int k = 0; k < 4; ++k) {
    if (uint64_t d = st.created_by_kind[k] - p.last.created_by_kind[k]; d > 0) {
      workloads_.Add(metrics_.contexts_created, p.identity,
                     {{"kind", ContextKindName(static_cast<ContextKind>(k))}},
                     static_cast<double>(d));
    }
  }
  const std::pair<const char*, uint64_t> causes[] = {
      {"own", st.cancelled_own - p.last.cancelled_own},
      {"parent", st.cancelled_parent - p.last.cancelled_parent},
      {"deadline", st.cancelled_deadline - p.last.cancelled_deadline}};
  for (const auto& [cause, d] : causes) {
    if (d == 0) continue;
    workloads_.Add(metrics_.contexts_cancelled, p.identity, {{"cause", cause}},
                   static_cast<double>(d));
  }
  p.last = st;
}

// Sites as labels only for the largest findings; the rest are summed as "other".
void Daemon::ExportFindings(const TracedProcess& p,
                            std::map<Metrics::Labels, double>& findings) const {
  std::vector<const Finding*> order;
  for (const Finding& f : p.session->findings()) order.push_back(&f);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->count > b->count; });
  for (size_t i = 0; i < order.size(); ++i) {
    Metrics::Labels l = p.identity;
    l["kind"] = FindingKindName(order[i]->kind);
    l["site"] = static_cast<int>(i) < o_.max_site_labels
                    ? ShortSiteString(p.session->lineage().sites().Get(order[i]->site))
                    : "other";
    findings[l] += order[i]->count;
  }
}

void Daemon::RefreshProcesses(absl::Time now) {
  std::map<Metrics::Labels, double> live, goroutines, findings, attached, sampling;
  total_tracked_ = 0;
  const bool lost = probes_->NewLoss();
  if (lost) next_scan_ = now;  // exec and exit events may be among the lost
  const double ratio = probes_->observed_ratio(now);
  const double allowance =
      ProcessWorkAllowance(o_.budget, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)),
                           static_cast<int>(processes_.size()));
  for (auto& [pid, pp] : processes_) {
    TracedProcess& p = *pp;
    if (lost) p.session->OnEventsLost();
    p.session->set_work_allowance(allowance);
    p.session->Refresh(now, probes_->attached());
    LineageStats st = p.session->lineage().stats();
    total_tracked_ += st.tracked_contexts;
    ExportCounters(p);
    live[p.identity] += static_cast<double>(st.live_contexts);
    goroutines[p.identity] += static_cast<double>(st.live_goroutines);
    attached[{{"binary", p.labels.binary}}] += 1;
    sampling[{{"binary", p.labels.binary}}] = ratio;
    ExportFindings(p, findings);
    LogNewFindings(p);
  }
  metrics_.SetGauges(metrics_.contexts_live, live);
  metrics_.SetGauges(metrics_.goroutines, goroutines);
  metrics_.SetGauges(metrics_.findings, findings);
  metrics_.SetGauges(metrics_.attached, attached);
  metrics_.SetGauges(metrics_.sampling_ratio, sampling);
  workloads_.Expire(now);
  metrics_.SetGauges(metrics_.workloads, {{{}, static_cast<double>(workloads_.size())}});
  ExportTotals(now);
}

void Daemon::ExportTotals(absl::Time now) {
  // The probe set's own meter, read at every switch and refresh: its cost since the last export.
  const double spent = probes_->node_seconds();
  if (overhead_since_ != absl::Time() && now > overhead_since_) {
    const double interval_s = absl::ToDoubleSeconds(now - overhead_since_);
    const double ratio = (spent - exported_node_seconds_) / interval_s;
    const double a = 1 - std::exp(-interval_s / kOverheadAverageS);
    overhead_avg_ = overhead_avg_ < 0 ? ratio : overhead_avg_ + a * (ratio - overhead_avg_);
    metrics_.SetGauges(metrics_.overhead, {{{}, overhead_avg_}});
  }
  prometheus::Counter& total = metrics_.overhead_seconds.Add({});
  if (probes_->cpu_seconds() > total.Value())
    total.Increment(probes_->cpu_seconds() - total.Value());
  exported_node_seconds_ = spent;
  overhead_since_ = now;
  const TrapCosts& costs = probes_->trap_costs();
  metrics_.SetGauges(metrics_.trap_cost,
                     {{{{"source", costs.source()}}, costs.trap_us(false) * 1e-6}});
  TracerCounters c = tracer_->counters();
  for (int r = 0; r < DROP_REASONS; ++r) {
    if (c.dropped[r] > exported_lost_[r]) {
      metrics_.events_lost.Add({{"reason", DropReasonName(r)}})
          .Increment(static_cast<double>(c.dropped[r] - exported_lost_[r]));
      exported_lost_[r] = c.dropped[r];
    }
  }
  metrics_.events.Add({}).Increment(static_cast<double>(events_ - exported_events_));
  exported_events_ = events_;
  metrics_.evictions.Add({}).Increment(static_cast<double>(evictions_ - exported_evictions_));
  exported_evictions_ = evictions_;
}

}  // namespace ctxagent
