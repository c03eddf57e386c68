// `ctxagent daemon`: one agent per node. Finds Go processes (running ones at start, new ones from
// exec events), attaches once per binary, keeps a tracing session per process, exports metrics and
// JSON views over HTTP, and forgets processes that exit.
#ifndef CTXAGENT_AGENT_NODE_DAEMON_H_
#define CTXAGENT_AGENT_NODE_DAEMON_H_

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/control/overhead.h"
#include "agent/control/sampling.h"
#include "agent/lineage/lineage.h"
#include "agent/node/cgroup.h"
#include "agent/node/discovery.h"
#include "agent/node/http_server.h"
#include "agent/node/metrics.h"
#include "agent/node/process_endpoints.h"
#include "agent/node/selector.h"
#include "agent/node/workload_series.h"
#include "agent/session/agent_loop.h"
#include "agent/session/probes.h"
#include "agent/session/session.h"
#include "agent/trace/decoder.h"
#include "agent/trace/tracer.h"
#include "symbols/go_binary.h"

namespace ctxagent {

struct DaemonOptions {
  std::string listen = "0.0.0.0:9464";  // /metrics, /healthz, /readyz
  // /processes and /processes/<pid>/...: source paths and function names, so loopback by default;
  // empty: not served.
  std::string detail_listen = "127.0.0.1:9465";
  HttpLimits http;  // of both servers
  std::vector<Selector> include, exclude;
  std::string host_proc = "/proc";  // the host's /proc (mounted elsewhere in a container)
  std::string log_pods_root = "/var/log/pods";
  FindingOptions findings;
  absl::Duration refresh = absl::Seconds(5);  // evaluation and metrics period
  // The heap marks that prove goroutines leaked (agent/heap): how often (0: never), and the memory
  // one mark may hold in MiB (its reads are capped alongside, see MarkOptions).
  absl::Duration mark_every = absl::Seconds(10);
  int mark_memory_mb = 256;
  absl::Duration poll = kDefaultDrainLatency;  // longest a probe event waits in the ring
  // /proc rescan: a safety net for missed exec events (a loss of events rescans at once).
  absl::Duration rescan = absl::Minutes(5);
  uint64_t max_contexts_per_process = 200000;
  uint64_t max_contexts_total = 1000000;
  int max_site_labels = 10;
  WorkloadSeries::Options series;  // how long counters outlive their workload, and how many
  uint32_t ring_bytes = Tracer::kDefaultRingBytes;
  double budget = kDefaultBudget;  // share of the node's CPU tracing may use; 0 = no limit
  FixedDutyCycle duty_cycle;       // set: this duty cycle instead of the budget's plan
};

class Daemon : public ProcessProvider, public AgentLoop::Driver {
 public:
  explicit Daemon(const DaemonOptions& options);
  ~Daemon();

  // Loads the BPF programs, watches exec/exit, starts the HTTP server.
  absl::Status Init();
  // Traces until StopRequested().
  void Run();
  // A request to --listen: /metrics, /healthz, /readyz.
  HttpResponse Handle(const HttpRequest& request);
  // Requests to --detail_listen: /processes, /processes/<pid>/...
  const ProcessEndpoints& endpoints() const { return endpoints_; }
  int port() const;
  int detail_port() const;

  void ForEachProcess(absl::FunctionRef<void(const ProcessView&)> fn) override;
  bool WithProcess(pid_t pid, absl::FunctionRef<void(const ProcessView&)> fn) override;

 private:
  struct TracedProcess {
    pid_t pid = 0;
    RunningExecutable exe;  // what it ran when it was met
    TracedBinary* binary = nullptr;
    std::unique_ptr<TracingSession> session;
    ProcessLabels labels;
    Metrics::Labels identity;  // labels of its series
    LineageStats last;         // counters already exported
    bool capped = false;
    SiteGrowth growth;  // the site graph's growth rates (agent/view/site_graph.h)
    // Findings (kind, site) already logged: each is logged once, when first reported.
    absl::flat_hash_set<std::pair<FindingKind, SiteId>> logged;
    bool mark_stop_logged = false;  // why its heap marks stopped, logged once
  };

  // The agent loop's steps (daemon.cc): the probes' switch and drain, then the rescan when due;
  // the periodic refresh (measure, then the sessions and metrics).
  absl::StatusOr<bool> Poll(absl::Time now, bool ending) override;
  absl::StatusOr<bool> Refresh(absl::Time now) override;
  State state() const override;
  void OnEvent(const ctx_event& e);
  bool Capped(TracedProcess& p);
  // Discovery (daemon.cc).
  std::string ProcPath(pid_t pid, const char* leaf) const;
  // `exec`: the executable an exec event named, if this comes from one.
  void Consider(pid_t pid, const ctx_exec_file* exec = nullptr);
  void ReleaseBinary(const symbols::FileIdentity& file);
  void Forget(pid_t pid);
  ProcessLabels LabelsOf(pid_t pid);
  void Scan();
  // Metrics (daemon_metrics.cc).
  void ExportCounters(TracedProcess& p);
  void RefreshProcesses(absl::Time now);
  // Logs the findings `p` reports for the first time (kubectl logs shows them without a scrape).
  void LogNewFindings(TracedProcess& p);
  void ExportFindings(const TracedProcess& p, std::map<Metrics::Labels, double>& findings) const;
  void ExportTotals(absl::Time now);
  // Every traced process's CPU so far, for what a probe hit costs them (ProbeSet).
  TracedCpu TracedProcessesCpu() const;
  ProcessView View(TracedProcess& p);

  const DaemonOptions& o_;
  absl::Mutex mu_;
  std::unique_ptr<Tracer> tracer_;
  TrapCosts trap_costs_;
  std::unique_ptr<ProbeSet> probes_;
  double overhead_avg_ = -1;
  double exported_node_seconds_ = 0;
  absl::Time overhead_since_;
  EventClock clock_;
  Metrics metrics_;
  WorkloadSeries workloads_{o_.series, metrics_.workloads_dropped.Add({})};
  PodResolver pods_{o_.log_pods_root};
  BinaryCatalog catalog_{o_.host_proc};
  absl::flat_hash_set<symbols::FileIdentity> unselected_;  // rejected by binary selectors alone
  absl::flat_hash_map<pid_t, std::unique_ptr<TracedProcess>> processes_;
  absl::flat_hash_set<pid_t> ignored_;  // decided not to trace, until it exits or execs
  std::atomic<bool> ready_{false};
  absl::Time next_scan_;
  uint64_t events_ = 0, exported_events_ = 0;
  uint64_t evictions_ = 0, exported_evictions_ = 0;
  uint64_t total_tracked_ = 0;
  uint64_t exported_lost_[DROP_REASONS] = {};
  ProcessEndpoints endpoints_{*this};
  // Last: stopped (their handlers finished) before anything they read is destroyed.
  std::unique_ptr<HttpServer> http_, detail_http_;
};

// Runs the daemon until SIGINT/SIGTERM.
absl::Status RunDaemon(const DaemonOptions& options);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_DAEMON_H_
