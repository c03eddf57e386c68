// ctxagent: finds where context cancellation stops propagating in running Go programs.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "agent/symbols_command.h"

ABSL_FLAG(std::string, o, "text", "output format: text|json (symbols)");

namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  ctxagent symbols <binary-or-pid> [-o text|json]   Go version, offsets and probe plan\n";

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
    return ctxagent::RunSymbolsCommand(positional[0], absl::GetFlag(FLAGS_o));
  }
  fprintf(stderr, "ctxagent: unknown command \"%s\"\n%s", command.c_str(), kUsage);
  return 2;
}
