#include "symbols/go_status.h"

#include "symbols/go_facts.h"

namespace ctxagent::symbols {
namespace {

// runtime2.go `waitReasonStrings` per release, indexed by waitReason. The enum is not append-only:
// 1.20 replaced "timer goroutine (idle)", 1.24 and 1.25 inserted values, 1.26 reordered it.
// [dw] read from each fixture toolchain's binary (go_status_test compares the whole array with the
// binary's runtime.waitReasonStrings); [src] from the release's runtime2.go.
// clang-format off: the runtime's order, several per line
// 1.17-1.19 [src 1.17.13, 1.18; dw 1.19]
constexpr const char* kWait17[] = {
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "timer goroutine (idle)", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
    "preempted", "debug call",
};
// 1.20-1.21 [src 1.20.6, dw 1.21]: "timer goroutine (idle)" (21) replaced by sync.Mutex.Lock;
// + sync.RWMutex, GC worker (active), GC mark termination, stopping the world
constexpr const char* kWait20[] = {
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
    "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call",
    "GC mark termination", "stopping the world",
};
// 1.22 [dw]: + flushing proc caches .. coroutine
constexpr const char* kWait22[] = {
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
    "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call",
    "GC mark termination", "stopping the world", "flushing proc caches", "trace goroutine status",
    "trace proc status", "page trace flush", "coroutine",
};
// 1.23 [dw]: + GC weak to strong wait
constexpr const char* kWait23[] = {
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
    "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call",
    "GC mark termination", "stopping the world", "flushing proc caches", "trace goroutine status",
    "trace proc status", "page trace flush", "coroutine", "GC weak to strong wait",
};
// 1.24 [dw]: sync.WaitGroup.Wait inserted; + synctest
constexpr const char* kWait24[] = {
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait",
    "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)",
    "preempted", "debug call", "GC mark termination", "stopping the world", "flushing proc caches",
    "trace goroutine status", "trace proc status", "page trace flush", "coroutine",
    "GC weak to strong wait", "synctest.Run", "synctest.Wait", "chan receive (synctest)",
    "chan send (synctest)", "select (synctest)",
};
// 1.25 [src 1.25.3]: GOMAXPROCS updater (idle) inserted; synctest -> durable; + cleanup wait
constexpr const char* kWait25[] = {
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "GOMAXPROCS updater (idle)", "semacquire",
    "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock",
    "sync.WaitGroup.Wait", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
    "GC worker (active)", "preempted", "debug call", "GC mark termination", "stopping the world",
    "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush",
    "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait",
    "chan receive (durable)", "chan send (durable)", "select (durable)",
    "sync.WaitGroup.Wait (durable)", "cleanup wait",
};
// 1.26-1.27 [dw]: reordered
constexpr const char* kWait26[] = {
    "", "GC assist marking", "IO wait", "dumping heap", "garbage collection",
    "garbage collection scan", "panicwait", "GC assist wait", "GC sweep wait", "GC scavenge wait",
    "finalizer wait", "force gc (idle)", "GOMAXPROCS updater (idle)", "semacquire", "sleep",
    "chan receive (nil chan)", "chan send (nil chan)", "select (no cases)", "select",
    "chan receive", "chan send", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock",
    "sync.RWMutex.Lock", "sync.WaitGroup.Wait", "trace reader (blocked)", "wait for GC cycle",
    "GC worker (idle)", "GC worker (active)", "preempted", "debug call", "GC mark termination",
    "stopping the world", "flushing proc caches", "trace goroutine status", "trace proc status",
    "page trace flush", "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait",
    "chan receive (durable)", "chan send (durable)", "select (durable)",
    "sync.WaitGroup.Wait (durable)", "cleanup wait",
};
// clang-format on

struct WaitReasonList {
  int since;  // Go minor version the list applies from, until the next entry
  absl::Span<const char* const> strings;
};
constexpr WaitReasonList kWaitReasons[] = {
    {17, kWait17}, {20, kWait20}, {22, kWait22}, {23, kWait23},
    {24, kWait24}, {25, kWait25}, {26, kWait26},
};

// traceback.go `gStatusStrings`: the unused values 5 and 7 print as "".
constexpr const char* kStatus17[] = {"idle", "runnable", "running", "syscall",   "waiting",
                                     "",     "dead",     "",        "copystack", "preempted"};
constexpr const char* kStatus26[] = {
    "idle", "runnable", "running",   "syscall",   "waiting", "",
    "dead", "",         "copystack", "preempted", "leaked",  "waiting for cgo callback"};

}  // namespace

absl::Span<const char* const> WaitReasonStrings(const GoVersion& version) {
  if (!IsSupportedGoVersion(version)) return {};
  absl::Span<const char* const> out;
  for (const WaitReasonList& l : kWaitReasons) {
    if (l.since <= version.minor) out = l.strings;
  }
  return out;
}

std::string WaitReasonString(const GoVersion& version, uint8_t reason) {
  absl::Span<const char* const> strings = WaitReasonStrings(version);
  return reason < strings.size() ? strings[reason] : "unknown wait reason";
}

std::string GoroutineStateString(const GoVersion& version, uint32_t atomicstatus,
                                 uint8_t waitreason) {
  const bool scan = (atomicstatus & kGoScanBit) != 0;
  const uint32_t status = atomicstatus & ~kGoScanBit;
  const bool go126 = version.AtLeast(26);
  absl::Span<const char* const> names =
      go126 ? absl::Span<const char* const>(kStatus26) : absl::Span<const char* const>(kStatus17);
  std::string out = status < names.size() ? names[status] : "???";
  const bool leaked = go126 && status == kGoLeaked;
  if ((status == kGoWaiting || leaked) && waitreason != 0) {
    out = WaitReasonString(version, waitreason);
  }
  if (leaked) out += " (leaked)";
  if (scan) out += " (scan)";
  return out;
}

}  // namespace ctxagent::symbols
