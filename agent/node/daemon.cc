#include "agent/node/daemon.h"

#include <dirent.h>
#include <fnmatch.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/control/overhead.h"
#include "agent/control/sampling.h"
#include "agent/node/cgroup.h"
#include "agent/node/http_server.h"
#include "agent/node/metrics.h"
#include "agent/trace/capabilities.h"
#include "agent/trace/decoder.h"
#include "agent/trace/goroutines.h"
#include "agent/trace/liveness.h"
#include "agent/trace/process.h"
#include "agent/trace/tracer.h"
#include "agent/view/views.h"
#include "nlohmann/json.hpp"
#include "symbols/go_binary.h"

namespace ctxagent {

absl::StatusOr<Selector> Selector::Parse(const std::string& text) {
  std::pair<std::string, std::string> kv = absl::StrSplit(text, absl::MaxSplits(':', 1));
  Selector s;
  s.pattern = kv.second;
  if (kv.first == "binary") {
    s.field = Field::kBinary;
  } else if (kv.first == "cgroup") {
    s.field = Field::kCgroup;
  } else if (kv.first == "namespace") {
    s.field = Field::kNamespace;
  } else if (kv.first == "pod") {
    s.field = Field::kPod;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("selector \"", text,
                     "\": expected binary:GLOB, cgroup:SUBSTRING, namespace:NAME or pod:GLOB"));
  }
  if (s.pattern.empty())
    return absl::InvalidArgumentError(absl::StrCat("selector \"", text, "\" is empty"));
  return s;
}

bool Matches(const Selector& s, const ProcessLabels& p) {
  switch (s.field) {
    case Selector::Field::kBinary:
      return fnmatch(s.pattern.c_str(), p.binary.c_str(), 0) == 0;
    case Selector::Field::kCgroup:
      return absl::StrContains(p.cgroup, s.pattern);
    case Selector::Field::kNamespace:
      return p.namespace_ == s.pattern;
    case Selector::Field::kPod:
      return fnmatch(s.pattern.c_str(), p.pod.c_str(), 0) == 0;
  }
  return false;
}

bool Selected(const std::vector<Selector>& include, const std::vector<Selector>& exclude,
              const ProcessLabels& p) {
  bool in = include.empty();
  for (const Selector& s : include) in = in || Matches(s, p);
  for (const Selector& s : exclude) in = in && !Matches(s, p);
  return in;
}

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

using FileKey = std::pair<uint64_t, uint64_t>;  // st_dev, st_ino of an executable

struct TracedBinary {
  std::unique_ptr<symbols::GoBinary> bin;
  std::string name;
  uint32_t attachment = 0;
  bool attached = false;  // false while sampling has the probes paused
  int processes = 0;
};

struct TracedProcess {
  pid_t pid = 0;
  FileKey key;
  TracedBinary* binary = nullptr;
  std::unique_ptr<Process> process;
  std::unique_ptr<ProcessLineage> lineage;
  std::unique_ptr<Decoder> decoder;
  std::unique_ptr<MemoryLiveness> liveness;
  std::unique_ptr<GoroutineReader> goroutines;
  bool paused_once = false;  // its lineage has unobserved nodes to reconcile
  ProcessLabels labels;
  LineageStats last;  // counters already exported
  std::vector<Finding> findings;
  bool capped = false;
};

Metrics::Labels IdentityLabels(const ProcessLabels& p) {
  return {{"namespace", p.namespace_},
          {"pod", p.pod},
          {"container", p.container},
          {"binary", p.binary}};
}

class Daemon {
 public:
  explicit Daemon(const DaemonOptions& o) : o_(o) {}

  absl::Status Init() {
    if (absl::Status s = CheckOwnCapabilities(); !s.ok()) return s;
    auto tracer = Tracer::Create([this](const ctx_event& e) { OnEvent(e); }, o_.ring_bytes);
    if (!tracer.ok()) return tracer.status();
    tracer_ = *std::move(tracer);
    if (absl::Status s = tracer_->WatchProcesses(); !s.ok()) return s;
    if (auto c = CalibrateTrapCosts(); c.ok()) trap_costs_ = *c;
    fprintf(stderr, "ctxagent daemon: uprobe trap cost %.2f us emulated, %.2f us single-stepped\n",
            trap_costs_.emulated_us, trap_costs_.stepped_us);
    meter_ = std::make_unique<OverheadMeter>(trap_costs_, tracer_->probe_fd(), 0);
    duty_ = std::make_unique<DutyCycle>(
        SamplingController::Options{.budget = o_.budget},
        std::make_unique<OverheadMeter>(trap_costs_, tracer_->probe_fd(), 0), absl::Now());
    auto http =
        HttpServer::Start(o_.listen, [this](const std::string& path) { return Handle(path); });
    if (!http.ok()) return http.status();
    http_ = *std::move(http);
    fprintf(stderr, "ctxagent daemon: listening on port %d\n", http_->port());
    return absl::OkStatus();
  }

  void Run() {
    {
      absl::MutexLock l(&mu_);
      Scan();
      // Reading every process's binary once is start-up work, not what tracing costs.
      duty_->Restart(absl::Now(), tracer_->hook_hits());
    }
    ready_ = true;
    absl::Time next_refresh = absl::Now();
    absl::Time next_scan = absl::Now() + o_.rescan;
    while (!g_stop) {
      absl::Duration nap = o_.poll;
      {
        absl::MutexLock l(&mu_);
        tracer_->Drain();
        absl::Time now = absl::Now();
        if (bool want = duty_->Tick(now); want != duty_->attached()) SwitchProbes(now, want);
        if (now >= next_scan) {
          Scan();
          next_scan = now + o_.rescan;
        }
        if (now >= next_refresh) {
          duty_->Measure(now, tracer_->hook_hits());
          Refresh(now);
          next_refresh = now + o_.refresh;
        }
        // Probes paused: only exec/exit events arrive; wake for the next window or refresh.
        if (!duty_->attached()) {
          nap = std::clamp(std::min(duty_->controller().next_switch(), next_refresh) - now, o_.poll,
                           absl::Milliseconds(200));
        }
      }
      absl::SleepFor(nap);
    }
  }

 private:
  // Duty cycle (agent/sampling.h): every binary's probes go off and on together, the budget being
  // the node's. What is live at a pause is reconciled from each process's memory at evaluation.
  void SwitchProbes(absl::Time now, bool on) {
    duty_->Switch(now, tracer_->hook_hits(), on, [&] {
      for (auto& [key, b] : binaries_) {
        if (on) {
          AttachBinary(*b);
        } else if (b->attached) {
          tracer_->Detach(b->attachment);
          b->attached = false;
        }
      }
    });
    if (on) return;
    tracer_->Drain();
    for (auto& [pid, p] : processes_) {
      p->lineage->OnProbesPaused();
      p->paused_once = true;
    }
  }

  bool AttachBinary(TracedBinary& b) {
    auto attachment = tracer_->Attach(-1, *b.bin);
    if (!attachment.ok()) {
      fprintf(stderr, "ctxagent daemon: %s: %s\n", b.name.c_str(),
              std::string(attachment.status().message()).c_str());
      return false;
    }
    b.attachment = *attachment;
    b.attached = true;
    return true;
  }

  void OnEvent(const ctx_event& e) {
    ++events_;
    const pid_t pid = static_cast<pid_t>(e.tgid);
    if (e.type == EV_PROC_EXEC) {
      Forget(pid);  // the old program is gone, whatever it was
      ignored_.erase(pid);
      Consider(pid);
      return;
    }
    if (e.type == EV_PROC_EXIT) {
      Forget(pid);
      ignored_.erase(pid);
      return;
    }
    auto it = processes_.find(pid);
    if (it == processes_.end()) {
      // A process of an attached binary that we have not met yet (started before its exec event
      // was drained, or excluded).
      if (ignored_.contains(pid)) return;
      Consider(pid);
      it = processes_.find(pid);
      if (it == processes_.end()) return;
    }
    TracedProcess& p = *it->second;
    if (e.type == EV_CTX_CREATE && Capped(p)) {
      ++evictions_;
      return;
    }
    auto decoded = p.decoder->Decode(e, clock_);
    if (decoded.ok()) p.lineage->Apply(*decoded);
  }

  // Memory caps: past them a process's new contexts are not tracked (counted as evictions), and
  // what is tracked is marked uncertain so that the gap cannot produce false findings.
  bool Capped(TracedProcess& p) {
    uint64_t mine = p.lineage->tracked_contexts();
    bool over = mine >= o_.max_contexts_per_process || total_tracked_ >= o_.max_contexts_total;
    if (over && !p.capped) p.lineage->OnEventsLost();
    p.capped = over;
    return over;
  }

  std::string ProcPath(pid_t pid, const char* leaf) const {
    return absl::StrCat(o_.host_proc, "/", pid, "/", leaf);
  }

  void Consider(pid_t pid) {
    if (pid == getpid() || processes_.contains(pid) || ignored_.contains(pid)) return;
    const std::string exe = ProcPath(pid, "exe");
    struct stat st;
    if (stat(exe.c_str(), &st) != 0) return;  // gone, or a kernel thread
    const FileKey key{st.st_dev, st.st_ino};
    if (not_go_.contains(key)) {
      ignored_.insert(pid);
      return;
    }
    ProcessLabels labels = LabelsOf(pid);
    if (!Selected(o_.include, o_.exclude, labels)) {
      ignored_.insert(pid);
      return;
    }
    TracedBinary* binary = nullptr;
    if (auto it = binaries_.find(key); it != binaries_.end()) {
      binary = it->second.get();
    } else {
      auto bin = symbols::GoBinary::Open(exe);
      if (!bin.ok()) {
        // Not Go, or a Go we cannot trace: decided once per file. Anything else (the process
        // vanished mid-read, say) concerns this process only.
        struct stat again;
        const bool still_there = stat(exe.c_str(), &again) == 0 && again.st_ino == st.st_ino;
        if (still_there &&
            (absl::IsNotFound(bin.status()) || absl::IsUnimplemented(bin.status()) ||
             absl::IsFailedPrecondition(bin.status()) || absl::IsInvalidArgument(bin.status()))) {
          if (not_go_.size() > 100000) not_go_.clear();
          not_go_.insert(key);
        }
        ignored_.insert(pid);
        if (!absl::IsNotFound(bin.status())) {
          fprintf(stderr, "ctxagent daemon: pid %d skipped: %s\n", pid,
                  std::string(bin.status().message()).c_str());
        }
        return;
      }
      auto b = std::make_unique<TracedBinary>();
      // While the probes are paused a new binary waits for the next window.
      if (duty_->attached()) {
        auto attachment = tracer_->Attach(-1, **bin);
        if (!attachment.ok()) {
          // A process that exits while being attached is no error worth a line.
          if (!absl::IsNotFound(attachment.status())) {
            fprintf(stderr, "ctxagent daemon: pid %d: %s\n", pid,
                    std::string(attachment.status().message()).c_str());
          }
          ignored_.insert(pid);
          return;
        }
        b->attachment = *attachment;
        b->attached = true;
      }
      b->bin = *std::move(bin);
      b->name = labels.binary;
      binary = b.get();
      binaries_.emplace(key, std::move(b));
    }
    auto p = std::make_unique<TracedProcess>();
    p->pid = pid;
    p->key = key;
    p->binary = binary;
    p->process = std::make_unique<Process>(pid);
    auto bias = p->process->LoadBias(binary->bin->elf());
    if (!bias.ok()) {
      ignored_.insert(pid);
      ReleaseBinary(key);
      return;
    }
    p->lineage = std::make_unique<ProcessLineage>(pid);
    p->decoder = std::make_unique<Decoder>(*binary->bin, *p->process, *bias, p->lineage->sites());
    p->liveness = std::make_unique<MemoryLiveness>(*p->process, binary->bin->offsets());
    p->goroutines = std::make_unique<GoroutineReader>(*binary->bin, *p->process, *bias,
                                                      *p->decoder, clock_);
    p->lineage->ObserveGoroutines(absl::Now(), *p->goroutines);  // those that predate the probes
    p->labels = std::move(labels);
    ++binary->processes;
    processes_.emplace(pid, std::move(p));
  }

  void ReleaseBinary(const FileKey& key) {
    auto it = binaries_.find(key);
    if (it == binaries_.end() || it->second->processes > 0) return;
    if (it->second->attached) tracer_->Detach(it->second->attachment);
    binaries_.erase(it);
  }

  void Forget(pid_t pid) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return;
    FileKey key = it->second->key;
    // Its last counts: a process that lived less than a refresh would otherwise never be counted.
    ExportCounters(*it->second);
    --it->second->binary->processes;
    processes_.erase(it);
    ReleaseBinary(key);  // the last process of a binary: its probes go too
  }

  ProcessLabels LabelsOf(pid_t pid) {
    ProcessLabels l;
    char target[4096];
    ssize_t n = readlink(ProcPath(pid, "exe").c_str(), target, sizeof(target) - 1);
    if (n > 0) {
      target[n] = 0;
      std::string path(target);
      if (absl::EndsWith(path, " (deleted)")) path.resize(path.size() - 10);
      l.binary = path.substr(path.rfind('/') + 1);
    }
    auto id = IdentifyProcess(o_.host_proc, pid);
    if (id.ok()) {
      l.cgroup = id->cgroup_path;
      if (!id->pod_uid.empty()) {
        auto pod = pods_.Resolve(id->pod_uid);
        if (pod.ok()) {
          l.namespace_ = pod->pod_namespace;
          l.pod = pod->pod_name;
          auto container = pods_.ContainerName(*pod, id->container_id);
          if (container.ok()) l.container = *container;
        }
      }
    }
    return l;
  }

  void Scan() {
    DIR* d = opendir(o_.host_proc.c_str());
    if (d == nullptr) return;
    std::vector<pid_t> pids;
    while (dirent* e = readdir(d)) {
      int pid;
      if (absl::SimpleAtoi(e->d_name, &pid)) pids.push_back(pid);
    }
    closedir(d);
    absl::flat_hash_set<pid_t> present(pids.begin(), pids.end());
    for (pid_t pid : pids) Consider(pid);
    // Processes whose exit was missed (events lost).
    std::vector<pid_t> gone;
    for (const auto& [pid, p] : processes_) {
      if (!present.contains(pid) || !p->process->Alive()) gone.push_back(pid);
    }
    for (pid_t pid : gone) Forget(pid);
    absl::erase_if(ignored_, [&](pid_t pid) { return !present.contains(pid); });
  }

  // Adds what a process created and cancelled since the last export to the counters.
  void ExportCounters(TracedProcess& p) {
    LineageStats st = p.lineage->stats();
    Metrics::Labels id = IdentityLabels(p.labels);
    static const char* kKinds[] = {"cancel", "timer", "afterfunc", "unknown"};
    for (int k = 0; k < 4; ++k) {
      if (uint64_t d = st.created_by_kind[k] - p.last.created_by_kind[k]; d > 0) {
        Metrics::Labels l = id;
        l["kind"] = kKinds[k];
        metrics_.contexts_created.Add(l).Increment(static_cast<double>(d));
      }
    }
    const std::pair<const char*, uint64_t> causes[] = {
        {"own", st.cancelled_own - p.last.cancelled_own},
        {"parent", st.cancelled_parent - p.last.cancelled_parent},
        {"deadline", st.cancelled_deadline - p.last.cancelled_deadline}};
    for (const auto& [cause, d] : causes) {
      if (d == 0) continue;
      Metrics::Labels l = id;
      l["cause"] = cause;
      metrics_.contexts_cancelled.Add(l).Increment(static_cast<double>(d));
    }
    p.last = st;
  }

  void Refresh(absl::Time now) {
    std::map<Metrics::Labels, double> live, goroutines, findings, attached, sampling;
    total_tracked_ = 0;
    // Reading targets' memory costs per unobserved node: as often as the grace period needs.
    const bool reconcile = now >= next_reconcile_;
    if (reconcile) next_reconcile_ = now + std::max(o_.refresh, o_.findings.grace);
    for (auto& [pid, pp] : processes_) {
      TracedProcess& p = *pp;
      if (p.paused_once && reconcile) p.lineage->Reconcile(now, *p.liveness);
      if (reconcile) p.lineage->ObserveGoroutines(now, *p.goroutines);
      // Paused, a lineage changes only when memory is read.
      if (duty_->attached() || reconcile) {
        p.findings = p.lineage->Evaluate(now, o_.findings);
        p.lineage->Collect(now, o_.findings);
      }
      LineageStats st = p.lineage->stats();
      total_tracked_ += st.tracked_contexts;
      Metrics::Labels id = IdentityLabels(p.labels);
      ExportCounters(p);
      live[id] += static_cast<double>(st.live_contexts);
      goroutines[id] += static_cast<double>(st.live_goroutines);
      attached[{{"binary", p.labels.binary}}] += 1;
      sampling[{{"binary", p.labels.binary}}] = duty_->controller().observed_ratio(now);
      // Sites as labels only for the largest findings; the rest are summed as "other".
      std::vector<const Finding*> order;
      for (const Finding& f : p.findings) order.push_back(&f);
      std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->count > b->count; });
      for (size_t i = 0; i < order.size(); ++i) {
        Metrics::Labels l = id;
        l["kind"] = FindingKindName(order[i]->kind);
        const Site& site = p.lineage->sites().Get(order[i]->site);
        l["site"] = static_cast<int>(i) < o_.max_site_labels
                        ? absl::StrCat(site.file.substr(site.file.rfind('/') + 1), ":", site.line)
                        : "other";
        findings[l] += order[i]->count;
      }
    }
    metrics_.SetGauges(metrics_.contexts_live, live);
    metrics_.SetGauges(metrics_.goroutines, goroutines);
    metrics_.SetGauges(metrics_.findings, findings);
    metrics_.SetGauges(metrics_.attached, attached);
    metrics_.SetGauges(metrics_.sampling_ratio, sampling);
    // Averaged over minutes: under sampling a refresh is either a window (far above the budget) or
    // not (far below); what the budget and its alert are about is the average.
    const OverheadSample s = meter_->Update(now, tracer_->hook_hits());
    const double a = 1 - std::exp(-absl::ToDoubleSeconds(o_.refresh) / kOverheadAverageS);
    overhead_avg_ =
        overhead_avg_ < 0 ? s.node_ratio : overhead_avg_ + a * (s.node_ratio - overhead_avg_);
    metrics_.SetGauges(metrics_.overhead, {{{}, overhead_avg_}});
    TracerCounters c = tracer_->counters();
    static const char* kReasons[] = {"ringbuf_full", "no_config", "read_failed"};
    for (int r = 0; r < DROP_REASONS; ++r) {
      if (c.dropped[r] > exported_lost_[r]) {
        metrics_.events_lost.Add({{"reason", kReasons[r]}})
            .Increment(static_cast<double>(c.dropped[r] - exported_lost_[r]));
        exported_lost_[r] = c.dropped[r];
      }
    }
    if (c.dropped_total() != lost_seen_) {
      lost_seen_ = c.dropped_total();
      for (auto& [pid, p] : processes_) p->lineage->OnEventsLost();
    }
    metrics_.events.Add({}).Increment(static_cast<double>(events_ - exported_events_));
    exported_events_ = events_;
    metrics_.evictions.Add({}).Increment(static_cast<double>(evictions_ - exported_evictions_));
    exported_evictions_ = evictions_;
  }

  HttpResponse Handle(const std::string& path) {
    if (path == "/healthz") return {200, "text/plain", "ok\n"};
    if (path == "/readyz") {
      return ready_ ? HttpResponse{200, "text/plain", "ready\n"}
                    : HttpResponse{503, "text/plain", "scanning processes\n"};
    }
    absl::MutexLock l(&mu_);
    if (path == "/metrics") {
      return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_.Serialize()};
    }
    if (path == "/processes") {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& [pid, p] : processes_) {
        LineageStats st = p->lineage->stats();
        out.push_back({{"pid", pid},
                       {"binary", p->labels.binary},
                       {"go_version", p->binary->bin->build_info().version.raw},
                       {"namespace", p->labels.namespace_},
                       {"pod", p->labels.pod},
                       {"container", p->labels.container},
                       {"contexts_live", st.live_contexts},
                       {"goroutines", st.live_goroutines},
                       {"findings", p->findings.size()}});
      }
      return {200, "application/json", out.dump() + "\n"};
    }
    // /processes/<pid>/findings and /processes/<pid>/tree
    std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
    pid_t pid;
    if (parts.size() == 3 && parts[0] == "processes" && absl::SimpleAtoi(parts[1], &pid)) {
      auto it = processes_.find(pid);
      if (it == processes_.end()) return {404, "text/plain", "no such traced process\n"};
      const TracedProcess& p = *it->second;
      absl::Time now = absl::Now();
      if (parts[2] == "findings") {
        nlohmann::json out = nlohmann::json::array();
        for (const Finding& f : p.findings) out.push_back(FindingToJson(*p.lineage, f, now));
        return {200, "application/json", out.dump() + "\n"};
      }
      if (parts[2] == "tree")
        return {200, "application/json", TreeToJson(*p.lineage, now).dump() + "\n"};
      if (parts[2] == "goroutines")
        return {200, "application/json", GoroutinesToJson(*p.lineage, now).dump() + "\n"};
    }
    return {404, "text/plain",
            "endpoints: /metrics /healthz /readyz /processes /processes/<pid>/tree "
            "/processes/<pid>/findings /processes/<pid>/goroutines\n"};
  }

  const DaemonOptions& o_;
  absl::Mutex mu_;
  std::unique_ptr<Tracer> tracer_;
  std::unique_ptr<HttpServer> http_;
  TrapCosts trap_costs_;
  std::unique_ptr<OverheadMeter> meter_;  // per refresh: the exported average
  std::unique_ptr<DutyCycle> duty_;
  absl::Time next_reconcile_;
  double overhead_avg_ = -1;
  static constexpr double kOverheadAverageS = 300;
  EventClock clock_;
  Metrics metrics_;
  PodResolver pods_{o_.log_pods_root};
  absl::flat_hash_map<FileKey, std::unique_ptr<TracedBinary>> binaries_;
  absl::flat_hash_set<FileKey> not_go_;
  absl::flat_hash_map<pid_t, std::unique_ptr<TracedProcess>> processes_;
  absl::flat_hash_set<pid_t> ignored_;  // decided not to trace, until it exits or execs
  std::atomic<bool> ready_{false};
  uint64_t events_ = 0, exported_events_ = 0;
  uint64_t evictions_ = 0, exported_evictions_ = 0;
  uint64_t total_tracked_ = 0;
  uint64_t lost_seen_ = 0;
  uint64_t exported_lost_[DROP_REASONS] = {};
};

}  // namespace

int RunDaemon(const DaemonOptions& options) {
  Daemon d(options);
  if (absl::Status s = d.Init(); !s.ok()) {
    fprintf(stderr, "ctxagent daemon: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  d.Run();
  return 0;
}

}  // namespace ctxagent
