// ctxagent: finds where context cancellation stops propagating in running Go programs.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/cli/attach_command.h"
#include "agent/cli/symbols_command.h"
#include "agent/node/daemon.h"

ABSL_FLAG(std::string, o, "",
          "output format: symbols: text|json (default text); attach: tree|json|dot (default tree)");
ABSL_FLAG(absl::Duration, duration, absl::InfiniteDuration(), "attach: stop after this long");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(5),
          "attach: time a goroutine has to react to a cancellation");
ABSL_FLAG(absl::Duration, leak_after, absl::Seconds(30),
          "attach: age after which an uncancelled context whose creator is gone counts as leaked");
ABSL_FLAG(int, min_count, 3, "attach: contexts a site must accumulate before it is reported");
ABSL_FLAG(std::string, listen, "0.0.0.0:9464",
          "daemon: address of /metrics, /healthz, /readyz and the JSON views");
ABSL_FLAG(std::vector<std::string>, include, {},
          "daemon: trace only matching processes (binary:GLOB, cgroup:SUBSTRING, namespace:NAME, "
          "pod:GLOB)");
ABSL_FLAG(std::vector<std::string>, exclude, {},
          "daemon: never trace matching processes (same selectors)");
ABSL_FLAG(std::string, host_proc, "/proc",
          "daemon: the host's /proc (e.g. /host/proc in a container)");
ABSL_FLAG(std::string, log_pods_root, "/var/log/pods",
          "daemon: kubelet's pod log directory, for pod names");
ABSL_FLAG(uint64_t, max_contexts_per_process, 200000,
          "daemon: tracked contexts per process before new ones are dropped");
ABSL_FLAG(uint64_t, max_contexts_total, 1000000,
          "daemon: tracked contexts in all before new ones are dropped");
ABSL_FLAG(int, max_site_labels, 10, "daemon: findings per process exported with their site label");
ABSL_FLAG(absl::Duration, rescan, absl::Seconds(30),
          "daemon: /proc rescan period (exec events find new processes)");
ABSL_FLAG(absl::Duration, poll, absl::Milliseconds(20),
          "how often the event ring buffer is drained");
ABSL_FLAG(double, budget, 0.003,
          "share of the node's CPU tracing may use (probes are duty-cycled above it); 0 = trace "
          "everything");
ABSL_FLAG(
    double, target_budget, 0,
    "attach: share of the target's own CPU tracing may use, on top of --budget; 0 = no such limit");
ABSL_FLAG(int, ring_buffer_kb, 16384, "attach: BPF ring buffer size in KiB (a power of two)");
ABSL_FLAG(absl::Duration, refresh, absl::Seconds(1), "attach: live view and evaluation period");

namespace {

ctxagent::FindingOptions FindingFlags() {
  ctxagent::FindingOptions o;
  o.grace = absl::GetFlag(FLAGS_grace);
  o.leak_after = absl::GetFlag(FLAGS_leak_after);
  o.min_count = absl::GetFlag(FLAGS_min_count);
  return o;
}

constexpr char kUsage[] =
    "usage:\n"
    "  ctxagent symbols <binary-or-pid> [-o text|json]   Go version, offsets and probe plan\n"
    "  ctxagent attach <pid> [--duration D] [-o tree|json|dot] [--grace D] [--leak_after D]\n"
    "                                                    live lineage tree, then the findings\n"
    "  ctxagent daemon [--listen ADDR] [--include S,...] [--exclude S,...]\n"
    "                                                    node agent: every Go process, metrics\n";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // Debian's Abseil keeps a lock-order graph on every Mutex::Lock: a measurable share of an idle
  // daemon's CPU, which counts against the tracing budget.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (argc < 2) {
    fputs(kUsage, stderr);
    return 2;
  }
  std::string command = argv[1];
  // absl would read "-1" as a flag named "1".
  for (int i = 2; command == "attach" && i < argc; ++i) {
    const std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-' && std::all_of(a.begin() + 1, a.end(), ::isdigit)) {
      fprintf(stderr, "ctxagent attach: a pid is a positive number, not %s\n", a.c_str());
      return 2;
    }
  }
  // Flags follow the subcommand; parse them with the subcommand removed.
  std::vector<char*> args = {argv[0]};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  positional.erase(positional.begin());

  if (command == "symbols") {
    if (positional.size() != 1) {
      fputs("ctxagent symbols: expected one binary path or pid\n", stderr);
      return 2;
    }
    std::string format = absl::GetFlag(FLAGS_o);
    return ctxagent::RunSymbolsCommand(positional[0], format.empty() ? "text" : format);
  }
  if (command == "attach") {
    ctxagent::AttachOptions opts;
    if (positional.size() != 1 || !absl::SimpleAtoi(positional[0], &opts.pid)) {
      fputs("ctxagent attach: expected one pid\n", stderr);
      return 2;
    }
    opts.output = absl::GetFlag(FLAGS_o).empty() ? "tree" : absl::GetFlag(FLAGS_o);
    if (opts.output != "tree" && opts.output != "json" && opts.output != "dot") {
      fputs("ctxagent attach: -o must be tree, json or dot\n", stderr);
      return 2;
    }
    opts.duration = absl::GetFlag(FLAGS_duration);
    opts.refresh = absl::GetFlag(FLAGS_refresh);
    opts.poll = absl::GetFlag(FLAGS_poll);
    opts.budget = absl::GetFlag(FLAGS_budget);
    opts.target_budget = absl::GetFlag(FLAGS_target_budget);
    opts.ring_bytes = static_cast<uint32_t>(absl::GetFlag(FLAGS_ring_buffer_kb)) * 1024;
    opts.findings = FindingFlags();
    return ctxagent::RunAttachCommand(opts);
  }
  if (command == "daemon") {
    if (!positional.empty()) {
      fputs("ctxagent daemon: takes no arguments\n", stderr);
      return 2;
    }
    ctxagent::DaemonOptions opts;
    for (const auto& [list, out] : {std::make_pair(absl::GetFlag(FLAGS_include), &opts.include),
                                    std::make_pair(absl::GetFlag(FLAGS_exclude), &opts.exclude)}) {
      for (const std::string& text : list) {
        auto sel = ctxagent::Selector::Parse(text);
        if (!sel.ok()) {
          fprintf(stderr, "ctxagent daemon: %s\n", std::string(sel.status().message()).c_str());
          return 2;
        }
        out->push_back(*sel);
      }
    }
    opts.listen = absl::GetFlag(FLAGS_listen);
    opts.host_proc = absl::GetFlag(FLAGS_host_proc);
    opts.log_pods_root = absl::GetFlag(FLAGS_log_pods_root);
    opts.findings = FindingFlags();
    opts.refresh = absl::GetFlag(FLAGS_refresh);
    opts.poll = absl::GetFlag(FLAGS_poll);
    opts.rescan = absl::GetFlag(FLAGS_rescan);
    opts.max_contexts_per_process = absl::GetFlag(FLAGS_max_contexts_per_process);
    opts.max_contexts_total = absl::GetFlag(FLAGS_max_contexts_total);
    opts.max_site_labels = absl::GetFlag(FLAGS_max_site_labels);
    opts.ring_bytes = static_cast<uint32_t>(absl::GetFlag(FLAGS_ring_buffer_kb)) * 1024;
    opts.budget = absl::GetFlag(FLAGS_budget);
    return ctxagent::RunDaemon(opts);
  }
  fprintf(stderr, "ctxagent: unknown command \"%s\"\n%s", command.c_str(), kUsage);
  return 2;
}
