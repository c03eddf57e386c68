#include "agent/heap/heap_facts.h"

#include <string>

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

HeapFacts HeapFactsFor(const symbols::GoBinary& bin, uint64_t bias) {
  HeapFacts facts;
  facts.offsets = bin.offsets();
  facts.version = bin.build_info().version;
  const symbols::GoRuntimeFacts runtime =
      symbols::RuntimeFactsForVersion(facts.version).value_or(symbols::GoRuntimeFacts{});
  facts.span_index_u16 = runtime.mspan_index_u16 != 0;
  facts.sync_waits_on_g = runtime.sync_waits_on_g != 0;
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
