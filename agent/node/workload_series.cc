#include "agent/node/workload_series.h"

#include <algorithm>

namespace ctxagent {

void WorkloadSeries::Started(const Metrics::Labels& identity) {
  auto [it, fresh] = workloads_.try_emplace(identity);
  ++it->second.processes;
  if (!fresh || workloads_.size() <= o_.max_workloads) return;
  // Over the cap: the workloads gone longest go first.
  std::vector<Map::iterator> gone;
  for (auto w = workloads_.begin(); w != workloads_.end(); ++w) {
    if (w->second.processes == 0) gone.push_back(w);
  }
  std::sort(gone.begin(), gone.end(), [](Map::iterator a, Map::iterator b) {
    return a->second.gone_since < b->second.gone_since;
  });
  for (size_t i = 0; i < gone.size() && workloads_.size() > o_.max_workloads; ++i) {
    Drop(gone[i]);
    dropped_for_cap_.Increment();
  }
}

void WorkloadSeries::Exited(const Metrics::Labels& identity, absl::Time now) {
  auto it = workloads_.find(identity);
  if (it == workloads_.end() || it->second.processes == 0) return;
  if (--it->second.processes == 0) it->second.gone_since = now;
}

void WorkloadSeries::Add(prometheus::Family<prometheus::Counter>& family,
                         const Metrics::Labels& identity, const Metrics::Labels& extra,
                         double value) {
  auto it = workloads_.find(identity);
  if (it == workloads_.end()) return;
  Metrics::Labels labels = identity;
  labels.insert(extra.begin(), extra.end());
  prometheus::Counter& c = family.Add(labels);
  auto& series = it->second.series;
  const std::pair<prometheus::Family<prometheus::Counter>*, prometheus::Counter*> s{&family, &c};
  if (std::find(series.begin(), series.end(), s) == series.end()) series.push_back(s);
  c.Increment(value);
}

void WorkloadSeries::Expire(absl::Time now) {
  for (auto it = workloads_.begin(); it != workloads_.end();) {
    const Workload& w = it->second;
    auto next = std::next(it);
    if (w.processes == 0 && now - w.gone_since >= o_.ttl) Drop(it);
    it = next;
  }
}

void WorkloadSeries::Drop(Map::iterator it) {
  for (auto [family, counter] : it->second.series) family->Remove(counter);
  workloads_.erase(it);
}

}  // namespace ctxagent
