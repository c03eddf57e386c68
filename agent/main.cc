// ctxagent: finds where context cancellation stops propagating in running Go programs.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "agent/attach_command.h"
#include "agent/symbols_command.h"

ABSL_FLAG(std::string, o, "", "output format: symbols: text|json (default text); attach: tree|json|dot (default tree)");
ABSL_FLAG(absl::Duration, duration, absl::InfiniteDuration(), "attach: stop after this long");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(5), "attach: time a goroutine has to react to a cancellation");
ABSL_FLAG(absl::Duration, leak_after, absl::Seconds(30), "attach: age after which an uncancelled context whose creator is gone counts as leaked");
ABSL_FLAG(int, min_count, 3, "attach: contexts a site must accumulate before it is reported");
ABSL_FLAG(absl::Duration, poll, absl::Milliseconds(20), "attach: how often the event ring buffer is drained");
ABSL_FLAG(int, ring_buffer_kb, 16384, "attach: BPF ring buffer size in KiB (a power of two)");
ABSL_FLAG(absl::Duration, refresh, absl::Seconds(1), "attach: live view and evaluation period");

namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  ctxagent symbols <binary-or-pid> [-o text|json]   Go version, offsets and probe plan\n"
    "  ctxagent attach <pid> [--duration D] [-o tree|json|dot] [--grace D] [--leak_after D]\n"
    "                                                    live lineage tree, then the findings\n";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  if (argc < 2) {
    fputs(kUsage, stderr);
    return 2;
  }
  std::string command = argv[1];
  // Flags follow the subcommand; parse them with the subcommand removed.
  std::vector<char*> args = {argv[0]};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
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
    opts.ring_bytes = static_cast<uint32_t>(absl::GetFlag(FLAGS_ring_buffer_kb)) * 1024;
    opts.findings.grace = absl::GetFlag(FLAGS_grace);
    opts.findings.leak_after = absl::GetFlag(FLAGS_leak_after);
    opts.findings.min_count = absl::GetFlag(FLAGS_min_count);
    return ctxagent::RunAttachCommand(opts);
  }
  fprintf(stderr, "ctxagent: unknown command \"%s\"\n%s", command.c_str(), kUsage);
  return 2;
}
