#include "agent/trace/liveness.h"

#include <algorithm>
#include <cstring>

#include "agent/trace/cancel_ctx.h"
#include "symbols/go_status.h"

namespace ctxagent {

using symbols::kGoDead;
using symbols::kGoScanBit;

std::vector<LivenessOracle::State> MemoryLiveness::Contexts(
    const std::vector<ContextQuery>& queries) {
  std::vector<State> out(queries.size(), State::kUnknown);
  if (offsets_.cancelctx_err < 0) return out;
  const std::vector<uint64_t> base =
      CancelCtxAddresses(offsets_, queries, [this](auto& r) { process_.ReadMany(r); });
  // One read per context: from the parent interface at 0 through the first word of err.
  const size_t span = static_cast<size_t>(offsets_.cancelctx_err) + 8;
  std::vector<uint8_t> buf(queries.size() * span);
  std::vector<Process::ReadRequest> reads;
  std::vector<size_t> read_of;
  for (size_t i = 0; i < queries.size(); ++i) {
    if (base[i] == 0) continue;
    reads.push_back({base[i], &buf[i * span], span});
    read_of.push_back(i);
  }
  process_.ReadMany(reads);
  for (size_t k = 0; k < reads.size(); ++k) {
    if (!reads[k].ok) continue;
    const size_t i = read_of[k];
    uint64_t parent_word, err_word;
    memcpy(&parent_word, &buf[i * span + 8], 8);
    memcpy(&err_word, &buf[i * span + offsets_.cancelctx_err], 8);
    if (queries[i].parent_word != 0 && parent_word != queries[i].parent_word) {
      out[i] = State::kGone;
    } else {
      out[i] = err_word != 0 ? State::kEnded : State::kLive;
    }
  }
  return out;
}

std::vector<LivenessOracle::State> MemoryLiveness::Goroutines(
    const std::vector<GoroutineQuery>& queries) {
  std::vector<State> out(queries.size(), State::kUnknown);
  if (offsets_.g_goid < 0 || offsets_.g_atomicstatus < 0) return out;
  // goid and atomicstatus are a few bytes apart in every version: one read covers both.
  const int32_t from = std::min(offsets_.g_goid, offsets_.g_atomicstatus);
  const int32_t to = std::max(offsets_.g_goid + 8, offsets_.g_atomicstatus + 4);
  const size_t span = static_cast<size_t>(to - from);
  std::vector<uint8_t> buf(queries.size() * span);
  std::vector<Process::ReadRequest> reads;
  for (size_t i = 0; i < queries.size(); ++i) {
    reads.push_back({queries[i].g + from, &buf[i * span], span});
  }
  process_.ReadMany(reads);
  for (size_t i = 0; i < queries.size(); ++i) {
    if (!reads[i].ok) continue;
    uint64_t goid;
    uint32_t status;
    memcpy(&goid, &buf[i * span + (offsets_.g_goid - from)], 8);
    memcpy(&status, &buf[i * span + (offsets_.g_atomicstatus - from)], 4);
    const bool dead = goid != queries[i].goid || (status & ~kGoScanBit) == kGoDead;
    out[i] = dead ? State::kEnded : State::kLive;
  }
  return out;
}

}  // namespace ctxagent
