#include "agent/cli/attach_command.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/cli/attach_http.h"
#include "agent/control/overhead.h"
#include "agent/control/work_pacer.h"
#include "agent/session/agent_loop.h"
#include "agent/session/probes.h"
#include "agent/session/session.h"
#include "agent/session/stop.h"
#include "agent/trace/capabilities.h"
#include "agent/trace/tracer.h"
#include "agent/view/top_view.h"
#include "agent/view/utf8.h"
#include "agent/view/views.h"
#include "agent/view/web_page.h"
#include "symbols/go_binary.h"

namespace ctxagent {
namespace {

// One attach run: the target's binary and session, the probes and what they cost; the agent loop
// runs it until a stop, the duration, or the target's exit.
struct AttachRun : public AgentLoop::Driver {
  explicit AttachRun(const AttachOptions& o) : options(o) {}

  absl::StatusOr<bool> Poll(absl::Time now, bool ending) override;
  absl::StatusOr<bool> Refresh(absl::Time now) override;
  State state() const override {
    return {.next_due = probes->next_deadline(),
            .draining = probes->attached(),
            .probing = probes->probing(),
            .handled = tracer->handled()};
  }

  // Whether the probes that wrote what is drained now see goroutines end (after the detach: the
  // last window's).
  bool goroutine_exits() const {
    return probes == nullptr ? exits_at_detach : probes->goroutine_exits();
  }

  const AttachOptions& options;
  std::unique_ptr<symbols::GoBinary> bin;
  std::unique_ptr<TracingSession> session;
  std::unique_ptr<Tracer> tracer;
  TrapCosts trap_costs;
  std::unique_ptr<ProbeSet> probes;
  std::unique_ptr<OverheadMeter> run_meter;  // over the whole run, for the report
  EventClock clock;
  absl::Time start;
  bool live = false;
  bool target_exited = false;
  bool target_execd = false;  // its exec event arrived
  bool exits_at_detach = true;
  SiteGrowth growth;  // the top view's growth rates
  absl::Mutex mu;     // held while the session changes; --http requests read it under it
  std::unique_ptr<AttachHttp> http;
};

absl::Status Prepare(AttachRun& r) {
  const AttachOptions& o = r.options;
  Process process(o.pid);
  if (absl::Status s = process.CheckIsProcess(); !s.ok()) return s;
  if (absl::Status s = CheckOwnCapabilities(); !s.ok()) return s;
  auto bin = symbols::GoBinary::Open(process.exe_path());
  if (!bin.ok()) {
    return absl::Status(bin.status().code(),
                        absl::StrCat("pid ", o.pid, ": ", bin.status().message()));
  }
  r.bin = *std::move(bin);
  auto session = TracingSession::Create(
      o.pid, *r.bin, {o.findings, o.refresh, o.mark_every, MarkLimitsFor(o.mark_memory_mb)});
  if (!session.ok()) return session.status();
  r.session = *std::move(session);
  r.session->set_work_allowance(
      ProcessWorkAllowance(o.budget, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)), 1));
  auto tracer = Tracer::Create(
      [&r](const ctx_event& raw) {
        if (raw.tgid != static_cast<uint32_t>(r.options.pid)) return;
        if (raw.type == EV_PROC_EXEC) {
          r.target_execd = true;
        } else {
          r.session->Apply(raw, r.clock, r.goroutine_exits());
        }
      },
      o.ring_bytes);
  if (!tracer.ok()) return tracer.status();
  r.tracer = *std::move(tracer);
  // Its exec wakes the agent: known even when the agent was held up (a detach can wait seconds for
  // the kernel) until after the new program ended. Watched before the probes are added, whose
  // attach checks that it still runs `bin` (an exec before this watch).
  if (absl::Status s = r.tracer->WatchExec(o.pid); !s.ok()) return s;
  // Per-hit trap costs measured here, once, before the probes add to the first measurement: they
  // differ between machines by several times.
  if (auto calibrated = CalibrateTrapCosts(); calibrated.ok()) {
    r.trap_costs = *calibrated;
  } else {
    fprintf(stderr, "ctxagent: trap cost calibration failed (%s); using defaults\n",
            std::string(calibrated.status().message()).c_str());
  }
  r.start = absl::Now();
  // Duty-cycles the probes when full tracing costs more than the budget (agent/sampling.h); what
  // was live at a pause is then checked in the target's memory.
  r.probes = std::make_unique<ProbeSet>(
      *r.tracer, r.trap_costs,
      ProbeSet::Options{
          .sampling = {.budget = o.budget, .target_budget = o.target_budget, .fixed = o.duty_cycle},
          .target = o.pid,
          .traced_cpu = [pid = o.pid] { return ReadTracedCpu({pid}); }},
      r.start);
  if (auto added = r.probes->Add(&r.session->process(), *r.bin, r.start); !added.ok())
    return added.status();
  r.run_meter = std::make_unique<OverheadMeter>(r.trap_costs, r.tracer->probe_fd(), o.pid);
  r.live = o.live && o.output == "tree" && isatty(STDOUT_FILENO);
  fprintf(stderr, "ctxagent: attached to pid %d (%s, %zu probes); %s\n", o.pid,
          r.bin->build_info().version.raw.c_str(), r.tracer->attached_probes(),
          r.live ? "Ctrl-C for the report" : "tracing");
  return absl::OkStatus();
}

RunInfo Info(const AttachRun& r, absl::Time now, const OverheadSample& overhead) {
  RunInfo run{now - r.start,          r.session->events(),           r.tracer->counters(), overhead,
              r.probes->trap_costs(), r.probes->observed_ratio(now), r.probes->plan()};
  const TracingSession& s = *r.session;
  run.marks.count = s.marks();
  run.marks.stopped = std::string(s.mark_status().message());
  const heap::MarkResult& m = s.last_mark();
  run.marks.spans = m.spans;
  run.marks.heap_bytes = m.heap_bytes;
  run.marks.objects_marked = m.objects_marked;
  run.marks.bytes_read = m.bytes_read;
  run.marks.memory = m.memory;
  run.marks.cpu_seconds = m.cpu_seconds;
  run.marks.contexts = m.contexts.size();
  run.marks.cancel_funcs_held = std::count_if(m.contexts.begin(), m.contexts.end(),
                                              [](uint8_t f) { return f & kCancelHeld; });
  run.marks.context_holds = m.holds.size();
  for (const heap::LeakedGoroutine& l : s.leaks().proven()) {
    run.marks.leaked_goids.push_back(l.state.goid);
  }
  return run;
}

void Draw(AttachRun& r, absl::Time now, const OverheadSample& last_interval) {
  const ProcessLineage& lineage = r.session->lineage();
  const RunInfo run = Info(r, now, last_interval);
  std::string screen =
      r.options.view == "contexts"
          ? absl::StrCat("\x1b[H\x1b[2J", "ctxagent attach ", r.options.pid, "  ",
                         RenderSummary(lineage, run), "\n", RenderTree(lineage, now, 40), "\n",
                         r.session->findings().size(), " finding(s) so far",
                         r.probes->attached() ? "" : " (probes paused: sampling)", "\n")
          : absl::StrCat("\x1b[H\x1b[2J", RenderLiveTop(lineage, r.session->findings(), run, now,
                                                        !r.probes->attached(), r.growth,
                                                        QueryTerminalSize(STDOUT_FILENO)));
  screen = EscapeInvalidUtf8(screen);
  // A newline after the last row of a full screen would scroll its first row away.
  if (r.options.view != "contexts" && !screen.empty() && screen.back() == '\n') screen.pop_back();
  fwrite(screen.data(), 1, screen.size(), stdout);
  fflush(stdout);
}

// Whether the target is gone for good. Around an exec from a thread other than the leader,
// /proc/<pid>/stat shows the old leader as a zombie for an instant (4 reads in 200k around
// execprog's exec; attach once reported its target exited instead of exec'd): a process that
// looks gone is looked at again. (Process::Alive stays strict: the daemon must not take a process
// that is exiting for a live one and blame its binary for a failed read.)
bool TargetGone(const Process& process) {
  for (int i = 0; i < 5; ++i) {
    if (process.Alive()) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

absl::StatusOr<bool> AttachRun::Poll(absl::Time now, bool ending) {
  // The switch before the drain (see ProbeSet::TickAndDrain); an attach checks that the target
  // still runs the binary, so an exec not yet drained cannot get the old binary's probes. Past the
  // end only the drain: what happened until then goes into the report.
  absl::Status s;
  if (ending) {
    tracer->Drain();
  } else {
    s = probes->TickAndDrain([this] { session->OnProbesPaused(); });
  }
  // After an exec the lineage is of a program no longer there: stop, never re-attach.
  if (target_execd) return session->process().CalledExec();
  if (s.ok()) return true;
  if (!TargetGone(session->process())) return s;
  target_exited = true;
  return false;
}

absl::StatusOr<bool> AttachRun::Refresh(absl::Time now) {
  if (TargetGone(session->process())) {
    target_exited = true;
    return false;
  }
  if (absl::Status s = session->process().CheckRuns(bin->identity());
      absl::IsFailedPrecondition(s)) {
    return s;
  }
  if (probes->NewLoss()) session->OnEventsLost();
  const OverheadSample last_interval = probes->Measure(now);
  session->Refresh(now, probes->attached());
  if (live) Draw(*this, now, last_interval);
  return true;
}

// Traces until a stop, the duration, or the target's exit.
absl::Status Trace(AttachRun& r) {
  const AttachOptions& o = r.options;
  AgentLoop loop({.refresh = o.refresh,
                  .first_refresh = r.start + o.refresh,
                  .end = r.start + o.duration,
                  .poll = o.poll},
                 RealClock(), r);
  while (!StopRequested()) {
    absl::ReleasableMutexLock lock(&r.mu);
    absl::StatusOr<AgentLoop::Wake> wake = loop.Step();
    if (!wake.ok()) return wake.status();
    if (loop.stopped()) break;
    lock.Release();
    r.tracer->Wait(wake->at - absl::Now());
  }
  return absl::OkStatus();
}

absl::Status Report(AttachRun& r) {
  const AttachOptions& o = r.options;
  // Findings as of the stop: detaching can take seconds on a loaded machine, and the state must
  // not age meanwhile. What happens during the detach (ends of what was seen) is still applied.
  r.http.reset();
  const absl::Time now = absl::Now();
  RunInfo run = Info(r, now, {});
  r.exits_at_detach = r.probes->goroutine_exits();
  r.probes.reset();  // detaches
  r.tracer->Drain();
  r.session->Finish(now, r.target_exited);
  run.counters = r.tracer->counters();
  // Every hit at the trap cost the probes ended with (measured on the target, if they could).
  r.run_meter->set_costs(run.trap_costs);
  run.overhead = r.run_meter->Update(now, r.tracer->trap_hits());
  if (r.target_exited) fprintf(stderr, "ctxagent: pid %d exited\n", o.pid);
  if (r.session->undecodable() > 0) {
    fprintf(stderr, "ctxagent: %lu events could not be decoded\n", r.session->undecodable());
  }
  const ProcessLineage& lineage = r.session->lineage();
  const std::vector<Finding>& findings = r.session->findings();
  std::string out;
  if (o.output == "json") {
    for (const Finding& f : findings) out += DumpJson(FindingToJson(lineage, f, now)) + "\n";
    nlohmann::json goroutines = GoroutinesToJson(lineage, now, 10000);
    goroutines["type"] = "goroutines";
    out += DumpJson(goroutines) + "\n";
    out += DumpJson(SummaryToJson(lineage, run)) + "\n";
  } else if (o.output == "dot") {
    out = EscapeInvalidUtf8(o.view == "contexts"
                                ? RenderDot(lineage, findings)
                                : RenderSiteDot(BuildSiteGraph(lineage, findings, now)));
  } else if (o.output == "html") {
    std::string name;  // empty once the target exited
    std::ifstream(absl::StrCat("/proc/", o.pid, "/comm")) >> name;
    out = ExportHtml(lineage, findings, name, now);
  } else {
    out = EscapeInvalidUtf8(absl::StrCat(
        r.live ? "\x1b[H\x1b[2J" : "",
        o.view == "contexts" ? RenderTree(lineage, now, 200)
                             : RenderSiteTree(BuildSiteGraph(lineage, findings, now), 160, 200),
        "\n", RenderFindings(lineage, findings), "\n", RenderSummary(lineage, run)));
  }
  if (o.output_file.empty()) {
    fwrite(out.data(), 1, out.size(), stdout);
    return absl::OkStatus();
  }
  FILE* f = fopen(o.output_file.c_str(), "w");
  const bool ok = f != nullptr && fwrite(out.data(), 1, out.size(), f) == out.size();
  if (f == nullptr || fclose(f) != 0 || !ok) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", o.output_file));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunAttachCommand(const AttachOptions& options) {
  AttachRun run(options);
  if (absl::Status s = Prepare(run); !s.ok()) return s;
  if (!options.http.empty()) {
    run.http = std::make_unique<AttachHttp>(
        run.mu, options.pid, run.session->lineage(), run.session->findings(), *run.bin,
        run.session->process(), &run.growth, &run.session->leaks());
    if (absl::Status s = run.http->Serve(options.http); !s.ok()) return s;
  }
  InstallStopHandlers();
  if (absl::Status s = Trace(run); !s.ok()) return s;
  return Report(run);
}

}  // namespace ctxagent
