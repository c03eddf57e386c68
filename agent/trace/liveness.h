// Reads from a running Go process whether contexts and goroutines the probes saw are still live:
// what the lineage asks after the probes were detached for sampling.
#ifndef CTXAGENT_AGENT_TRACE_LIVENESS_H_
#define CTXAGENT_AGENT_TRACE_LIVENESS_H_

#include <vector>

#include "agent/lineage/lineage.h"
#include "agent/trace/process.h"
#include "symbols/go_offsets.h"

namespace ctxagent {

class MemoryLiveness : public LivenessOracle {
 public:
  // Both must outlive this object.
  MemoryLiveness(const Process& process, const symbols::GoOffsets& offsets)
      : process_(process), offsets_(offsets) {}

  // A context is cancelled once its cancelCtx.err is set (the first word of an error interface or
  // of an atomic.Value is non-zero). It is gone when the parent word at +8 no longer matches: the
  // GC freed it and the memory holds something else.
  std::vector<State> Contexts(const std::vector<ContextQuery>& queries) override;
  // A goroutine has exited when its g is dead (_Gdead) or was reused for a new goid.
  std::vector<State> Goroutines(const std::vector<GoroutineQuery>& queries) override;

 private:
  const Process& process_;
  const symbols::GoOffsets& offsets_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_LIVENESS_H_
