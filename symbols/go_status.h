// What a goroutine is doing, as the runtime records it in its g: the status values of
// g.atomicstatus and the wait reasons of g.waitreason, printed exactly as the runtime's own
// traceback (and so pprof's goroutine?debug=2) prints them, per Go release.
#ifndef CTXAGENT_SYMBOLS_GO_STATUS_H_
#define CTXAGENT_SYMBOLS_GO_STATUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "symbols/buildinfo.h"

namespace ctxagent::symbols {

// runtime._G* values of g.atomicstatus: the same numbers in every release 1.17..1.27 (later
// releases only added values: _Gleaked and _Gdeadextra in 1.26, see GoRuntimeFacts).
enum GoStatus : uint32_t {
  kGoIdle = 0,
  kGoRunnable = 1,
  kGoRunning = 2,
  kGoSyscall = 3,
  kGoWaiting = 4,
  kGoDead = 6,
  kGoCopystack = 8,
  kGoPreempted = 9,
  kGoLeaked = 10,     // 1.26+: found unreachable-blocked by the goroutine leak detector (a GC)
  kGoDeadExtra = 11,  // 1.26+: dead, attached to an extra M for cgo callbacks
};
// Or'ed into the status while the GC scans the goroutine's stack (all releases).
inline constexpr uint32_t kGoScanBit = 0x1000;

// runtime.waitReasonStrings of a release, indexed by waitReason; empty outside the supported range.
std::vector<std::string> WaitReasonStrings(const GoVersion& version);

// waitReason(reason).String() of that release: "chan receive", "select", "sleep", "IO wait",
// "semacquire", "sync.Mutex.Lock" (1.20+), ...; "" for waitReasonZero and "unknown wait reason"
// past the release's last value, as the runtime prints them.
std::string WaitReasonString(const GoVersion& version, uint8_t reason);

// The state inside the brackets of the runtime's goroutine header, `goroutine 7 [chan receive]:`,
// without the ", N minutes" wait time: the wait reason while waiting (or leaked) with a reason,
// else the status name ("running", "runnable", "syscall", ...), with " (leaked)" and " (scan)"
// suffixes as the runtime adds them. (The synctest " (durable)" suffix is not reproduced.)
std::string GoroutineStateString(const GoVersion& version, uint32_t atomicstatus,
                                 uint8_t waitreason);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_GO_STATUS_H_
