// Every uprobe ctxagent places, declared once as data: the plan (probe_plan.h), the attach order,
// the BPF configuration (agent/trace/tracer.cc ConfigFor) and `ctxagent symbols` derive from it.
// Adding a probe is a row here, its handler in bpf/ctxagent.bpf.c (a GO_PROBE program the row
// names) and, when it sends what the decoder does not read yet, the decoder's case.
#ifndef CTXAGENT_SYMBOLS_PROBE_TABLE_H_
#define CTXAGENT_SYMBOLS_PROBE_TABLE_H_

#include <cstdint>

#include "bpf/ctxagent.h"  // CREATE_ABI_*, GO_ARGNUM_*: what the handlers are told

namespace ctxagent::symbols {

enum class HookKind {
  kContextCreate,    // propagateCancel: every cancelable context passes here with its parent
  kContextCancel,    // (*cancelCtx).cancel and friends
  kGoroutineCreate,  // runtime.newproc1
  kGoroutineExit,    // runtime.goexit0 / gdestroy
};

// Where in its function a probe sits.
enum class SiteKind {
  kStackCheck,  // the stack-bound check's conditional branch: arguments still in registers
  kEntry,       // the entry (NOSPLIT functions have no stack check): a stack check's fallback
  kReturn,      // every RET
  kHandoff,     // every `CALL ProbeRow::calls` in ProbeRow::in, right after the hooked function
                // returned (newproc.func1's `CALL runqput`: the kernel emulates a CALL, not a RET)
};

// Attach order: endings before beginnings, so that whatever is seen starting is seen ending too
// while the rest are being attached (and the reverse at detach); a goroutine's end first.
enum class AttachOrder { kGoroutineEnd, kContextEnd, kBeginning };
inline bool IsEnding(AttachOrder order) { return order != AttachOrder::kBeginning; }

// When a row's probe is placed, beyond its Go releases.
enum class PlaceWhen {
  kAlways,
  kNoParentGoid,  // only where g has no parentGoid (< 1.21): the creator is read at the entry
  kNoHandoff,     // only where the hook's kHandoff row (an earlier row) placed no probe
};

// One probe: where it goes, for which Go 1.x releases, and what the BPF program does there.
struct ProbeRow {
  const char* function;  // the hooked function
  int since;             // first Go 1.x minor release the row applies to
  int until;             // last one; 0: every later supported release
  HookKind hook;
  SiteKind site;  // kStackCheck, kReturn or kHandoff
  // Its handler: the GO_PROBE program of that name in ctxagent.bpf.c, which opens with the Go
  // signature it reads.
  const char* program;
  AttachOrder order;
  // The registers the handler reads at the site (Go register ABI, amd64), shown by `symbols`.
  const char* args;
  // The argument layout the handler is told (in the attach cookie, < 256); 0: none.
  uint32_t abi = 0;
  PlaceWhen when = PlaceWhen::kAlways;
  // A binary that lacks `function` cannot be traced (else the row is skipped, and `symbols` says
  // the function is not linked in).
  bool required = true;
  const char* in = nullptr;     // kHandoff: the function holding the site
  const char* calls = nullptr;  // kHandoff: the callee whose CALL is the site
};

// Registers verified against each toolchain's source and, for 1.19-1.27, the DWARF location lists
// and disassembly of the ctxprog fixtures (probe_plan_test). Rows of one function are adjacent;
// the functions' order is `symbols`' order.
inline constexpr ProbeRow kProbeTable[] = {
    {"context.propagateCancel", 17, 20, HookKind::kContextCreate, SiteKind::kStackCheck,
     "ctx_create", AttachOrder::kBeginning, "parent=AX:BX child=CX:DI", CREATE_ABI_FUNC},
    // 1.21 made it a method (AfterFunc and WithoutCancel came with it).
    {"context.(*cancelCtx).propagateCancel", 21, 0, HookKind::kContextCreate, SiteKind::kStackCheck,
     "ctx_create", AttachOrder::kBeginning, "c=AX parent=BX:CX child=DI:SI", CREATE_ABI_METHOD},
    // timerCtx and afterFuncCtx cancel through (*cancelCtx).cancel: one probe sees them all.
    {"context.(*cancelCtx).cancel", 17, 19, HookKind::kContextCancel, SiteKind::kStackCheck,
     "ctx_cancel", AttachOrder::kContextEnd, "c=AX removeFromParent=BL err=CX:DI"},
    {"context.(*cancelCtx).cancel", 20, 0, HookKind::kContextCancel, SiteKind::kStackCheck,
     "ctx_cancel", AttachOrder::kContextEnd, "c=AX removeFromParent=BL err=CX:DI cause=SI:R8"},
    // The creator, from callergp.
    {"runtime.newproc1", 17, 17, HookKind::kGoroutineCreate, SiteKind::kStackCheck, "go_spawner",
     AttachOrder::kBeginning, "fn=AX argp=BX narg=CX callergp=DI callerpc=SI", GO_ARGNUM_DI,
     PlaceWhen::kNoParentGoid},
    {"runtime.newproc1", 18, 22, HookKind::kGoroutineCreate, SiteKind::kStackCheck, "go_spawner",
     AttachOrder::kBeginning, "fn=AX callergp=BX callerpc=CX", GO_ARGNUM_BX,
     PlaceWhen::kNoParentGoid},
    {"runtime.newproc1", 23, 0, HookKind::kGoroutineCreate, SiteKind::kStackCheck, "go_spawner",
     AttachOrder::kBeginning, "fn=AX callergp=BX callerpc=CX parked=DI waitreason=SI", GO_ARGNUM_BX,
     PlaceWhen::kNoParentGoid},
    // The new g is only known once newproc1 returned.
    {"runtime.newproc1", 17, 0, HookKind::kGoroutineCreate, SiteKind::kHandoff, "go_handed_off",
     AttachOrder::kBeginning, "newg=BX", 0, PlaceWhen::kAlways, true, "runtime.newproc.func1",
     "runtime.runqput"},
    {"runtime.newproc1", 17, 0, HookKind::kGoroutineCreate, SiteKind::kReturn, "go_returned",
     AttachOrder::kBeginning, "newg=AX", 0, PlaceWhen::kNoHandoff},
    // 1.22 split goexit0 into gdestroy + schedule; gdestroy also covers coroutine exits.
    {"runtime.goexit0", 17, 21, HookKind::kGoroutineExit, SiteKind::kStackCheck, "go_exit",
     AttachOrder::kGoroutineEnd, "gp=AX"},
    {"runtime.gdestroy", 22, 0, HookKind::kGoroutineExit, SiteKind::kStackCheck, "go_exit",
     AttachOrder::kGoroutineEnd, "gp=AX"},
};

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_PROBE_TABLE_H_
