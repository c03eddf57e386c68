// Command-line parsing for the `ctxagent` commands. Abseil flags parse the values; which flags a
// command takes, and their defaults, come from the command: each flag is bound to a field of the
// command's options struct, whose initializer is the one definition of that default (the daemon
// refreshes every 5 s, attach every 1 s, from the same --refresh flag).
#ifndef CTXAGENT_AGENT_CLI_COMMAND_LINE_H_
#define CTXAGENT_AGENT_CLI_COMMAND_LINE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/statusor.h"

namespace ctxagent {

// One flag of one command.
struct FlagBinding {
  std::string name;
  std::string default_text;  // the field's value when bound: the command's default
  std::string help;
  std::function<void()> apply;  // copies the parsed flag into the field
};

template <typename T>
FlagBinding Bind(absl::Flag<T>& flag, T* field) {
  const absl::CommandLineFlag& f = absl::GetFlagReflectionHandle(flag);
  return {std::string(f.Name()), absl::UnparseFlag<T>(*field), f.Help(),
          [&flag, field] { *field = absl::GetFlag(flag); }};
}

// Parses the arguments after the command name and applies every flag given to its field.
// Accepted: --name=value, --name value, -name=value; dashes and underscores alike (--leak-after,
// --leak_after); "--" ends the flags. "-1" is an argument, not a flag, for the command to judge.
// `help` is set by -h/--help. Errors are one line without the command's name.
struct ParsedArgs {
  std::vector<std::string> positional;
  bool help = false;
};
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagBinding>& flags);

// "  --name=DEFAULT\n      help\n" for each flag, sorted by name.
std::string FlagsHelp(const std::vector<FlagBinding>& flags);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CLI_COMMAND_LINE_H_
