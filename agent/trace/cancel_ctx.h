// Where a context's cancelCtx lives in the target's memory: the layout every memory read of a
// context (liveness, Done channels) starts from.
#ifndef CTXAGENT_AGENT_TRACE_CANCEL_CTX_H_
#define CTXAGENT_AGENT_TRACE_CANCEL_CTX_H_

#include <cstdint>
#include <vector>

#include "agent/lineage/events.h"
#include "agent/trace/process.h"
#include "symbols/go_offsets.h"

namespace ctxagent {

// The cancelCtx address of each query (`addr`, `kind`), 0 where it cannot be read: inline in every
// context type, except behind a pointer in Go 1.20's timerCtx, read in one batch by `read_many`
// (a callable taking std::vector<Process::ReadRequest>&).
template <typename Query, typename ReadMany>
std::vector<uint64_t> CancelCtxAddresses(const symbols::GoOffsets& o,
                                         const std::vector<Query>& queries, ReadMany&& read_many) {
  std::vector<uint64_t> base(queries.size());
  std::vector<Process::ReadRequest> pointers;
  std::vector<size_t> pointer_of;
  for (size_t i = 0; i < queries.size(); ++i) {
    base[i] = queries[i].addr;
    if (queries[i].kind != ContextKind::kTimer) continue;
    if (o.timerctx_cancelctx_is_ptr) {
      pointers.push_back({queries[i].addr + o.timerctx_cancelctx, &base[i], sizeof(uint64_t)});
      pointer_of.push_back(i);
    } else if (o.timerctx_cancelctx > 0) {
      base[i] += o.timerctx_cancelctx;
    }
  }
  if (!pointers.empty()) read_many(pointers);
  for (size_t k = 0; k < pointers.size(); ++k) {
    if (!pointers[k].ok) base[pointer_of[k]] = 0;
  }
  return base;
}

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_CANCEL_CTX_H_
