#include "agent/profile/goroutine_stacks.h"

#include "agent/heap/unwind.h"
#include "symbols/go_status.h"

namespace ctxagent::profile {
namespace {

// The same goroutine, still parked where it was unwound from.
bool Unchanged(const GoroutineState& before, const GoroutineState& after) {
  return after.known && after.goid == before.goid && after.status == before.status &&
         after.sched_pc == before.sched_pc && after.sched_sp == before.sched_sp &&
         after.sched_bp == before.sched_bp && after.wait_reason == before.wait_reason;
}

}  // namespace

absl::StatusOr<StackSnapshot> ReadStacks(GoroutineReader& reader, heap::RemoteMemory& memory,
                                         StackSymbolizer& symbolizer, absl::Time now) {
  absl::StatusOr<std::vector<GoroutineState>> every = reader.ReadEvery();
  if (!every.ok()) return every.status();
  StackSnapshot out;
  out.taken = now;
  std::vector<GoroutineStateReader::Query> again;
  for (GoroutineState& g : *every) {
    if (g.system) continue;
    if (!g.known) {
      ++out.changed;
      continue;
    }
    GoroutineStack s;
    s.pcs = heap::Unwind(memory, g, kMaxFrames);
    again.push_back({g.goid, g.g});
    s.state = std::move(g);
    out.goroutines.push_back(std::move(s));
  }
  // The stacks were read after the states: a goroutine that moved meanwhile is left out.
  const std::vector<GoroutineState> after = reader.Read(again);
  size_t kept = 0;
  for (size_t i = 0; i < out.goroutines.size(); ++i) {
    GoroutineStack& s = out.goroutines[i];
    const bool running = s.state.status == symbols::kGoRunning;
    if (!Unchanged(s.state, after[i]) || (!running && s.pcs.empty())) {
      ++out.changed;
      continue;
    }
    if (!running && symbolizer.Lookup(s.pcs.back()).function != "runtime.goexit") {
      ++out.incomplete;
      continue;
    }
    if (running) ++out.running;
    if (kept != i) out.goroutines[kept] = std::move(s);  // never onto itself: a move empties
    ++kept;
  }
  out.goroutines.resize(kept);
  return out;
}

std::string WaitBucket(absl::Time since, absl::Time now) {
  if (since == absl::InfinitePast()) return "";
  const absl::Duration d = now - since;
  if (d < absl::Minutes(1)) return "<1m";
  if (d < absl::Minutes(10)) return "1m-10m";
  if (d < absl::Hours(1)) return "10m-1h";
  if (d < absl::Hours(24)) return "1h-1d";
  return ">1d";
}

}  // namespace ctxagent::profile
