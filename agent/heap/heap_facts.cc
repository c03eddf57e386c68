#include "agent/heap/heap_facts.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_split.h"
#include "symbols/context_api.h"
#include "symbols/go_facts.h"
#include "symbols/go_status.h"

namespace ctxagent::heap {

WaitClass ClassifyWait(const symbols::GoVersion& version, const GoroutineState& g) {
  if (!g.known || (g.status != symbols::kGoWaiting && g.status != symbols::kGoLeaked)) {
    return WaitClass::kRoot;
  }
  const std::string reason = symbols::WaitReasonString(version, g.wait_reason);
  if (reason == "select (no cases)" || reason == "chan send (nil chan)" ||
      reason == "chan receive (nil chan)") {
    return WaitClass::kForever;
  }
  if (reason == "chan send" || reason == "chan receive" || reason == "select") {
    return g.channels.empty() ? WaitClass::kRoot : WaitClass::kChannel;
  }
  // "semacquire": how releases before 1.20 name a Mutex, RWMutex or WaitGroup wait.
  if (reason == "sync.Cond.Wait" || reason == "sync.Mutex.Lock" || reason == "sync.RWMutex.RLock" ||
      reason == "sync.RWMutex.Lock" || reason == "sync.WaitGroup.Wait" || reason == "semacquire") {
    return g.sync_object != 0 ? WaitClass::kSync : WaitClass::kRoot;
  }
  return WaitClass::kRoot;
}

HeapFacts::HeapBits HeapBitsLayout(
    const symbols::GoVersion& version,
    const std::vector<std::pair<std::string, std::string>>& settings) {
  const absl::StatusOr<symbols::GoRuntimeFacts> runtime = symbols::RuntimeFactsForVersion(version);
  if (!runtime.ok()) return HeapFacts::HeapBits::kNone;
  std::vector<std::string> experiments;
  for (const auto& [key, value] : settings) {
    if (key == "GOEXPERIMENT") experiments = absl::StrSplit(value, ',');
  }
  auto set = [&](absl::string_view e) { return absl::c_linear_search(experiments, e); };
  if (runtime->heap_bits_in_span == 0 || set("noallocheaders")) return HeapFacts::HeapBits::kNone;
  const bool inline_marks =
      runtime->span_inline_mark_bits != 0 ? !set("nogreenteagc") : set("greenteagc");
  return inline_marks ? HeapFacts::HeapBits::kBeforeInlineMarks : HeapFacts::HeapBits::kSpanEnd;
}

HeapFacts HeapFactsFor(const symbols::GoBinary& bin, uint64_t bias) {
  HeapFacts facts;
  facts.offsets = bin.offsets();
  facts.version = bin.build_info().version;
  const symbols::GoRuntimeFacts runtime =
      symbols::RuntimeFactsForVersion(facts.version).value_or(symbols::GoRuntimeFacts{});
  facts.span_index_u16 = runtime.mspan_index_u16 != 0;
  facts.sync_waits_on_g = runtime.sync_waits_on_g != 0;
  facts.heap_bits = HeapBitsLayout(facts.version, bin.build_info().settings);
  facts.gc_mask_on_demand = runtime.gc_mask_on_demand != 0;
  if (bin.SemtableAddress().ok()) facts.semtable = *bin.SemtableAddress() + bias;
  if (bin.MheapAddress().ok()) facts.mheap = *bin.MheapAddress() + bias;
  if (bin.pclntab().moduledata() != 0) facts.moduledata = bin.pclntab().moduledata() + bias;
  facts.cancel_funcs = symbols::CancelFuncEntries(
      symbols::PlanConstructors(bin.pclntab(), bin.build_info().version));
  for (uint64_t& pc : facts.cancel_funcs) pc += bias;
  facts.frames = [&tab = bin.pclntab(), bias](uint64_t pc) { return tab.FrameMapsAt(pc - bias); };
  return facts;
}

}  // namespace ctxagent::heap
