// The counter series of workloads (namespace, pod, container, binary). A workload's gauges go with
// its processes (Metrics::SetGauges); its counters outlive them for `ttl`, so that Prometheus
// scrapes their last increments, and no longer: rollouts, CronJobs and CI runners bring new names
// to a node all day, and series kept for each would grow the scrape and the agent without bound.
// When a dropped workload comes back its counters start again from 0, which rate() and increase()
// take for a counter reset (docs/metrics.md, "Series lifetime").
#ifndef CTXAGENT_AGENT_NODE_WORKLOAD_SERIES_H_
#define CTXAGENT_AGENT_NODE_WORKLOAD_SERIES_H_

#include <map>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "agent/node/metrics.h"

namespace ctxagent {

class WorkloadSeries {
 public:
  struct Options {
    absl::Duration ttl = absl::Minutes(5);  // after a workload's last process exits
    // Workloads tracked at most: beyond it those gone longest are dropped before their ttl.
    // Running ones are never dropped (their processes bound their number).
    uint64_t max_workloads = 10000;
  };
  // `dropped_for_cap` counts the workloads dropped before their ttl because of max_workloads.
  WorkloadSeries(const Options& options, prometheus::Counter& dropped_for_cap)
      : o_(options), dropped_for_cap_(dropped_for_cap) {}

  // A process of `identity` is traced from now on / no longer.
  void Started(const Metrics::Labels& identity);
  void Exited(const Metrics::Labels& identity, absl::Time now);
  // Adds `value` to the series of `family` labelled with `identity` and `extra`. `identity` must
  // have a traced process (Started).
  void Add(prometheus::Family<prometheus::Counter>& family, const Metrics::Labels& identity,
           const Metrics::Labels& extra, double value);
  // Drops the series of the workloads gone for `ttl`.
  void Expire(absl::Time now);
  size_t size() const { return workloads_.size(); }

 private:
  struct Workload {
    int processes = 0;
    absl::Time gone_since;  // when `processes` fell to 0
    std::vector<std::pair<prometheus::Family<prometheus::Counter>*, prometheus::Counter*>> series;
  };
  using Map = std::map<Metrics::Labels, Workload>;
  void Drop(Map::iterator it);

  const Options o_;
  prometheus::Counter& dropped_for_cap_;
  Map workloads_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_WORKLOAD_SERIES_H_
