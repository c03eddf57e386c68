#include "symbols/go_facts.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ctxagent::symbols {

bool IsSupportedGoVersion(const GoVersion& v) {
  return v.major == 1 && v.minor >= kMinGoMinor && v.minor <= kMaxGoMinor;
}

std::string SupportedGoVersions() {
  return absl::StrCat("go1.", kMinGoMinor, " to go1.", kMaxGoMinor);
}

int32_t ValueAt(const Since (&history)[kMaxHistory], int minor) {
  int32_t value = -1;
  for (const Since& s : history) {
    if (s.minor == 0 || s.minor > minor) break;
    value = s.value;
  }
  return value;
}

namespace {

using G = GoOffsets;

// The table (amd64). Sources per release, oldest first, each `{since, offset}` holding until the
// next: [dw] the DWARF of the fixture toolchains (1.19, 1.21-1.24, 1.26, 1.27; go_offsets_test
// holds every entry to it on every fixture), [src] the runtime and context source of 1.17.13,
// 1.18, 1.20.6 and 1.25.3, [run] the heap facts of 1.17, 1.18 and 1.20 (mheap, mspan, moduledata),
// read in running esbuild releases built with go1.17.2, 1.18.4 and 1.20.12 (stripped): the one
// offset where allspans is a slice of mspans (page-aligned startAddr, sane npages), where every
// in-use span's class, state and element size agree with its pages, and where gcdatamask and
// gcbssmask are bitvectors of (edata - data) / 8 and (ebss - bss) / 8 bits; the same search finds
// the [dw] entries of 1.19 and 1.22. realbin's esbuild marks hold them (real_servers_test).
//
// runtime.g: 1.21 moved the trace fields into g.trace (after startpc) and added parentGoid;
// 1.23 added syscallbp (+8 from stktopsp on); 1.25 dropped gobuf.ret (-8 from syscallsp on);
// 1.26 added fipsOnlyBypass/ditWanted/secret after sig (+8 from writebuf on).
// hchan: 1.23 added `timer *timer` after closed (+8 from elemtype on).
// sudog: 1.26 made elem and c two-word maybeTraceablePtr values (+8 after elem, +16 after c).
// context: 1.20 added cancelCtx.cause and made timerCtx hold *cancelCtx; 1.21 embeds it again.
// clang-format off: one fact per row
constexpr OffsetFact kOffsetFacts[] = {
    {"g_goid", &G::g_goid, {{17, 152}, {23, 160}, {25, 152}}, "runtime.g", "goid"},
    {"g_parent_goid",
     &G::g_parent_goid,
     {{17, -1}, {21, 272}, {23, 280}, {25, 272}, {26, 280}},
     "runtime.g",
     "parentGoid"},
    {"g_gopc",
     &G::g_gopc,
     {{17, 296}, {21, 280}, {23, 288}, {25, 280}, {26, 288}},
     "runtime.g",
     "gopc"},
    {"g_startpc",
     &G::g_startpc,
     {{17, 312}, {21, 296}, {23, 304}, {25, 296}, {26, 304}},
     "runtime.g",
     "startpc"},
    {"g_atomicstatus",
     &G::g_atomicstatus,
     {{17, 144}, {23, 152}, {25, 144}},
     "runtime.g",
     "atomicstatus"},
    {"g_sched", &G::g_sched, {{17, 56}}, "runtime.g", "sched"},
    {"g_m", &G::g_m, {{17, 48}}, "runtime.g", "m"},
    {"g_waitsince", &G::g_waitsince, {{17, 168}, {23, 176}, {25, 168}}, "runtime.g", "waitsince"},
    {"g_waitreason",
     &G::g_waitreason,
     {{17, 176}, {23, 184}, {25, 176}},
     "runtime.g",
     "waitreason"},
    {"g_waiting",
     &G::g_waiting,
     {{17, 328}, {21, 312}, {23, 320}, {25, 312}, {26, 320}},
     "runtime.g",
     "waiting"},
    {"g_stack_lo", &G::g_stack_lo, {{17, 0}}, "runtime.g", "stack"},
    {"g_stack_hi", &G::g_stack_hi, {{17, 8}}, "runtime.stack", "hi"},
    {"gobuf_sp", &G::gobuf_sp, {{17, 0}}, "runtime.gobuf", "sp"},
    {"gobuf_pc", &G::gobuf_pc, {{17, 8}}, "runtime.gobuf", "pc"},
    {"gobuf_ctxt", &G::gobuf_ctxt, {{17, 24}}, "runtime.gobuf", "ctxt"},
    {"gobuf_bp", &G::gobuf_bp, {{17, 48}, {25, 40}}, "runtime.gobuf", "bp"},
    {"cancelctx_done", &G::cancelctx_done, {{17, 24}}, "context.cancelCtx", "done"},
    {"cancelctx_children", &G::cancelctx_children, {{17, 40}}, "context.cancelCtx", "children"},
    // err: `error` up to 1.25, atomic.Value in 1.26+ (same place; first word a *_type then).
    {"cancelctx_err", &G::cancelctx_err, {{17, 48}}, "context.cancelCtx", "err"},
    {"cancelctx_cause", &G::cancelctx_cause, {{17, -1}, {20, 64}}, "context.cancelCtx", "cause"},
    {"timerctx_cancelctx", &G::timerctx_cancelctx, {{17, 0}}, "context.timerCtx", "cancelCtx"},
    {"timerctx_cancelctx_is_ptr",
     nullptr,
     {{17, 0}, {20, 1}, {21, 0}},
     "context.timerCtx",
     "cancelCtx",
     nullptr,
     nullptr,
     &G::timerctx_cancelctx_is_ptr},
    {"timerctx_deadline",
     &G::timerctx_deadline,
     {{17, 72}, {20, 16}, {21, 88}},
     "context.timerCtx",
     "deadline"},
    {"valuectx_context", &G::valuectx_context, {{17, 0}}, "context.valueCtx", "Context"},
    {"hchan_qcount", &G::hchan_qcount, {{17, 0}}, "runtime.hchan", "qcount"},
    {"hchan_closed", &G::hchan_closed, {{17, 28}}, "runtime.hchan", "closed"},
    {"hchan_recvq", &G::hchan_recvq, {{17, 56}, {23, 64}}, "runtime.hchan", "recvq"},
    {"hchan_sendq", &G::hchan_sendq, {{17, 72}, {23, 80}}, "runtime.hchan", "sendq"},
    {"waitq_first", &G::waitq_first, {{17, 0}}, "runtime.waitq", "first"},
    {"waitq_last", &G::waitq_last, {{17, 8}}, "runtime.waitq", "last"},
    {"sudog_g", &G::sudog_g, {{17, 0}}, "runtime.sudog", "g"},
    {"sudog_next", &G::sudog_next, {{17, 8}}, "runtime.sudog", "next"},
    {"sudog_prev", &G::sudog_prev, {{17, 16}}, "runtime.sudog", "prev"},
    {"sudog_elem", &G::sudog_elem, {{17, 24}}, "runtime.sudog", "elem"},
    {"sudog_isselect", &G::sudog_isselect, {{17, 52}, {26, 60}}, "runtime.sudog", "isSelect"},
    {"sudog_waitlink", &G::sudog_waitlink, {{17, 64}, {26, 72}}, "runtime.sudog", "waitlink"},
    {"sudog_c", &G::sudog_c, {{17, 80}, {26, 88}}, "runtime.sudog", "c"},
    {"traceable_ptr_vu",
     &G::traceable_ptr_vu,
     {{17, -1}, {26, 8}},
     "runtime.maybeTraceablePtr",
     "vu"},
    // runtime.itab is internal/abi.ITab (fields capitalised) in the DWARF of newer releases.
    {"itab_fun", &G::itab_fun, {{17, 24}}, "runtime.itab", "fun", "internal/abi.ITab", "Fun"},
    // runtime._type is internal/abi.Type from 1.21 (fields capitalised).
    {"type_size", &G::type_size, {{17, 0}}, "runtime._type", "size", "internal/abi.Type", "Size_"},
    {"type_ptrbytes",
     &G::type_ptrbytes,
     {{17, 8}},
     "runtime._type",
     "ptrdata",
     "internal/abi.Type",
     "PtrBytes"},
    {"type_tflag",
     &G::type_tflag,
     {{17, 20}},
     "runtime._type",
     "tflag",
     "internal/abi.Type",
     "TFlag"},
    {"type_kind", &G::type_kind, {{17, 23}}, "runtime._type", "kind", "internal/abi.Type", "Kind_"},
    {"type_gcdata",
     &G::type_gcdata,
     {{17, 32}},
     "runtime._type",
     "gcdata",
     "internal/abi.Type",
     "GCData"},
    // mheap: the page allocator before allspans changed size in 1.17-1.21 ([run] for 1.17, 1.18,
    // 1.20).
    {"mheap_allspans",
     &G::mheap_allspans,
     {{17, 65848}, {19, 65856}, {20, 65824}, {21, 65864}},
     "runtime.mheap",
     "allspans"},
    // mspan: 1.21 added pinnerBits before allocCount (+8; 1.17-1.20 as 1.19, [run]); 1.22 made
    // freeindex and nelems uint16 (allocBits -8).
    {"mspan_startaddr", &G::mspan_startaddr, {{17, 24}}, "runtime.mspan", "startAddr"},
    {"mspan_npages", &G::mspan_npages, {{17, 32}}, "runtime.mspan", "npages"},
    {"mspan_freeindex", &G::mspan_freeindex, {{17, 48}}, "runtime.mspan", "freeindex"},
    {"mspan_nelems", &G::mspan_nelems, {{17, 56}, {22, 50}}, "runtime.mspan", "nelems"},
    {"mspan_allocbits", &G::mspan_allocbits, {{17, 72}, {22, 64}}, "runtime.mspan", "allocBits"},
    {"mspan_spanclass",
     &G::mspan_spanclass,
     {{17, 98}, {21, 106}, {22, 98}},
     "runtime.mspan",
     "spanclass"},
    {"mspan_state", &G::mspan_state, {{17, 99}, {21, 107}, {22, 99}}, "runtime.mspan", "state"},
    {"mspan_elemsize",
     &G::mspan_elemsize,
     {{17, 104}, {21, 112}, {22, 104}},
     "runtime.mspan",
     "elemsize"},
    {"semaroot_treap", &G::semaroot_treap, {{17, 8}}, "runtime.semaRoot", "treap"},
    // moduledata: 1.18 and 1.20 added fields before the masks ([run]), 1.21 before types; 1.26
    // and 1.27 reshaped its tail.
    {"moduledata_data", &G::moduledata_data, {{17, 208}}, "runtime.moduledata", "data"},
    {"moduledata_edata", &G::moduledata_edata, {{17, 216}}, "runtime.moduledata", "edata"},
    {"moduledata_bss", &G::moduledata_bss, {{17, 224}}, "runtime.moduledata", "bss"},
    {"moduledata_ebss", &G::moduledata_ebss, {{17, 232}}, "runtime.moduledata", "ebss"},
    {"moduledata_gcdatamask",
     &G::moduledata_gcdatamask,
     {{17, 480}, {18, 496}, {20, 512}, {21, 536}, {26, 544}, {27, 520}},
     "runtime.moduledata",
     "gcdatamask"},
    {"moduledata_gcbssmask",
     &G::moduledata_gcbssmask,
     {{17, 496}, {18, 512}, {20, 528}, {21, 552}, {26, 560}, {27, 536}},
     "runtime.moduledata",
     "gcbssmask"},
};
// clang-format on

// Facts without a DWARF description: each from the release's source, confirmed on the fixtures
// by disassembly (probe_plan_test, tracer_test).
struct RuntimeFact {
  int32_t GoRuntimeFacts::*field;
  Since history[kMaxHistory];
};
constexpr RuntimeFact kRuntimeFacts[] = {
    {&GoRuntimeFacts::g_status_leaked, {{17, -1}, {26, 10}}},
    {&GoRuntimeFacts::g_status_dead_extra, {{17, -1}, {26, 11}}},
    {&GoRuntimeFacts::mspan_index_u16, {{17, 0}, {22, 1}}},
    {&GoRuntimeFacts::sync_waits_on_g, {{17, 0}, {26, 1}}},
    {&GoRuntimeFacts::heap_bits_in_span, {{17, 0}, {22, 1}}},
    {&GoRuntimeFacts::span_inline_mark_bits, {{17, 0}, {26, 1}}},
    {&GoRuntimeFacts::gc_mask_on_demand, {{17, 0}, {24, 1}}},
};

}  // namespace

absl::Span<const OffsetFact> OffsetFacts() { return kOffsetFacts; }

absl::StatusOr<GoRuntimeFacts> RuntimeFactsForVersion(const GoVersion& version) {
  if (!IsSupportedGoVersion(version)) {
    return absl::UnimplementedError(absl::StrCat("no runtime facts for go", version.major, ".",
                                                 version.minor,
                                                 " (supported: ", SupportedGoVersions(), ")"));
  }
  GoRuntimeFacts facts;
  for (const RuntimeFact& f : kRuntimeFacts) facts.*f.field = ValueAt(f.history, version.minor);
  return facts;
}

}  // namespace ctxagent::symbols
