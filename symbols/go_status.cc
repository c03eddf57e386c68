#include "symbols/go_status.h"

#include <vector>

#include "symbols/go_facts.h"

namespace ctxagent::symbols {
namespace {

// A value no release defines (a hole would be a table error; go_status_test checks none exist).
constexpr char kNoWaitReason[] = "?";

// runtime2.go `waitReasonStrings`: each string with its waitReason value per release (-1: gone).
// The enum is not append-only: 1.20 replaced "timer goroutine (idle)" (21) by sync.Mutex.Lock;
// 1.24 inserted sync.WaitGroup.Wait, 1.25 "GOMAXPROCS updater (idle)"; 1.25 renamed the synctest
// reasons "(durable)"; 1.26 reordered it. [dw] 1.19, 1.21-1.24, 1.26, 1.27: go_status_test
// compares every release's array with the fixture binary's runtime.waitReasonStrings; [src]
// 1.17.13, 1.18, 1.20.6, 1.25.3 from runtime2.go.
struct WaitReasonFact {
  const char* text;
  Since history[kMaxHistory];
};
// clang-format off: one string per row
constexpr WaitReasonFact kWaitReasons[] = {
    {"", {{17, 0}}},
    {"GC assist marking", {{17, 1}}},
    {"IO wait", {{17, 2}}},
    {"chan receive (nil chan)", {{17, 3}, {26, 15}}},
    {"chan send (nil chan)", {{17, 4}, {26, 16}}},
    {"dumping heap", {{17, 5}, {26, 3}}},
    {"garbage collection", {{17, 6}, {26, 4}}},
    {"garbage collection scan", {{17, 7}, {26, 5}}},
    {"panicwait", {{17, 8}, {26, 6}}},
    {"select", {{17, 9}, {26, 18}}},
    {"select (no cases)", {{17, 10}, {26, 17}}},
    {"GC assist wait", {{17, 11}, {26, 7}}},
    {"GC sweep wait", {{17, 12}, {26, 8}}},
    {"GC scavenge wait", {{17, 13}, {26, 9}}},
    {"chan receive", {{17, 14}, {26, 19}}},
    {"chan send", {{17, 15}, {26, 20}}},
    {"finalizer wait", {{17, 16}, {26, 10}}},
    {"force gc (idle)", {{17, 17}, {26, 11}}},
    {"semacquire", {{17, 18}, {25, 19}, {26, 13}}},
    {"sleep", {{17, 19}, {25, 20}, {26, 14}}},
    {"sync.Cond.Wait", {{17, 20}, {25, 21}}},
    {"timer goroutine (idle)", {{17, 21}, {20, -1}}},
    {"trace reader (blocked)", {{17, 22}, {20, 24}, {24, 25}, {25, 26}}},
    {"wait for GC cycle", {{17, 23}, {20, 25}, {24, 26}, {25, 27}}},
    {"GC worker (idle)", {{17, 24}, {20, 26}, {24, 27}, {25, 28}}},
    {"preempted", {{17, 25}, {20, 28}, {24, 29}, {25, 30}}},
    {"debug call", {{17, 26}, {20, 29}, {24, 30}, {25, 31}}},
    {"sync.Mutex.Lock", {{20, 21}, {25, 22}}},
    {"sync.RWMutex.RLock", {{20, 22}, {25, 23}}},
    {"sync.RWMutex.Lock", {{20, 23}, {25, 24}}},
    {"GC worker (active)", {{20, 27}, {24, 28}, {25, 29}}},
    {"GC mark termination", {{20, 30}, {24, 31}, {25, 32}}},
    {"stopping the world", {{20, 31}, {24, 32}, {25, 33}}},
    {"flushing proc caches", {{22, 32}, {24, 33}, {25, 34}}},
    {"trace goroutine status", {{22, 33}, {24, 34}, {25, 35}}},
    {"trace proc status", {{22, 34}, {24, 35}, {25, 36}}},
    {"page trace flush", {{22, 35}, {24, 36}, {25, 37}}},
    {"coroutine", {{22, 36}, {24, 37}, {25, 38}}},
    {"GC weak to strong wait", {{23, 37}, {24, 38}, {25, 39}}},
    {"sync.WaitGroup.Wait", {{24, 24}, {25, 25}}},
    {"synctest.Run", {{24, 39}, {25, 40}}},
    {"synctest.Wait", {{24, 40}, {25, 41}}},
    {"chan receive (synctest)", {{24, 41}, {25, -1}}},
    {"chan send (synctest)", {{24, 42}, {25, -1}}},
    {"select (synctest)", {{24, 43}, {25, -1}}},
    {"GOMAXPROCS updater (idle)", {{25, 18}, {26, 12}}},
    {"chan receive (durable)", {{25, 42}}},
    {"chan send (durable)", {{25, 43}}},
    {"select (durable)", {{25, 44}}},
    {"sync.WaitGroup.Wait (durable)", {{25, 45}}},
    {"cleanup wait", {{25, 46}}},
};
// clang-format on

// traceback.go `gStatusStrings`: the unused values 5 and 7 print as ""; the last two exist from
// 1.26 (GoRuntimeFacts::g_status_dead_extra).
constexpr const char* kStatusNames[] = {
    "idle", "runnable", "running",   "syscall",   "waiting", "",
    "dead", "",         "copystack", "preempted", "leaked",  "waiting for cgo callback"};

}  // namespace

std::vector<std::string> WaitReasonStrings(const GoVersion& version) {
  std::vector<std::string> out;
  if (!IsSupportedGoVersion(version)) return out;
  for (const WaitReasonFact& f : kWaitReasons) {
    const int32_t value = ValueAt(f.history, version.minor);
    if (value < 0) continue;
    if (static_cast<size_t>(value) >= out.size()) out.resize(value + 1, kNoWaitReason);
    out[value] = f.text;
  }
  return out;
}

std::string WaitReasonString(const GoVersion& version, uint8_t reason) {
  if (IsSupportedGoVersion(version)) {
    for (const WaitReasonFact& f : kWaitReasons) {
      if (ValueAt(f.history, version.minor) == reason) return f.text;
    }
  }
  return "unknown wait reason";
}

std::string GoroutineStateString(const GoVersion& version, uint32_t atomicstatus,
                                 uint8_t waitreason) {
  const bool scan = (atomicstatus & kGoScanBit) != 0;
  const uint32_t status = atomicstatus & ~kGoScanBit;
  const GoRuntimeFacts facts = RuntimeFactsForVersion(version).value_or(GoRuntimeFacts{});
  const uint32_t names =
      facts.g_status_dead_extra >= 0 ? facts.g_status_dead_extra + 1 : kGoPreempted + 1;
  std::string out = status < names ? kStatusNames[status] : "???";
  const bool leaked = facts.g_status_leaked >= 0 && status == static_cast<uint32_t>(kGoLeaked);
  if ((status == kGoWaiting || leaked) && waitreason != 0) {
    out = WaitReasonString(version, waitreason);
  }
  if (leaked) out += " (leaked)";
  if (scan) out += " (scan)";
  return out;
}

}  // namespace ctxagent::symbols
