// Return addresses of a goroutine's stack named as the runtime's traceback and pprof name them:
// the frames at the call (inlined frames expanded, innermost first) and the physical function the
// address lies in, from the binary's pclntab (stripped or not; PIE through the load bias).
#ifndef CTXAGENT_AGENT_PROFILE_STACK_SYMBOLIZER_H_
#define CTXAGENT_AGENT_PROFILE_STACK_SYMBOLIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "symbols/pclntab.h"

namespace ctxagent::profile {

struct PcInfo {
  std::vector<symbols::SourceFrame> frames;  // at pc - 1, innermost first; empty outside the text
  std::string function;                      // the physical function ("" outside the text)
  uint64_t entry = 0;                        // its entry, in the target's address space
};

class StackSymbolizer {
 public:
  // `table` must outlive the symbolizer; `bias` is the executable's load bias in the target.
  StackSymbolizer(const symbols::Pclntab& table, uint64_t bias) : table_(table), bias_(bias) {}

  // `pc` is a return address in the target's address space. The reference stays valid.
  const PcInfo& Lookup(uint64_t pc);

 private:
  const symbols::Pclntab& table_;
  uint64_t bias_;
  absl::node_hash_map<uint64_t, PcInfo> cache_;  // node map: references outlive rehashes
};

// The runtime's traceback rules (runtime/traceback.go showfuncinfo, level 1 = GOTRACEBACK's
// default): whether `function` is printed, and how its name is printed (type arguments as [...],
// runtime.gopanic as "panic").
bool ShownInTraceback(const std::string& function, bool first_frame);
std::string PrintedFunctionName(const std::string& function);

}  // namespace ctxagent::profile

#endif  // CTXAGENT_AGENT_PROFILE_STACK_SYMBOLIZER_H_
