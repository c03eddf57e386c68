// Before Go 1.26 a goroutine parked on a Mutex, RWMutex or WaitGroup does not name the primitive
// in its g: its sudog sits only in the runtime's semaphore table, 251 roots each holding a treap of
// sudogs keyed by semaphore address (sudog.elem; children in prev/next), with the other waiters on
// one address chained through waitlink. Reading that table gives each such goroutine its
// primitive, so the mark can tell whether anything that can run still holds it.
//
// A Cond's waiters are not in that table: each one's sudog is queued only on the Cond's notify
// list (notifyList.head -> sudog.next -> ... -> tail), and its g does not point to it.
// notifyListWait keeps the sudog live across the park (it releases it after waking), so the sudog's
// address sits in a slot of the waiter's innermost frames, just above its saved SP.
#ifndef CTXAGENT_AGENT_HEAP_SEMA_H_
#define CTXAGENT_AGENT_HEAP_SEMA_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "agent/heap/heap_facts.h"
#include "agent/lineage/goroutine_state.h"
#include "symbols/go_offsets.h"

namespace ctxagent::heap {

// Sets sync_object (the semaphore's address) and adds the sudog to `sudogs` of every goroutine
// in `goroutines` parked in a semaphore acquire that the table at `semtable` lists. The table
// changes under the read: a sudog whose g is not parked on a semaphore is passed over. DataLoss
// when the table holds more sudogs than any program parks (a corrupt or cyclic treap).
absl::Status AddSemaphoreWaits(RemoteMemory& memory, uint64_t semtable,
                               const symbols::GoOffsets& offsets, const symbols::GoVersion& version,
                               std::vector<GoroutineState>& goroutines);

// Gives every goroutine parked in sync.Cond.Wait (before Go 1.26) its sudog as sync_object. The
// sudog is left out of `sudogs` so that the mark scans it: the Cond points to the list's head and
// each sudog to the next, so reaching the Cond reaches every waiter queued on it. A waiter whose
// sudog is not found stays a root (a miss, never a false leak).
void AddCondWaits(RemoteMemory& memory, const symbols::GoOffsets& offsets,
                  const symbols::GoVersion& version, std::vector<GoroutineState>& goroutines);

}  // namespace ctxagent::heap

#endif  // CTXAGENT_AGENT_HEAP_SEMA_H_
