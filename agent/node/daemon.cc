#include "agent/node/daemon.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/session/stop.h"
#include "agent/trace/capabilities.h"
#include "agent/view/views.h"

namespace ctxagent {
namespace {

// After a wakeup by the ring, the next drain waits this long: a node busy with short-lived
// programs (a build) wakes the daemon once per this, not once per exec. Longer would miss Go
// programs that live a few hundred milliseconds (daemon_churn_test).
constexpr absl::Duration kMinWakeGap = absl::Milliseconds(50);

// While the probes are on, the drains stretch (each waits twice as long as the last, up to the
// refresh period) while events come slower than this per second, and go back to --poll when they
// come faster. Each wake of an idle daemon costs ~0.2-0.3 ms here, so 20 idle services at ~4
// events/s each cost a wake per refresh, not four a second. Waiting is safe: the ring wakes the
// daemon when an eighth full, and the memory a late decode reads (itabs: never freed; a WithValue
// chain: held by the goroutine whose start event it decodes) outlives the wait; a process that
// exited meanwhile is forgotten at its exit event, which follows its last probe events in the ring.
constexpr double kQuietEventsPerSecond = 100;

void Log(const std::string& message) { fprintf(stderr, "ctxagent daemon: %s\n", message.c_str()); }

}  // namespace

Daemon::Daemon(const DaemonOptions& o) : o_(o) {}

// The HTTP threads go first: they read everything below.
Daemon::~Daemon() {
  http_.reset();
  detail_http_.reset();
}

int Daemon::port() const { return http_ == nullptr ? 0 : http_->port(); }
int Daemon::detail_port() const { return detail_http_ == nullptr ? 0 : detail_http_->port(); }

absl::Status Daemon::Init() {
  if (absl::Status s = CheckOwnCapabilities(); !s.ok()) return s;
  auto tracer = Tracer::Create([this](const ctx_event& e) { OnEvent(e); }, o_.ring_bytes);
  if (!tracer.ok()) return tracer.status();
  tracer_ = *std::move(tracer);
  if (absl::Status s = tracer_->WatchProcesses(); !s.ok()) return s;
  if (auto c = CalibrateTrapCosts(); c.ok()) trap_costs_ = *c;
  Log(absl::StrFormat("uprobe trap cost %.2f us emulated, %.2f us single-stepped",
                      trap_costs_.emulated_us, trap_costs_.stepped_us));
  // Every binary's probes go off and on together: the budget is the node's. What a hit costs is
  // measured on every traced process together (their CPU with the probes on and off).
  probes_ = std::make_unique<ProbeSet>(
      *tracer_, trap_costs_,
      ProbeSet::Options{.sampling = {.budget = o_.budget, .fixed = o_.duty_cycle},
                        .traced_cpu = [this] { return TracedProcessesCpu(); }},
      absl::Now());
  // What Prometheus and the kubelet need on --listen; trees and findings (source paths, function
  // names) only on --detail_listen, loopback unless the operator says otherwise.
  auto http = HttpServer::Start(
      {.listen = o_.listen, .limits = o_.http, .inline_paths = {"/healthz", "/readyz"}},
      [this](const HttpRequest& r) { return Handle(r); });
  if (!http.ok()) return http.status();
  http_ = *std::move(http);
  Log(absl::StrCat("listening on port ", http_->port(), " (metrics)"));
  if (!o_.detail_listen.empty()) {
    auto detail = HttpServer::Start({.listen = o_.detail_listen, .limits = o_.http},
                                    [this](const HttpRequest& r) { return endpoints_.Handle(r); });
    if (!detail.ok()) return detail.status();
    detail_http_ = *std::move(detail);
    Log(absl::StrCat("processes on port ", detail_http_->port()));
  }
  return absl::OkStatus();
}

void Daemon::Run() {
  {
    absl::MutexLock l(&mu_);
    Scan();
    // Reading every process's binary once is start-up work, not what tracing costs.
    probes_->Restart(absl::Now());
  }
  ready_ = true;
  next_scan_ = absl::Now() + o_.rescan;
  AgentLoop loop({.refresh = o_.refresh,
                  .first_refresh = absl::Now(),
                  .poll = o_.poll,
                  .quiet_events_per_second = kQuietEventsPerSecond,
                  .min_wake_gap = kMinWakeGap},
                 RealClock(), *this);
  while (!StopRequested()) {
    absl::StatusOr<AgentLoop::Wake> wake;
    {
      absl::MutexLock l(&mu_);
      wake = loop.Step();
    }
    if (!wake.ok() || loop.stopped()) break;  // not from the daemon: its steps always go on
    // Nothing to do until the next deadline, an exec, a filling ring, or a young binary's hit
    // alarm; a burst of execs is batched (kMinWakeGap).
    absl::Duration left = wake->at - absl::Now();
    if (wake->batch > absl::ZeroDuration()) {
      absl::SleepFor(std::min(left, wake->batch));
      left = wake->at - absl::Now();
    }
    if (tracer_->Wait(left)) loop.RingWoke(absl::Now());
  }
  // Where the overhead counter stands at the end: a bench compares it with what it measured.
  absl::MutexLock l(&mu_);
  probes_->Measure(absl::Now());
  Log(absl::StrFormat("tracing cost %.4f CPU s since start (%s)", probes_->cpu_seconds(),
                      OverheadCounted(probes_->trap_costs())));
}

TracedCpu Daemon::TracedProcessesCpu() const {
  std::vector<pid_t> pids;
  pids.reserve(processes_.size());
  for (const auto& [pid, p] : processes_) pids.push_back(pid);
  std::sort(pids.begin(), pids.end());
  return ReadTracedCpu(pids);
}

absl::StatusOr<bool> Daemon::Poll(absl::Time now, bool /*ending*/) {
  absl::Status s = probes_->TickAndDrain([this] {
    for (auto& [pid, p] : processes_) p->session->OnProbesPaused();
  });
  if (!s.ok()) Log(std::string(s.message()));
  if (now >= next_scan_) {
    Scan();
    next_scan_ = now + o_.rescan;
  }
  return true;
}

absl::StatusOr<bool> Daemon::Refresh(absl::Time now) {
  probes_->Measure(now);
  RefreshProcesses(now);
  return true;
}

AgentLoop::Driver::State Daemon::state() const {
  return {.next_due = std::min(next_scan_, probes_->next_deadline()),
          .draining = probes_->attached() && !processes_.empty(),
          .probing = probes_->probing(),
          .handled = tracer_->handled()};
}

void Daemon::LogNewFindings(TracedProcess& p) {
  std::string where = p.labels.binary;
  if (!p.labels.pod.empty())
    absl::StrAppend(&where, ", pod ", p.labels.namespace_, "/", p.labels.pod);
  for (const Finding& f : p.session->findings()) {
    if (!p.logged.insert({f.kind, f.site}).second) continue;
    Log(absl::StrCat("finding: pid ", p.pid, " (", where, "): ", FindingKindName(f.kind), ": ",
                     f.explanation));
  }
  // Once: its probes trace on, its heap is no longer marked.
  if (!p.session->mark_status().ok() && !p.mark_stop_logged) {
    p.mark_stop_logged = true;
    Log(absl::StrCat("pid ", p.pid, " (", where,
                     "): heap marks stopped: ", p.session->mark_status().message()));
  }
}

void Daemon::OnEvent(const ctx_event& e) {
  ++events_;
  const pid_t pid = static_cast<pid_t>(e.tgid);
  if (e.type == EV_PROC_EXEC) {
    Forget(pid);  // the old program is gone, whatever it was
    ignored_.erase(pid);
    Consider(pid, &e.exec);
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
  p.session->Apply(e, clock_, probes_->goroutine_exits());
}

// Memory caps: past them a process's new contexts are not tracked (counted as evictions), and
// what is tracked is marked uncertain so that the gap cannot produce false findings.
bool Daemon::Capped(TracedProcess& p) {
  uint64_t mine = p.session->lineage().tracked_contexts();
  bool over = mine >= o_.max_contexts_per_process || total_tracked_ >= o_.max_contexts_total;
  if (over && !p.capped) p.session->OnCapped();
  p.capped = over;
  return over;
}

std::string Daemon::ProcPath(pid_t pid, const char* leaf) const {
  return absl::StrCat(o_.host_proc, "/", pid, "/", leaf);
}

void Daemon::Consider(pid_t pid, const ctx_exec_file* exec) {
  if (pid == getpid() || processes_.contains(pid) || ignored_.contains(pid)) return;
  absl::StatusOr<RunningExecutable> exe = IdentifyExecutable(o_.host_proc, pid);
  if (!exe.ok()) return;  // gone, or a kernel thread
  // A file decided for good: its next execs need not wake the daemon at all. Only when the exec
  // event names the file identified (the process may have exec'd again since).
  auto decided = [&] {
    if (exec != nullptr && exec->ino == exe->file.ino &&
        static_cast<int64_t>(exec->size) == exe->file.size) {
      tracer_->Quiet(*exec);
    }
  };
  if (catalog_.Untraceable(exe->file) || unselected_.contains(exe->file)) {
    decided();
    ignored_.insert(pid);
    return;
  }
  ProcessLabels labels = LabelsOf(pid);
  if (!Selected(o_.include, o_.exclude, labels)) {
    // Decided by the binary's name alone: once per file, not at every exec of a busy node.
    if (OnlyBinarySelectors(o_.include, o_.exclude) && unselected_.size() < 100000) {
      unselected_.insert(exe->file);
      decided();
    }
    ignored_.insert(pid);
    return;
  }
  bool opened = false;
  absl::StatusOr<TracedBinary*> binary = catalog_.Acquire(pid, *exe, &opened);
  // Not Go, a Go we cannot trace, or the process moved on (its exec or exit event follows).
  if (!binary.ok()) {
    if (catalog_.Untraceable(exe->file)) decided();
    ignored_.insert(pid);
    if (!absl::IsNotFound(binary.status())) {
      Log(absl::StrCat("pid ", pid, " skipped: ", binary.status().message()));
    }
    return;
  }
  if (opened) {
    (*binary)->name = labels.binary;
    // Through the file the catalog holds open: every process running it, and nothing else.
    // While the probes are paused a new binary waits for the next window.
    auto probes = probes_->Add(nullptr, *(*binary)->bin, absl::Now());
    if (!probes.ok()) {
      // A process that exits while being attached is no error worth a line.
      if (!absl::IsNotFound(probes.status())) {
        Log(absl::StrCat("pid ", pid, ": ", probes.status().message()));
      }
      ignored_.insert(pid);
      catalog_.Release(exe->file, [](TracedBinary&) {});
      return;
    }
    (*binary)->probes = *probes;
  }
  auto p = std::make_unique<TracedProcess>();
  p->pid = pid;
  p->exe = *exe;
  p->binary = *binary;
  auto session = TracingSession::Create(
      pid, *p->binary->bin,
      {o_.findings, o_.refresh, o_.mark_every, MarkLimitsFor(o_.mark_memory_mb)});
  if (!session.ok()) {
    ignored_.insert(pid);
    ReleaseBinary(exe->file);
    return;
  }
  p->session = *std::move(session);
  p->labels = std::move(labels);
  tracer_->SetTraced(pid, true);
  p->identity = {{"namespace", p->labels.namespace_},
                 {"pod", p->labels.pod},
                 {"container", p->labels.container},
                 {"binary", p->labels.binary}};
  workloads_.Started(p->identity);
  processes_.emplace(pid, std::move(p));
}

// The binary's last process gone: its probes go too.
void Daemon::ReleaseBinary(const symbols::FileIdentity& file) {
  catalog_.Release(file, [&](TracedBinary& b) { probes_->Remove(b.probes); });
}

void Daemon::Forget(pid_t pid) {
  auto it = processes_.find(pid);
  if (it == processes_.end()) return;
  const symbols::FileIdentity file = it->second->exe.file;
  // Its last counts: a process that lived less than a refresh would otherwise never be counted.
  ExportCounters(*it->second);
  workloads_.Exited(it->second->identity, absl::Now());
  const std::string pod_uid = it->second->labels.pod_uid;
  processes_.erase(it);
  tracer_->SetTraced(pid, false);
  ReleaseBinary(file);
  // The pod's names are cached while it has traced processes (pods come and go on a node).
  if (!pod_uid.empty() && std::none_of(processes_.begin(), processes_.end(), [&](const auto& kv) {
        return kv.second->labels.pod_uid == pod_uid;
      })) {
    pods_.Forget(pod_uid);
  }
}

ProcessLabels Daemon::LabelsOf(pid_t pid) {
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
      l.pod_uid = id->pod_uid;
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

void Daemon::Scan() {
  DIR* d = opendir(o_.host_proc.c_str());
  if (d == nullptr) return;
  std::vector<pid_t> pids;
  while (dirent* e = readdir(d)) {
    int pid;
    if (absl::SimpleAtoi(e->d_name, &pid)) pids.push_back(pid);
  }
  closedir(d);
  absl::flat_hash_set<pid_t> present(pids.begin(), pids.end());
  // Processes whose exit or exec was missed (events lost), or whose pid was reused: forgotten
  // first, so that what runs under their pid now is considered afresh below.
  std::vector<pid_t> gone;
  for (const auto& [pid, p] : processes_) {
    absl::StatusOr<RunningExecutable> now = IdentifyExecutable(o_.host_proc, pid);
    if (!present.contains(pid) || !p->session->process().Alive() || !now.ok() ||
        now->start_time != p->exe.start_time || !now->file.SameInode(p->exe.file)) {
      gone.push_back(pid);
    }
  }
  for (pid_t pid : gone) {
    Forget(pid);
    ignored_.erase(pid);
  }
  for (pid_t pid : pids) Consider(pid);
  absl::erase_if(ignored_, [&](pid_t pid) { return !present.contains(pid); });
}

HttpResponse Daemon::Handle(const HttpRequest& r) {
  if (r.path == "/healthz") return {200, "text/plain", "ok\n"};
  if (r.path == "/readyz") {
    return ready_ ? HttpResponse{200, "text/plain", "ready\n"}
                  : HttpResponse{503, "text/plain", "scanning processes\n"};
  }
  if (r.path == "/metrics") {
    absl::MutexLock l(&mu_);
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_.Serialize()};
  }
  return {404, "text/plain", "endpoints: /metrics /healthz /readyz (processes: --detail_listen)\n"};
}

ProcessView Daemon::View(TracedProcess& p) {
  return {p.pid,
          p.session->lineage(),
          p.session->findings(),
          *p.binary->bin,
          p.session->process(),
          &p.growth,
          {{"binary", p.labels.binary},
           {"namespace", p.labels.namespace_},
           {"pod", p.labels.pod},
           {"container", p.labels.container}},
          p.session->work_pause(),
          &p.session->leaks(),
          MarkLimitsFor(o_.mark_memory_mb).max_memory};
}

void Daemon::ForEachProcess(absl::FunctionRef<void(const ProcessView&)> fn) {
  absl::MutexLock l(&mu_);
  for (auto& [pid, p] : processes_) fn(View(*p));
}

bool Daemon::WithProcess(pid_t pid, absl::FunctionRef<void(const ProcessView&)> fn) {
  absl::MutexLock l(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end()) return false;
  fn(View(*it->second));
  return true;
}

absl::Status RunDaemon(const DaemonOptions& options) {
  Daemon d(options);
  if (absl::Status s = d.Init(); !s.ok()) return s;
  InstallStopHandlers();
  d.Run();
  return absl::OkStatus();
}

}  // namespace ctxagent
