#include "agent/profile/stack_symbolizer.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace ctxagent::profile {
namespace {

// runtime.isExportedRuntime: exported functions and exported methods on exported types.
bool IsExportedRuntime(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "runtime.")) return false;
  absl::string_view receiver;
  if (size_t dot = name.rfind('.'); dot != absl::string_view::npos) {
    receiver = name.substr(0, dot);
    name = name.substr(dot + 1);
    if (receiver.size() >= 3 && receiver[0] == '(' && receiver[1] == '*' &&
        receiver.back() == ')') {
      receiver = receiver.substr(2, receiver.size() - 3);
    }
  }
  auto upper = [](absl::string_view s) { return !s.empty() && s[0] >= 'A' && s[0] <= 'Z'; };
  return upper(name) && (receiver.empty() || upper(receiver));
}

}  // namespace

const PcInfo& StackSymbolizer::Lookup(uint64_t pc) {
  auto [it, inserted] = cache_.try_emplace(pc);
  if (!inserted) return it->second;
  PcInfo& info = it->second;
  const uint64_t link = pc - bias_;
  if (auto frames = table_.Symbolize(link - 1); frames.ok()) info.frames = *std::move(frames);
  if (auto fn = table_.FunctionForPC(link - 1); fn.ok()) {
    info.function = fn->name;
    info.entry = fn->entry + bias_;
  }
  return info;
}

bool ShownInTraceback(const std::string& function, bool first_frame) {
  if (function == "runtime.gopanic" && !first_frame) return true;
  return absl::StrContains(function, '.') &&
         (!absl::StartsWith(function, "runtime.") || IsExportedRuntime(function));
}

std::string PrintedFunctionName(const std::string& function) {
  if (function == "runtime.gopanic") return "panic";
  // runtime.funcNamePiecesForPrint: type arguments (shapes) are printed as [...].
  const size_t open = function.find('[');
  const size_t close = function.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return function;
  return function.substr(0, open) + "[...]" + function.substr(close + 1);
}

}  // namespace ctxagent::profile
