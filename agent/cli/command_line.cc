#include "agent/cli/command_line.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace ctxagent {
namespace {

bool IsNegativeNumber(const std::string& a) {
  return a.size() > 1 && a[0] == '-' && std::all_of(a.begin() + 1, a.end(), absl::ascii_isdigit);
}

}  // namespace

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagBinding>& flags) {
  ParsedArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      out.positional.insert(out.positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (a.size() < 2 || a[0] != '-' || IsNegativeNumber(a)) {
      out.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::string value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    if (name == "h" || name == "help") {
      out.help = true;
      continue;
    }
    auto binding = std::find_if(flags.begin(), flags.end(),
                                [&](const FlagBinding& b) { return b.name == name; });
    if (binding == flags.end()) {
      return absl::InvalidArgumentError(absl::StrCat(absl::FindCommandLineFlag(name) != nullptr
                                                         ? "this command takes no flag --"
                                                         : "unknown flag --",
                                                     name, " (--help lists the flags)"));
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    std::string error;
    if (!absl::FindCommandLineFlag(name)->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", error));
    }
    binding->apply();
  }
  return out;
}

std::string FlagsHelp(const std::vector<FlagBinding>& flags) {
  std::vector<const FlagBinding*> sorted;
  for (const FlagBinding& f : flags) sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  std::string out;
  for (const FlagBinding* f : sorted) {
    absl::StrAppend(&out, "  --", f->name, "=", f->default_text.empty() ? "\"\"" : f->default_text,
                    "\n      ", f->help, "\n");
  }
  return out;
}

}  // namespace ctxagent
