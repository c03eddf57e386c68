// The daemon's Prometheus metrics (names and labels: docs/metrics.md).
#ifndef CTXAGENT_AGENT_NODE_METRICS_H_
#define CTXAGENT_AGENT_NODE_METRICS_H_

#include <map>
#include <memory>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace ctxagent {

class Metrics {
  // First: the families below are registered in it during construction.
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();

 public:
  using Labels = std::map<std::string, std::string>;
  Metrics();

  prometheus::Family<prometheus::Counter>& contexts_created;
  prometheus::Family<prometheus::Counter>& contexts_cancelled;
  prometheus::Family<prometheus::Counter>& events;
  prometheus::Family<prometheus::Counter>& events_lost;
  prometheus::Family<prometheus::Counter>& evictions;
  prometheus::Family<prometheus::Counter>& workloads_dropped;
  prometheus::Family<prometheus::Gauge>& contexts_live;
  prometheus::Family<prometheus::Gauge>& goroutines;
  prometheus::Family<prometheus::Gauge>& findings;
  prometheus::Family<prometheus::Gauge>& attached;
  prometheus::Family<prometheus::Gauge>& sampling_ratio;
  prometheus::Family<prometheus::Gauge>& overhead;
  prometheus::Family<prometheus::Counter>& overhead_seconds;
  prometheus::Family<prometheus::Gauge>& trap_cost;
  prometheus::Family<prometheus::Gauge>& workloads;

  // Replaces every series of a gauge family: series absent from `values` are removed, so label
  // sets of processes that exited disappear.
  void SetGauges(prometheus::Family<prometheus::Gauge>& family,
                 const std::map<Labels, double>& values);
  // Text exposition format.
  std::string Serialize() const;

 private:
  std::map<const void*, std::map<Labels, prometheus::Gauge*>> gauges_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_METRICS_H_
