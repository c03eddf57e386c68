#include "symbols/go_offsets.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ctxagent::symbols {

std::vector<std::pair<const char*, int32_t>> GoOffsets::Named() const {
  return {{"g_goid", g_goid},
          {"g_parent_goid", g_parent_goid},
          {"g_gopc", g_gopc},
          {"g_startpc", g_startpc},
          {"g_atomicstatus", g_atomicstatus},
          {"g_sched", g_sched},
          {"gobuf_ctxt", gobuf_ctxt},
          {"cancelctx_done", cancelctx_done},
          {"cancelctx_children", cancelctx_children},
          {"cancelctx_err", cancelctx_err},
          {"cancelctx_cause", cancelctx_cause},
          {"timerctx_cancelctx", timerctx_cancelctx},
          {"timerctx_cancelctx_is_ptr", timerctx_cancelctx_is_ptr ? 1 : 0},
          {"timerctx_deadline", timerctx_deadline},
          {"valuectx_context", valuectx_context},
          {"hchan_closed", hchan_closed},
          {"hchan_recvq", hchan_recvq},
          {"sudog_g", sudog_g}};
}

bool GoOffsets::operator==(const GoOffsets& o) const { return Named() == o.Named(); }

const char* SourceName(GoOffsets::Source source) {
  switch (source) {
    case GoOffsets::Source::kDwarf:
      return "dwarf";
    case GoOffsets::Source::kTable:
      return "table";
  }
  return "unknown";
}

namespace {

// Offsets past this are not a field of these small structs: the DWARF is corrupt.
constexpr Dwarf_Word kMaxSaneOffset = 1 << 16;

struct FdCloser {
  void operator()(int* fd) const {
    if (*fd >= 0) close(*fd);
    delete fd;
  }
};
struct ElfCloser {
  void operator()(Elf* e) const { elf_end(e); }
};
struct DwarfCloser {
  void operator()(Dwarf* d) const { dwarf_end(d); }
};

// A member's byte offset, or -1 when it has none we can read. Go writes DW_FORM_udata
// constants; a location expression of one DW_OP_plus_uconst is accepted as well.
int64_t MemberOffset(Dwarf_Die* member) {
  Dwarf_Attribute attr;
  if (dwarf_attr(member, DW_AT_data_member_location, &attr) == nullptr) return -1;
  Dwarf_Word value = 0;
  if (dwarf_formudata(&attr, &value) == 0) {
    return value <= kMaxSaneOffset ? static_cast<int64_t>(value) : -1;
  }
  Dwarf_Op* ops = nullptr;
  size_t nops = 0;
  if (dwarf_getlocation(&attr, &ops, &nops) == 0 && nops == 1 &&
      ops[0].atom == DW_OP_plus_uconst && ops[0].number <= kMaxSaneOffset) {
    return static_cast<int64_t>(ops[0].number);
  }
  return -1;
}

bool MemberIsPointer(Dwarf_Die* member) {
  Dwarf_Attribute attr;
  Dwarf_Die type;
  if (dwarf_attr(member, DW_AT_type, &attr) == nullptr) return false;
  if (dwarf_formref_die(&attr, &type) == nullptr) return false;
  return dwarf_tag(&type) == DW_TAG_pointer_type;
}

// One wanted struct: its members are matched by name into the output fields.
struct FieldSpec {
  const char* name;
  int32_t GoOffsets::*field;
};

struct StructSpec {
  const char* name;
  std::initializer_list<FieldSpec> fields;
};

const StructSpec kStructs[] = {
    {"runtime.g",
     {{"goid", &GoOffsets::g_goid},
      {"parentGoid", &GoOffsets::g_parent_goid},
      {"gopc", &GoOffsets::g_gopc},
      {"startpc", &GoOffsets::g_startpc},
      {"atomicstatus", &GoOffsets::g_atomicstatus},
      {"sched", &GoOffsets::g_sched}}},
    {"runtime.gobuf", {{"ctxt", &GoOffsets::gobuf_ctxt}}},
    {"context.cancelCtx",
     {{"done", &GoOffsets::cancelctx_done},
      {"children", &GoOffsets::cancelctx_children},
      {"err", &GoOffsets::cancelctx_err},
      {"cause", &GoOffsets::cancelctx_cause}}},
    {"context.timerCtx",
     {{"cancelCtx", &GoOffsets::timerctx_cancelctx},
      {"deadline", &GoOffsets::timerctx_deadline}}},
    {"context.valueCtx", {{"Context", &GoOffsets::valuectx_context}}},
    {"runtime.hchan", {{"closed", &GoOffsets::hchan_closed}, {"recvq", &GoOffsets::hchan_recvq}}},
    {"runtime.sudog", {{"g", &GoOffsets::sudog_g}}},
};
constexpr int kNumStructs = sizeof(kStructs) / sizeof(kStructs[0]);

void ReadStruct(Dwarf_Die* type, const StructSpec& spec, GoOffsets& out) {
  Dwarf_Die member;
  if (dwarf_child(type, &member) != 0) return;
  do {
    if (dwarf_tag(&member) != DW_TAG_member) continue;
    const char* name = dwarf_diename(&member);
    if (name == nullptr) continue;
    for (const FieldSpec& f : spec.fields) {
      if (std::strcmp(name, f.name) != 0) continue;
      out.*(f.field) = static_cast<int32_t>(MemberOffset(&member));
      if (f.field == &GoOffsets::timerctx_cancelctx) {
        out.timerctx_cancelctx_is_ptr = MemberIsPointer(&member);
      }
    }
  } while (dwarf_siblingof(&member, &member) == 0);
}

bool HasDebugInfoSection(Elf* elf) {
  size_t shstrndx;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0) return false;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
    if (name == nullptr) continue;
    if ((std::strcmp(name, ".debug_info") == 0 || std::strcmp(name, ".zdebug_info") == 0) &&
        shdr.sh_type != SHT_NOBITS && shdr.sh_size > 0) {
      return true;
    }
  }
  return false;
}

void InitLibelf() {
  static const bool ok = elf_version(EV_CURRENT) != EV_NONE;
  (void)ok;
}

}  // namespace

absl::StatusOr<GoOffsets> OffsetsFromDwarf(const std::string& path) {
  InitLibelf();
  std::unique_ptr<int, FdCloser> fd(new int(open(path.c_str(), O_RDONLY | O_CLOEXEC)));
  if (*fd < 0) {
    return absl::NotFoundError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  // ELF_C_READ, not MMAP: a file truncated under us must give an error, not SIGBUS.
  std::unique_ptr<Elf, ElfCloser> elf(elf_begin(*fd, ELF_C_READ, nullptr));
  if (elf == nullptr || elf_kind(elf.get()) != ELF_K_ELF) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an ELF file"));
  }
  if (!HasDebugInfoSection(elf.get())) {
    return absl::NotFoundError(absl::StrCat(path, ": no DWARF (.debug_info)"));
  }
  // dwarf_begin_elf decompresses SHF_COMPRESSED sections and GNU .zdebug_* ones itself.
  std::unique_ptr<Dwarf, DwarfCloser> dw(dwarf_begin_elf(elf.get(), DWARF_C_READ, nullptr));
  if (dw == nullptr) {
    return absl::DataLossError(absl::StrCat(path, ": unreadable DWARF: ", dwarf_errmsg(-1)));
  }

  GoOffsets out;
  out.source = GoOffsets::Source::kDwarf;
  bool found[kNumStructs] = {};
  int num_found = 0;
  Dwarf_CU* cu = nullptr;
  Dwarf_Die cudie;
  int rc = 0;
  // Go emits its types as direct children of the compile units: no need to descend further.
  while (num_found < kNumStructs &&
         (rc = dwarf_get_units(dw.get(), cu, &cu, nullptr, nullptr, &cudie, nullptr)) == 0) {
    Dwarf_Die die;
    if (dwarf_child(&cudie, &die) != 0) continue;
    do {
      if (dwarf_tag(&die) != DW_TAG_structure_type || dwarf_hasattr(&die, DW_AT_declaration)) {
        continue;
      }
      const char* name = dwarf_diename(&die);
      if (name == nullptr) continue;
      for (int i = 0; i < kNumStructs; ++i) {
        if (found[i] || std::strcmp(name, kStructs[i].name) != 0) continue;
        ReadStruct(&die, kStructs[i], out);
        found[i] = true;
        ++num_found;
      }
    } while (num_found < kNumStructs && dwarf_siblingof(&die, &die) == 0);
  }
  if (!found[0] && rc < 0) {
    return absl::DataLossError(absl::StrCat(path, ": bad DWARF unit: ", dwarf_errmsg(-1)));
  }
  if (!found[0]) {
    return absl::NotFoundError(absl::StrCat(path, ": DWARF has no runtime.g"));
  }
  return out;
}

// The table. amd64 only. Sources: [dw] the DWARF of a fixture built with that toolchain (the
// tests hold every such entry to the DWARF of its fixture); [src] layout computed by hand from that
// release's runtime/runtime2.go (`g`, `gobuf`, `sudog`), runtime/chan.go (`hchan`) and
// context/context.go, with amd64 sizes: uintptr/pointer/int64 8, uint32 4, bool/uint8 1,
// interface 16, slice 24, map 8, stack{lo,hi} 16, sync.Mutex 8, atomic.Value 16, time.Time 24,
// runtime atomic.Uint32 4 (align 4), atomic.Bool 1.
//
// runtime.g prefix, common to every release here: stack 0, stackguard0 16, stackguard1 24,
// _panic 32, _defer 40, m 48, sched gobuf 56. gobuf is {sp pc g ctxt ret lr bp} = 56 bytes up to
// 1.24; 1.25 removed `ret` (48 bytes), so everything after `sched` moves back 8 in 1.25+.
// 1.23 added g.syscallbp after syscallpc (+8), which 1.25's smaller gobuf cancels out.
absl::StatusOr<GoOffsets> OffsetsForVersion(const GoVersion& version) {
  if (version.major != 1 || version.minor < 17 || version.minor > 27) {
    return absl::UnimplementedError(
        absl::StrCat("no offset table for go", version.major, ".", version.minor));
  }
  const int minor = version.minor;
  GoOffsets o;
  o.source = GoOffsets::Source::kTable;

  // --- runtime.g
  if (minor <= 20) {
    // 1.17, 1.18, 1.20 [src], 1.19 [dw]: same field list up to startpc (1.20 only retypes
    // atomicstatus/parkingOnChan to same-size atomics). sched 56+56 -> syscallsp 112,
    // syscallpc 120, stktopsp 128, param 136, atomicstatus 144, stackLock 148, goid 152,
    // schedlink 160, waitsince 168, waitreason 176, 13 one-byte flags 177..189,
    // runnableStamp/trackingStamp 192, runnableTime 200, sysexitticks 208, traceseq 216,
    // tracelastp 224, lockedm 232, sig 240, writebuf 248, sigcode0 272, sigcode1 280,
    // sigpc 288, gopc 296, ancestors 304, startpc 312. No parentGoid before 1.21.
    o.g_atomicstatus = 144;
    o.g_goid = 152;
    o.g_gopc = 296;
    o.g_startpc = 312;
  } else if (minor <= 22) {
    // 1.21, 1.22 [dw]: sysblocktraced/sysexitticks/traceseq/tracelastp moved into g.trace
    // (after startpc); parentGoid added before gopc.
    o.g_atomicstatus = 144;
    o.g_goid = 152;
    o.g_parent_goid = 272;
    o.g_gopc = 280;
    o.g_startpc = 296;
  } else if (minor <= 24) {
    // 1.23, 1.24 [dw]: syscallbp after syscallpc shifts everything from stktopsp by 8.
    o.g_atomicstatus = 152;
    o.g_goid = 160;
    o.g_parent_goid = 280;
    o.g_gopc = 288;
    o.g_startpc = 304;
  } else if (minor == 25) {
    // 1.25 [src, go1.25.3]: gobuf loses `ret` (48 bytes): syscallsp 104, syscallpc 112,
    // syscallbp 120, stktopsp 128, param 136, atomicstatus 144, stackLock 148, goid 152,
    // schedlink 160, waitsince 168, waitreason 176, flags 177..191 (coroexit, raceignore,
    // nocgocallback, tracking, trackingSeq), trackingStamp 192, runnableTime 200, lockedm 208,
    // fipsIndicator 216, syncSafePoint 217, runningCleanups 218, sig 220, writebuf 224,
    // sigcode0 248, sigcode1 256, sigpc 264, parentGoid 272, gopc 280, ancestors 288,
    // startpc 296.
    o.g_atomicstatus = 144;
    o.g_goid = 152;
    o.g_parent_goid = 272;
    o.g_gopc = 280;
    o.g_startpc = 296;
  } else {
    // 1.26, 1.27 [dw]: fipsOnlyBypass, ditWanted and `secret int32` (after sig) push writebuf
    // to 232 and parentGoid to 280.
    o.g_atomicstatus = 144;
    o.g_goid = 152;
    o.g_parent_goid = 280;
    o.g_gopc = 288;
    o.g_startpc = 304;
  }

  // g {stack 0 (16), stackguard0 16, stackguard1 24, _panic 32, _defer 40, m 48, sched 56} and
  // gobuf {sp, pc, g, ctxt, ...} are stable from 1.17 to 1.27 (1.25 drops gobuf.ret, after ctxt).
  o.g_sched = 56;
  o.gobuf_ctxt = 24;

  // --- context. cancelCtx {Context 0, mu sync.Mutex 16, done atomic.Value 24 (since 1.17),
  // children map 40, err 48, cause 64 (1.20+)}: 64 bytes, 80 from 1.20. err is `error` in 1.24
  // and `atomic.Value` in 1.26 [dw]: same place and size, but its first word is then an eface
  // type (*_type), not an itab. 1.25: no context.go of that release was at hand; context types
  // differ 1.24 -> 1.26 only by that retype, so the offsets hold whichever 1.25 has.
  o.cancelctx_done = 24;
  o.cancelctx_children = 40;
  o.cancelctx_err = 48;
  o.valuectx_context = 0;
  o.timerctx_cancelctx = 0;
  if (minor >= 20) o.cancelctx_cause = 64;
  if (minor <= 19) {
    // timerCtx {cancelCtx 0 (64), timer 64, deadline 72}.
    o.timerctx_deadline = 72;
  } else if (minor == 20) {
    // 1.20 [src, go1.20.6]: timerCtx {*cancelCtx 0, timer 8, deadline 16}.
    o.timerctx_cancelctx_is_ptr = true;
    o.timerctx_deadline = 16;
  } else {
    // timerCtx {cancelCtx 0 (80), timer 80, deadline 88}.
    o.timerctx_deadline = 88;
  }

  // --- runtime.hchan {qcount 0, dataqsiz 8, buf 16, elemsize uint16 24, [1.24: synctest bool
  // 26], closed uint32 28, [1.23+: timer *timer 32], elemtype, sendx, recvx, recvq, ...}.
  // sudog.g is the first field in every release.
  o.hchan_closed = 28;
  o.hchan_recvq = minor >= 23 ? 64 : 56;
  o.sudog_g = 0;
  return o;
}

}  // namespace ctxagent::symbols
