#include "agent/cli/attach_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/control/overhead.h"
#include "agent/control/sampling.h"
#include "agent/trace/capabilities.h"
#include "agent/trace/decoder.h"
#include "agent/trace/goroutines.h"
#include "agent/trace/liveness.h"
#include "agent/trace/process.h"
#include "agent/trace/tracer.h"
#include "agent/view/views.h"
#include "symbols/go_binary.h"

namespace ctxagent {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

void Fail(const std::string& message) { fprintf(stderr, "ctxagent attach: %s\n", message.c_str()); }

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
        lineage.Apply(*e);
      },
      options.ring_bytes);
  if (!tracer.ok()) {
    Fail(std::string(tracer.status().message()));
    return 1;
  }
  // Per-hit trap costs measured here, once, before the probes add to the first measurement: they
  // differ between machines by several times.
  TrapCosts trap_costs;
  if (auto calibrated = CalibrateTrapCosts(); calibrated.ok()) {
    trap_costs = *calibrated;
  } else {
    fprintf(stderr, "ctxagent: trap cost calibration failed (%s); using defaults\n",
            std::string(calibrated.status().message()).c_str());
  }
  absl::StatusOr<uint32_t> attachment = (*tracer)->Attach(options.pid, **bin);
  if (!attachment.ok()) {
    Fail(std::string(attachment.status().message()));
    return 1;
  }
  // Every goroutine, those that predate the probes included, read from memory once attached.
  GoroutineReader goroutines(**bin, process, *bias, decoder, clock);
  lineage.ObserveGoroutines(absl::Now(), goroutines);
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
  // Duty-cycles the probes when full tracing costs more than the budget (agent/sampling.h); what
  // was live at a pause is then checked in the target's memory.
  DutyCycle duty({.budget = options.budget, .target_budget = options.target_budget},
                 std::make_unique<OverheadMeter>(trap_costs, (*tracer)->probe_fd(), options.pid),
                 start);
  const SamplingController& sampler = duty.controller();
  MemoryLiveness liveness(process, (*bin)->offsets());
  bool attached = true, paused_once = false;
  // Reading the target's memory costs per unobserved node: often enough to keep findings as fresh
  // as the grace period, not at every refresh.
  const absl::Duration reconcile_every = std::max(options.refresh, options.findings.grace);
  absl::Time next_reconcile = start;
  auto reconcile = [&](absl::Time now) {
    if (paused_once) lineage.Reconcile(now, liveness);
    lineage.ObserveGoroutines(now, goroutines);
    next_reconcile = now + reconcile_every;
  };
  while (!g_stop) {
    // Detached, nothing arrives: sleep until the next window or evaluation (briefly, to see a
    // stop).
    absl::Duration nap = options.poll;
    if (!attached) {
      nap = std::clamp(std::min(sampler.next_switch(), next_eval) - absl::Now(), options.poll,
                       absl::Milliseconds(200));
    }
    absl::SleepFor(nap);
    (*tracer)->Drain();
    absl::Time now = absl::Now();
    if (now - start >= options.duration) break;
    if (bool want = duty.Tick(now); want != attached) {
      duty.Switch(now, (*tracer)->hook_hits(), want, [&] {
        if (want) {
          attachment = (*tracer)->Attach(options.pid, **bin);
        } else {
          (*tracer)->Detach(*attachment);
        }
      });
      if (!want) {
        (*tracer)->Drain();
        lineage.OnProbesPaused();
        paused_once = true;
      } else if (!attachment.ok()) {
        if (!process.Alive()) {
          target_exited = true;
          break;
        }
        Fail(std::string(attachment.status().message()));
        return 1;
      }
      attached = want;
    }
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
    last_interval = duty.Measure(now, (*tracer)->hook_hits());
    const bool reconciled = now >= next_reconcile;
    if (reconciled) reconcile(now);
    // Detached, the lineage changes only when memory is read.
    if (attached || reconciled) {
      findings = lineage.Evaluate(now, options.findings);
      lineage.Collect(now, options.findings);
    }
    if (live) {
      RunInfo run{now - start,   events,     (*tracer)->counters(),
                  last_interval, trap_costs, sampler.observed_ratio(now),
                  duty.plan()};
      std::string screen = absl::StrCat(
          "\x1b[H\x1b[2J", "ctxagent attach ", options.pid, "  ", RenderSummary(lineage, run), "\n",
          RenderTree(lineage, now, 40), "\n", findings.size(), " finding(s) so far",
          attached ? "" : " (probes paused: sampling)", "\n");
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
  }
  // After the target exited its memory cannot be read: unobserved nodes keep the last evaluation.
  if (!target_exited || !paused_once) {
    if (!target_exited) reconcile(now);
    findings = lineage.Evaluate(now, options.findings);
  }
  TracerCounters counters = (*tracer)->counters();
  RunInfo run{now - start, events,
              counters,    run_meter.Update(now, (*tracer)->hook_hits()),
              trap_costs,  sampler.observed_ratio(now),
              duty.plan()};
  if (target_exited) fprintf(stderr, "ctxagent: pid %d exited\n", options.pid);
  if (undecodable > 0) fprintf(stderr, "ctxagent: %lu events could not be decoded\n", undecodable);

  std::string out;
  if (options.output == "json") {
    for (const Finding& f : findings) out += FindingToJson(lineage, f, now).dump() + "\n";
    nlohmann::json goroutines = GoroutinesToJson(lineage, now, 10000);
    goroutines["type"] = "goroutines";
    out += goroutines.dump() + "\n";
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
