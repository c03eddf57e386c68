// ctxagent: finds where context cancellation stops propagating in running Go programs.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/cli/attach_command.h"
#include "agent/cli/command_line.h"
#include "agent/cli/profile_command.h"
#include "agent/cli/symbols_command.h"
#include "agent/node/daemon.h"
#include "agent/trace/tracer.h"

namespace ctxagent {

// --duty_cycle=WINDOW/PERIOD ("500ms/2s"); empty: unset.
bool AbslParseFlag(absl::string_view text, FixedDutyCycle* d, std::string* error) {
  if (text.empty()) {
    *d = {};
    return true;
  }
  std::pair<std::string, std::string> parts = absl::StrSplit(text, absl::MaxSplits('/', 1));
  FixedDutyCycle v;
  if (!absl::ParseDuration(parts.first, &v.window) ||
      !absl::ParseDuration(parts.second, &v.period) || v.window <= absl::ZeroDuration() ||
      v.period <= v.window || v.period == absl::InfiniteDuration()) {
    *error = "expected WINDOW/PERIOD with 0 < WINDOW < PERIOD, e.g. 500ms/2s";
    return false;
  }
  *d = v;
  return true;
}
std::string AbslUnparseFlag(const FixedDutyCycle& d) {
  if (!d.set()) return "";
  return absl::StrCat(absl::FormatDuration(d.window), "/", absl::FormatDuration(d.period));
}

}  // namespace ctxagent

// Defaults here are placeholders: each command's defaults are its options struct's (see
// agent/cli/command_line.h), and `ctxagent <command> --help` shows them.
ABSL_FLAG(std::string, o, "",
          "output format (symbols: text or json; attach: tree, json, dot or html, html being one "
          "self-contained page of the final state; profile: pprof or text)");
ABSL_FLAG(
    std::string, type, "",
    "profile: goroutine (every goroutine by stack), leak (proven leaked and context findings' "
    "goroutines) or create (by `go` statement)");
ABSL_FLAG(int, seconds, 0,
          "profile: a delta profile, the goroutines that appeared (and, counted negative, went "
          "away) over this many seconds, as net/http/pprof's ?seconds= (pprof output, goroutine "
          "and leak types); 0 = one profile now");
ABSL_FLAG(bool, verbose, false, "libbpf's debug messages on stderr (its warnings always are)");
ABSL_FLAG(std::string, view, "",
          "sites (live top view and report by creation site) or contexts (every context)");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(), "stop after this long");
ABSL_FLAG(absl::Duration, grace, absl::ZeroDuration(),
          "time a goroutine has to react to a cancellation");
ABSL_FLAG(absl::Duration, leak_after, absl::ZeroDuration(),
          "age after which an uncancelled context whose creator is gone counts as leaked");
ABSL_FLAG(int, min_count, 0, "contexts a site must accumulate before it is reported");
ABSL_FLAG(absl::Duration, mark_every, absl::ZeroDuration(),
          "how often the target's heap is marked to prove goroutines leaked (two marks half "
          "this apart must agree: a mark that finds one is followed half this later); 0 = never");
ABSL_FLAG(int, mark_memory_mb, 0,
          "memory one heap mark may hold, in MiB (it reads at most 64 times that); a process "
          "whose heap needs more is traced on without marks");
ABSL_FLAG(absl::Duration, refresh, absl::ZeroDuration(), "evaluation (and live view) period");
ABSL_FLAG(absl::Duration, poll, absl::ZeroDuration(),
          "how often the event ring buffer is drained while probes are on (daemon: up to once per "
          "--refresh while fewer than 100 events a second come)");
ABSL_FLAG(double, budget, 0,
          "share of the node's CPU tracing may use (probes are duty-cycled above it); 0 = trace "
          "everything");
ABSL_FLAG(double, target_budget, 0,
          "share of the target's own CPU tracing may use, on top of --budget; 0 = no such limit");
ABSL_FLAG(ctxagent::FixedDutyCycle, duty_cycle, {},
          "WINDOW/PERIOD: probes on for WINDOW in every PERIOD (e.g. 1s/10s) instead of the "
          "budget's plan; empty = the budget decides");
ABSL_FLAG(int, ring_buffer_kb, 0, "BPF ring buffer size in KiB (a power of two)");
ABSL_FLAG(std::string, http, "",
          "serve /processes and /processes/<pid>/... for the attached process on this host:port "
          "(e.g. 127.0.0.1:9465); empty = no server");
ABSL_FLAG(std::string, listen, "",
          "address of /metrics, /healthz and /readyz (what Prometheus scrapes)");
ABSL_FLAG(std::string, detail_listen, "",
          "address of /processes and /processes/<pid>/... (source paths, function names: keep it "
          "on loopback or behind an authenticating proxy); empty = not served");
ABSL_FLAG(
    std::vector<std::string>, include, {},
    "trace only matching processes (binary:GLOB, cgroup:SUBSTRING, namespace:NAME, pod:GLOB)");
ABSL_FLAG(std::vector<std::string>, exclude, {}, "never trace matching processes (same selectors)");
ABSL_FLAG(std::string, host_proc, "", "the host's /proc (e.g. /host/proc in a container)");
ABSL_FLAG(std::string, log_pods_root, "", "kubelet's pod log directory, for pod names");
ABSL_FLAG(uint64_t, max_contexts_per_process, 0,
          "tracked contexts per process before new ones are dropped");
ABSL_FLAG(uint64_t, max_contexts_total, 0, "tracked contexts in all before new ones are dropped");
ABSL_FLAG(int, max_site_labels, 0, "findings per process exported with their site label");
ABSL_FLAG(absl::Duration, rescan, absl::ZeroDuration(),
          "/proc rescan period (exec events find new processes)");
ABSL_FLAG(absl::Duration, series_ttl, absl::ZeroDuration(),
          "how long a workload's counter series outlive its last traced process");
ABSL_FLAG(uint64_t, max_workloads, 0,
          "workloads with series at most; beyond it the longest exited are dropped first "
          "(ctxagent_workloads_dropped_total)");
ABSL_FLAG(int, http_max_connections, 0, "connections each HTTP server holds at most");
ABSL_FLAG(int, http_reserved_connections, 0,
          "slots kept for fresh connections: past max - reserved open ones, the connection idle "
          "longest between keep-alive requests is closed");
ABSL_FLAG(int, http_max_connections_per_client, 0,
          "connections one source address may hold; beyond it a new one closes that address's "
          "connection idle longest");
ABSL_FLAG(absl::Duration, http_request_timeout, absl::ZeroDuration(),
          "a request's headers must be in this long after its connection or previous response "
          "(request bodies are refused)");
ABSL_FLAG(absl::Duration, http_idle_timeout, absl::ZeroDuration(),
          "a connection silent this long is closed");

namespace ctxagent {
namespace {

constexpr char kUsage[] =
    "usage: ctxagent <command> [flags]\n"
    "\n"
    "commands:\n"
    "  symbols <binary-or-pid>   Go version, offsets and probe plan of a binary\n"
    "  attach <pid>              live lineage tree of one Go process, then its findings\n"
    "  profile <pid> [FILE]      goroutine profile (pprof or text), read without stopping it\n"
    "  daemon                    node agent: every Go process, Prometheus metrics\n"
    "  help [command]            this text, or a command's flags\n"
    "  version                   the version\n"
    "\n"
    "`ctxagent <command> --help` lists that command's flags and their defaults.\n";

bool g_verbose = false;  // --verbose, for attach and daemon

// A command: its one-line synopsis, its flags bound to its options, and what runs it.
struct Command {
  std::string synopsis;
  std::vector<FlagBinding> flags;
  std::function<int(const std::vector<std::string>& positional)> run;
};

int Fail(const std::string& command, const std::string& message) {
  fprintf(stderr, "ctxagent %s: %s\n", command.c_str(), message.c_str());
  return 2;
}

// Every value a command takes is checked here, before anything starts: one line per mistake.
absl::Status CheckFraction(const char* flag, double v) {
  if (std::isfinite(v) && v >= 0 && v <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " must be a share between 0 and 1, not ", v));
}
absl::Status CheckPositive(const char* flag, absl::Duration d, bool may_be_infinite = false) {
  if (d > absl::ZeroDuration() && (may_be_infinite || d != absl::InfiniteDuration())) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " must be a positive duration, not ", absl::FormatDuration(d)));
}
absl::Status CheckMarks(absl::Duration every, int memory_mb) {
  if (every < absl::ZeroDuration() || every == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--mark_every must be a duration of 0 or more, not ", absl::FormatDuration(every)));
  }
  if (memory_mb < 1 || memory_mb > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mark_memory_mb must be from 1 to 1048576, not ", memory_mb));
  }
  return absl::OkStatus();
}
absl::Status CheckFindings(const FindingOptions& f) {
  if (f.grace < absl::ZeroDuration() || f.grace == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--grace must be a duration of 0 or more, not ",
                                                   absl::FormatDuration(f.grace)));
  }
  if (absl::Status s = CheckPositive("leak_after", f.leak_after); !s.ok()) return s;
  if (f.min_count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--min_count must be at least 1, not ", f.min_count));
  }
  return absl::OkStatus();
}
absl::StatusOr<uint32_t> RingBytes(int kib) {
  if (kib < 4 || kib > (1 << 20) || (kib & (kib - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ring_buffer_kb must be a power of two from 4 to 1048576, not ", kib));
  }
  return static_cast<uint32_t>(kib) * 1024;
}

// A pid given on the command line: a positive number naming a process (not one of its threads).
absl::StatusOr<int> ParsePid(const std::string& text) {
  int pid;
  if (!absl::SimpleAtoi(text, &pid) || pid <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a pid (a positive number), not \"", text, "\""));
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view v = line;
    int tgid;
    if (absl::ConsumePrefix(&v, "Tgid:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &tgid) && tgid != pid) {
      return absl::InvalidArgumentError(
          absl::StrCat(pid, " is a thread of process ", tgid, "; give the process's pid"));
    }
  }
  return pid;
}

Command SymbolsCommand(std::string* format) {
  *format = "text";
  return {"symbols <binary-or-pid> [flags]",
          {Bind(FLAGS_o, format)},
          [format](const std::vector<std::string>& positional) {
            if (positional.size() != 1) return Fail("symbols", "expected one binary path or pid");
            return RunSymbolsCommand(positional[0], *format);
          }};
}

Command AttachCommand(AttachOptions* o, int* ring_kb) {
  *ring_kb = static_cast<int>(o->ring_bytes / 1024);
  return {
      "attach <pid> [FILE] [flags]   (the report to FILE, else to stdout)",
      {Bind(FLAGS_o, &o->output), Bind(FLAGS_duration, &o->duration),
       Bind(FLAGS_grace, &o->findings.grace), Bind(FLAGS_leak_after, &o->findings.leak_after),
       Bind(FLAGS_min_count, &o->findings.min_count), Bind(FLAGS_refresh, &o->refresh),
       Bind(FLAGS_mark_every, &o->mark_every), Bind(FLAGS_mark_memory_mb, &o->mark_memory_mb),
       Bind(FLAGS_poll, &o->poll), Bind(FLAGS_budget, &o->budget),
       Bind(FLAGS_target_budget, &o->target_budget), Bind(FLAGS_duty_cycle, &o->duty_cycle),
       Bind(FLAGS_ring_buffer_kb, ring_kb), Bind(FLAGS_http, &o->http), Bind(FLAGS_view, &o->view),
       Bind(FLAGS_verbose, &g_verbose)},
      [o, ring_kb](const std::vector<std::string>& positional) {
        if (positional.empty() || positional.size() > 2) {
          return Fail("attach", "expected one pid (and optionally the report's file)");
        }
        if (positional.size() == 2) o->output_file = positional[1];
        auto pid = ParsePid(positional[0]);
        auto ring = RingBytes(*ring_kb);
        absl::Status s = !pid.ok() ? pid.status() : ring.status();
        if (s.ok() && o->output != "tree" && o->output != "json" && o->output != "dot" &&
            o->output != "html") {
          s = absl::InvalidArgumentError("-o must be tree, json, dot or html");
        }
        if (s.ok() && o->view != "sites" && o->view != "contexts") {
          s = absl::InvalidArgumentError("--view must be sites or contexts");
        }
        for (absl::Status c :
             {CheckPositive("duration", o->duration, true), CheckPositive("refresh", o->refresh),
              CheckPositive("poll", o->poll), CheckFraction("budget", o->budget),
              CheckFraction("target_budget", o->target_budget), CheckFindings(o->findings),
              CheckMarks(o->mark_every, o->mark_memory_mb)}) {
          s.Update(c);
        }
        if (!s.ok()) return Fail("attach", std::string(s.message()));
        o->pid = *pid;
        o->ring_bytes = *ring;
        SetLibbpfVerbose(g_verbose);
        if (absl::Status run = RunAttachCommand(*o); !run.ok()) {
          fprintf(stderr, "ctxagent attach: %s\n", std::string(run.message()).c_str());
          return 1;
        }
        return 0;
      }};
}

Command ProfileCommand(ProfileOptions* o) {
  return {
      "profile <pid> [FILE] [flags]   (the profile to FILE, else to stdout)",
      {Bind(FLAGS_type, &o->type), Bind(FLAGS_o, &o->output), Bind(FLAGS_seconds, &o->seconds),
       Bind(FLAGS_mark_every, &o->mark_every), Bind(FLAGS_mark_memory_mb, &o->mark_memory_mb)},
      [o](const std::vector<std::string>& positional) {
        if (positional.empty() || positional.size() > 2) {
          return Fail("profile", "expected one pid (and optionally the profile's file)");
        }
        if (positional.size() == 2) o->output_file = positional[1];
        auto pid = ParsePid(positional[0]);
        absl::Status s = pid.status();
        if (s.ok() && o->type != "goroutine" && o->type != "leak" && o->type != "create") {
          s = absl::InvalidArgumentError("--type must be goroutine, leak or create");
        }
        if (s.ok() && o->output != "pprof" && o->output != "text") {
          s = absl::InvalidArgumentError("-o must be pprof or text");
        }
        if (s.ok() && o->seconds < 0) {
          s = absl::InvalidArgumentError("--seconds must be 0 or more");
        }
        if (s.ok() && o->seconds > 0 && (o->type == "create" || o->output != "pprof")) {
          s = absl::InvalidArgumentError("--seconds needs -o pprof and --type goroutine or leak");
        }
        s.Update(CheckPositive("mark_every", o->mark_every));
        s.Update(CheckMarks(o->mark_every, o->mark_memory_mb));
        if (!s.ok()) return Fail("profile", std::string(s.message()));
        o->pid = *pid;
        if (absl::Status run = RunProfileCommand(*o); !run.ok()) {
          fprintf(stderr, "ctxagent profile: %s\n", std::string(run.message()).c_str());
          return 1;
        }
        return 0;
      }};
}

struct DaemonArgs {
  DaemonOptions o;
  int ring_kb = 0;
  std::vector<std::string> include, exclude;
};

int RunDaemonCommand(DaemonArgs& a, const std::vector<std::string>& positional) {
  if (!positional.empty()) return Fail("daemon", "takes no arguments");
  for (const auto& [list, out] :
       {std::make_pair(&a.include, &a.o.include), std::make_pair(&a.exclude, &a.o.exclude)}) {
    for (const std::string& text : *list) {
      auto sel = Selector::Parse(text);
      if (!sel.ok()) return Fail("daemon", std::string(sel.status().message()));
      out->push_back(*sel);
    }
  }
  auto ring = RingBytes(a.ring_kb);
  absl::Status s = ring.status();
  const HttpLimits& h = a.o.http;
  for (absl::Status c : {CheckPositive("refresh", a.o.refresh), CheckPositive("poll", a.o.poll),
                         CheckPositive("rescan", a.o.rescan), CheckFraction("budget", a.o.budget),
                         CheckFindings(a.o.findings), CheckPositive("series_ttl", a.o.series.ttl),
                         CheckPositive("http_request_timeout", h.request_timeout),
                         CheckPositive("http_idle_timeout", h.idle_timeout),
                         CheckMarks(a.o.mark_every, a.o.mark_memory_mb)}) {
    s.Update(c);
  }
  if (s.ok() && (a.o.series.max_workloads == 0 || h.max_connections_per_client < 1 ||
                 h.reserved_connections < 0 || h.reserved_connections >= h.max_connections)) {
    s = absl::InvalidArgumentError(
        "--max_workloads and --http_max_connections_per_client must be more than 0, and "
        "--http_reserved_connections from 0 to less than --http_max_connections");
  }
  if (s.ok() && (a.o.max_site_labels < 0 || a.o.max_contexts_per_process == 0 ||
                 a.o.max_contexts_total == 0)) {
    s = absl::InvalidArgumentError(
        "--max_site_labels must be 0 or more and --max_contexts_* more than 0");
  }
  if (!s.ok()) return Fail("daemon", std::string(s.message()));
  a.o.ring_bytes = *ring;
  SetLibbpfVerbose(g_verbose);
  if (absl::Status run = RunDaemon(a.o); !run.ok()) {
    fprintf(stderr, "ctxagent daemon: %s\n", std::string(run.message()).c_str());
    return 1;
  }
  return 0;
}

Command DaemonCommand(DaemonArgs* a) {
  DaemonOptions& o = a->o;
  a->ring_kb = static_cast<int>(o.ring_bytes / 1024);
  return {
      "daemon [flags]",
      {Bind(FLAGS_listen, &o.listen),
       Bind(FLAGS_detail_listen, &o.detail_listen),
       Bind(FLAGS_include, &a->include),
       Bind(FLAGS_exclude, &a->exclude),
       Bind(FLAGS_host_proc, &o.host_proc),
       Bind(FLAGS_log_pods_root, &o.log_pods_root),
       Bind(FLAGS_grace, &o.findings.grace),
       Bind(FLAGS_leak_after, &o.findings.leak_after),
       Bind(FLAGS_min_count, &o.findings.min_count),
       Bind(FLAGS_refresh, &o.refresh),
       Bind(FLAGS_mark_every, &o.mark_every),
       Bind(FLAGS_mark_memory_mb, &o.mark_memory_mb),
       Bind(FLAGS_poll, &o.poll),
       Bind(FLAGS_rescan, &o.rescan),
       Bind(FLAGS_max_contexts_per_process, &o.max_contexts_per_process),
       Bind(FLAGS_max_contexts_total, &o.max_contexts_total),
       Bind(FLAGS_max_site_labels, &o.max_site_labels),
       Bind(FLAGS_budget, &o.budget),
       Bind(FLAGS_series_ttl, &o.series.ttl),
       Bind(FLAGS_max_workloads, &o.series.max_workloads),
       Bind(FLAGS_http_max_connections, &o.http.max_connections),
       Bind(FLAGS_http_reserved_connections, &o.http.reserved_connections),
       Bind(FLAGS_http_max_connections_per_client, &o.http.max_connections_per_client),
       Bind(FLAGS_http_request_timeout, &o.http.request_timeout),
       Bind(FLAGS_http_idle_timeout, &o.http.idle_timeout),
       Bind(FLAGS_duty_cycle, &o.duty_cycle),
       Bind(FLAGS_ring_buffer_kb, &a->ring_kb),
       Bind(FLAGS_verbose, &g_verbose)},
      [a](const std::vector<std::string>& positional) { return RunDaemonCommand(*a, positional); }};
}

int Help(const std::string& name, const Command& c) {
  printf("usage: ctxagent %s\n\nflags (--name=value or --name value; dashes or underscores):\n%s",
         c.synopsis.c_str(), FlagsHelp(c.flags).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    fputs(kUsage, stderr);
    return 2;
  }
  std::string name = args[0];
  args.erase(args.begin());
  if (name == "--version" || name == "-v" || name == "version") {
    printf("ctxagent %s\n", CTXAGENT_VERSION);
    return 0;
  }
  bool help = name == "help" || name == "--help" || name == "-h";
  if (help) {
    if (args.empty()) return fputs(kUsage, stdout), 0;
    name = args[0];
  }
  // The options each command's flags write into; their initializers are the defaults.
  std::string symbols_format;
  AttachOptions attach;
  int attach_ring_kb = 0;
  ProfileOptions profile;
  DaemonArgs daemon;
  Command command;
  if (name == "symbols") {
    command = SymbolsCommand(&symbols_format);
  } else if (name == "attach") {
    command = AttachCommand(&attach, &attach_ring_kb);
  } else if (name == "profile") {
    command = ProfileCommand(&profile);
  } else if (name == "daemon") {
    command = DaemonCommand(&daemon);
  } else {
    fprintf(stderr, "ctxagent: unknown command \"%s\" (ctxagent --help lists them)\n",
            name.c_str());
    return 2;
  }
  if (help) return Help(name, command);
  auto parsed = ParseArgs(args, command.flags);
  if (!parsed.ok()) return Fail(name, std::string(parsed.status().message()));
  if (parsed->help) return Help(name, command);
  return command.run(parsed->positional);
}

}  // namespace
}  // namespace ctxagent

int main(int argc, char** argv) {
  // Debian's Abseil keeps a lock-order graph on every Mutex::Lock: a measurable share of an idle
  // daemon's CPU, which counts against the tracing budget.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return ctxagent::Main(argc, argv);
}
