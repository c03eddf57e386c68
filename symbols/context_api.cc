#include "symbols/context_api.h"

#include <algorithm>

namespace ctxagent::symbols {

std::vector<ConstructorPlan> PlanConstructors(const Pclntab& pclntab, const GoVersion& version) {
  std::vector<ConstructorPlan> out;
  for (const ContextConstructor& c : kContextConstructors) {
    ConstructorPlan p{&c};
    p.in_release = version.AtLeast(c.since);
    p.linked = pclntab.FindFunction(c.name).ok();
    for (const char* name : c.cancel_funcs) {
      if (name == nullptr) continue;
      if (absl::StatusOr<Function> f = pclntab.FindFunction(name); f.ok()) {
        p.cancel_funcs.push_back(*std::move(f));
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<uint64_t> CancelFuncEntries(const std::vector<ConstructorPlan>& plans) {
  std::vector<uint64_t> out;
  for (const ConstructorPlan& p : plans) {
    for (const Function& f : p.cancel_funcs) out.push_back(f.entry);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace ctxagent::symbols
