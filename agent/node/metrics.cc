#include "agent/node/metrics.h"

#include <sstream>

#include "prometheus/text_serializer.h"

namespace ctxagent {

#define CTXAGENT_COUNTER(name, help) \
  prometheus::BuildCounter().Name(name).Help(help).Register(*registry_)
#define CTXAGENT_GAUGE(name, help) \
  prometheus::BuildGauge().Name(name).Help(help).Register(*registry_)

Metrics::Metrics()
    : contexts_created(CTXAGENT_COUNTER("ctxagent_contexts_created_total",
                                        "Cancelable contexts created, by kind.")),
      contexts_cancelled(
          CTXAGENT_COUNTER("ctxagent_contexts_cancelled_total",
                           "Context cancellations, by cause (own, parent, deadline).")),
      events(CTXAGENT_COUNTER("ctxagent_events_total", "Events received from the probes.")),
      events_lost(CTXAGENT_COUNTER("ctxagent_events_lost_total",
                                   "Events the probes could not deliver, by reason.")),
      evictions(CTXAGENT_COUNTER("ctxagent_evictions_total",
                                 "Contexts not tracked because of the memory caps.")),
      workloads_dropped(CTXAGENT_COUNTER(
          "ctxagent_workloads_dropped_total",
          "Exited workloads whose series were dropped before --series_ttl, for --max_workloads.")),
      contexts_live(CTXAGENT_GAUGE("ctxagent_contexts_live", "Tracked contexts not cancelled.")),
      goroutines(CTXAGENT_GAUGE("ctxagent_goroutines_tracked", "Live goroutines tracked.")),
      findings(
          CTXAGENT_GAUGE("ctxagent_findings",
                         "Contexts or goroutines involved in current findings, by kind and site.")),
      attached(CTXAGENT_GAUGE("ctxagent_attached_processes", "Processes traced now.")),
      sampling_ratio(CTXAGENT_GAUGE("ctxagent_sampling_ratio",
                                    "Share of time the probes were attached (1 = all traced); "
                                    "below 1 counts cover the traced windows.")),
      overhead(CTXAGENT_GAUGE(
          "ctxagent_overhead_cpu_ratio",
          "CPU cost of tracing as a share of the node's CPU, averaged over ~5 minutes.")),
      overhead_seconds(CTXAGENT_COUNTER(
          "ctxagent_overhead_cpu_seconds_total",
          "CPU seconds tracing cost the node, as ctxagent_overhead_cpu_ratio counts them: rate() "
          "over any window.")),
      trap_cost(CTXAGENT_GAUGE(
          "ctxagent_probe_trap_seconds",
          "CPU a probe hit's trap costs the traced process, as the overhead counts it; source: "
          "\"targets\" (measured on the traced processes, probes on against off) or "
          "\"calibration\" (the agent's own functions, until then). The emulated figure.")),
      workloads(CTXAGENT_GAUGE(
          "ctxagent_workloads_tracked",
          "Workloads with series: traced now, or exited less than --series_ttl ago.")) {
  CTXAGENT_GAUGE("ctxagent_build_info", "ctxagent's version.")
      .Add({{"version", CTXAGENT_VERSION}})
      .Set(1);
}

#undef CTXAGENT_COUNTER
#undef CTXAGENT_GAUGE

void Metrics::SetGauges(prometheus::Family<prometheus::Gauge>& family,
                        const std::map<Labels, double>& values) {
  auto& series = gauges_[&family];
  for (auto it = series.begin(); it != series.end();) {
    if (values.count(it->first) == 0) {
      family.Remove(it->second);
      it = series.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [labels, v] : values) {
    auto [it, fresh] = series.try_emplace(labels, nullptr);
    if (fresh) it->second = &family.Add(labels);
    it->second->Set(v);
  }
}

std::string Metrics::Serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace ctxagent
