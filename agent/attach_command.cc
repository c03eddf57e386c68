#include "agent/attach_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/capabilities.h"
#include "agent/decoder.h"
#include "agent/overhead.h"
#include "agent/sampling.h"
#include "agent/process.h"
#include "agent/tracer.h"
#include "agent/views.h"
#include "symbols/go_binary.h"

namespace ctxagent {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

void Fail(const std::string& message) { fprintf(stderr, "ctxagent attach: %s\n", message.c_str()); }

// Feeds one decoded event into the lineage.
struct Apply {
  ProcessLineage& lineage;
  void operator()(const ContextCreated& e) { lineage.OnContextCreated(e); }
  void operator()(const ContextCancelled& e) { lineage.OnContextCancelled(e); }
  void operator()(const GoroutineCreated& e) { lineage.OnGoroutineCreated(e); }
  void operator()(const GoroutineExited& e) { lineage.OnGoroutineExited(e); }
};

}  // namespace

int RunAttachCommand(const AttachOptions& options) {
  Process process(options.pid);
  if (options.pid <= 0 || !process.Alive()) {
    Fail(absl::StrCat("no process with pid ", options.pid));
    return 1;
  }
  if (absl::Status s = CheckOwnCapabilities(); !s.ok()) {
    Fail(std::string(s.message()));
    return 1;
  }
  auto bin = symbols::GoBinary::Open(process.exe_path());
  if (!bin.ok()) {
    Fail(absl::StrCat("pid ", options.pid, ": ", bin.status().message()));
    return 1;
  }
  auto bias = process.LoadBias((*bin)->elf());
  if (!bias.ok()) {
    Fail(std::string(bias.status().message()));
    return 1;
  }
  ProcessLineage lineage(options.pid);
  Decoder decoder(**bin, process, *bias, lineage.sites());
  EventClock clock;
  uint64_t events = 0, undecodable = 0;
  auto tracer = Tracer::Create(
      [&](const ctx_event& raw) {
    if (raw.tgid != static_cast<uint32_t>(options.pid)) return;
    ++events;
    auto e = decoder.Decode(raw, clock);
    if (!e.ok()) {
      ++undecodable;
      return;
    }
    std::visit(Apply{lineage}, *e);
      },
      options.ring_bytes);
  if (!tracer.ok()) {
    Fail(std::string(tracer.status().message()));
    return 1;
  }
  absl::StatusOr<uint32_t> attachment = (*tracer)->Attach(options.pid, **bin);
  if (!attachment.ok()) {
    Fail(std::string(attachment.status().message()));
    return 1;
  }
  // Per-hit trap costs measured here, once: they differ between machines by several times.
  TrapCosts trap_costs;
  if (auto calibrated = CalibrateTrapCosts(); calibrated.ok()) {
    trap_costs = *calibrated;
  } else {
    fprintf(stderr, "ctxagent: trap cost calibration failed (%s); using defaults\n",
            std::string(calibrated.status().message()).c_str());
  }
  OverheadMeter interval_meter(trap_costs, (*tracer)->probe_fd(), options.pid);
  OverheadMeter run_meter(trap_costs, (*tracer)->probe_fd(), options.pid);
  OverheadSample last_interval;
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  const bool live = options.live && options.output == "tree" && isatty(STDOUT_FILENO);
  fprintf(stderr, "ctxagent: attached to pid %d (%s, %zu probes); %s\n", options.pid,
          (*bin)->build_info().version.raw.c_str(), (*tracer)->attached_probes(),
          live ? "Ctrl-C for the report" : "tracing");

  const absl::Time start = absl::Now();
  absl::Time next_eval = start + options.refresh;
  std::vector<Finding> findings;
  bool target_exited = false;
  uint64_t lost_seen = 0;
  // Duty-cycles the probes when full tracing costs more than the budget (agent/sampling.h).
  SamplingController sampler(options.budget > 0 ? options.budget : 1e9,
                             options.findings.leak_after + 2 * options.findings.grace, start);
  bool attached = true;
  absl::Time window_start = start;
  // A new sampling window cannot see what the last one found until it has run as long: until then
  // the last window's findings stand.
  auto evaluate = [&](absl::Time now) {
    std::vector<Finding> current = lineage.Evaluate(now, options.findings);
    if (!current.empty() || now - window_start >= sampler.window() || window_start == start) {
      findings = std::move(current);
    }
  };
  while (!g_stop) {
    absl::SleepFor(options.poll);
    (*tracer)->Drain();
    absl::Time now = absl::Now();
    if (now - start >= options.duration) break;
    if (now < next_eval) continue;
    next_eval = now + options.refresh;
    if (!process.Alive()) {
      target_exited = true;
      break;
    }
    if (uint64_t lost = (*tracer)->counters().dropped_total(); lost != lost_seen) {
      lost_seen = lost;
      lineage.OnEventsLost();
    }
    // While detached the last window's findings stand: nothing new can be seen.
    if (attached) evaluate(now);
    lineage.Collect(now, options.findings);
    last_interval = interval_meter.Update(now, (*tracer)->hook_hits());
    // The duty cycle controls the probes' cost (trap + BPF, charged to the target); the agent's own
    // CPU is reported but not steered by it.
    const double probe_ratio =
        (last_interval.trap_cpu_s + last_interval.bpf_cpu_s) / std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    if (bool want = sampler.Update(now, probe_ratio); want != attached) {
      if (!want) {
        (*tracer)->Detach(*attachment);
        (*tracer)->Drain();
        evaluate(now);
        lineage.OnEventsLost();  // what is live now may end unseen
      } else {
        attachment = (*tracer)->Attach(options.pid, **bin);
        if (!attachment.ok()) {
          Fail(std::string(attachment.status().message()));
          return 1;
        }
        window_start = now;
      }
      attached = want;
    }
    if (live) {
      RunInfo run{now - start, events, (*tracer)->counters(), last_interval, trap_costs,
                  sampler.observed_ratio(now)};
      std::string screen = absl::StrCat("\x1b[H\x1b[2J", "ctxagent attach ", options.pid, "  ",
                                        RenderSummary(lineage, run), "\n",
                                        RenderTree(lineage, now, 40), "\n", findings.size(),
                                        " finding(s) so far", attached ? "" : " (probes paused: sampling)",
                                        "\n");
      fwrite(screen.data(), 1, screen.size(), stdout);
      fflush(stdout);
    }
  }
  // Findings as of the stop: detaching can take seconds on a loaded machine, and the state must
  // not age meanwhile. What happens during the detach (ends of what was seen) is still applied.
  const absl::Time now = absl::Now();
  if (attached) {
    (*tracer)->Detach(*attachment);
    (*tracer)->Drain();
    evaluate(now);
  }
  TracerCounters counters = (*tracer)->counters();
  RunInfo run{now - start, events, counters, run_meter.Update(now, (*tracer)->hook_hits()),
              trap_costs, sampler.observed_ratio(now)};
  if (target_exited) fprintf(stderr, "ctxagent: pid %d exited\n", options.pid);
  if (undecodable > 0) fprintf(stderr, "ctxagent: %lu events could not be decoded\n", undecodable);

  std::string out;
  if (options.output == "json") {
    for (const Finding& f : findings) out += FindingToJson(lineage, f, now).dump() + "\n";
    out += SummaryToJson(lineage, run).dump() + "\n";
  } else if (options.output == "dot") {
    out = RenderDot(lineage, findings);
  } else {
    out = absl::StrCat(live ? "\x1b[H\x1b[2J" : "", RenderTree(lineage, now, 200), "\n",
                       RenderFindings(lineage, findings), "\n", RenderSummary(lineage, run));
  }
  fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace ctxagent
