// `ctxagent symbols <binary-or-pid>`: what ctxagent reads from a Go binary and where it would
// probe.
#ifndef CTXAGENT_AGENT_CLI_SYMBOLS_COMMAND_H_
#define CTXAGENT_AGENT_CLI_SYMBOLS_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "symbols/go_binary.h"

namespace ctxagent {

// "1234" -> "/proc/1234/exe"; anything else is a path and is returned as is.
std::string ResolveTarget(const std::string& binary_or_pid);

nlohmann::json SymbolsToJson(const symbols::GoBinary& bin);
std::string SymbolsToText(const symbols::GoBinary& bin);

// Runs the subcommand; returns the process exit code. Errors go to stderr as one line.
int RunSymbolsCommand(const std::string& target, const std::string& format);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CLI_SYMBOLS_COMMAND_H_
