// Internal to symbols/: the decoded pclntab layout that pclntab.cc and stack_maps.cc share. Not an
// API: include symbols/pclntab.h.
#ifndef CTXAGENT_SYMBOLS_PCLNTAB_LAYOUT_H_
#define CTXAGENT_SYMBOLS_PCLNTAB_LAYOUT_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "symbols/elf_file.h"
#include "symbols/pclntab.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace pcln {

constexpr uint32_t kNoFuncdata = 0xFFFFFFFF;

template <typename T>
inline T Le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline uint32_t Le32(const char* p) { return Le<uint32_t>(p); }
inline uint64_t Le64(const char* p) { return Le<uint64_t>(p); }

inline absl::Status Truncated(absl::string_view what) {
  return absl::OutOfRangeError(absl::StrCat("pclntab: ", what, " out of bounds"));
}

// Checked little-endian reads at offset `off` of `data`.
inline absl::StatusOr<uint32_t> U32At(absl::string_view data, uint64_t off) {
  if (off > data.size() || data.size() - off < 4) return Truncated("u32");
  return Le32(data.data() + off);
}
inline absl::StatusOr<uint64_t> U64At(absl::string_view data, uint64_t off) {
  if (off > data.size() || data.size() - off < 8) return Truncated("u64");
  return Le64(data.data() + off);
}

// NUL-terminated string at `off` within `region`: a view into the mapped file.
inline absl::StatusOr<absl::string_view> CStringAt(absl::string_view region, uint64_t off) {
  if (off >= region.size()) return Truncated("string");
  absl::string_view rest = region.substr(off);
  size_t nul = rest.find('\0');
  if (nul == absl::string_view::npos) return Truncated("unterminated string");
  return rest.substr(0, nul);
}
inline absl::StatusOr<std::string> Copy(const absl::StatusOr<absl::string_view>& s) {
  return s.ok() ? absl::StatusOr<std::string>(std::string(*s)) : s.status();
}

struct FuncInfo {
  uint64_t off = 0;  // of the _func within the table
  uint64_t entry = 0;
  int32_t nameoff = 0;
  int32_t args = 0;  // bytes of arguments and results; kArgsSizeUnknown for some assembly
  uint32_t pcsp = 0;
  uint32_t pcfile = 0;
  uint32_t pcln = 0;
  uint32_t npcdata = 0;
  uint32_t cu_offset = 0;
  uint8_t func_id = 0;
  uint8_t flag = 0;  // abi.FuncFlag (1.17+)
  uint8_t nfuncdata = 0;
};

}  // namespace pcln

// Decoded header plus the table bytes; everything a lookup needs.
struct Pclntab::Layout {
  enum class Format { k116, k118, k120 };

  const ElfFile* elf = nullptr;
  Format format = Format::k120;
  absl::string_view tab;  // header .. end of the containing section
  uint64_t vaddr = 0;
  uint8_t min_lc = 1;
  uint64_t nfunc = 0;
  uint64_t funcname_off = 0, cu_off = 0, filetab_off = 0, pctab_off = 0, pcln_off = 0;
  uint64_t text_start = 0;
  uint64_t gofunc = 0;  // 0: unknown (no inline expansion on 1.18+)

  uint64_t FtabEntrySize() const { return format == Format::k116 ? 16 : 8; }
  // Fixed part of _func before the pcdata array.
  uint64_t FuncHeaderSize() const {
    switch (format) {
      case Format::k116:
        return 44;  // entry is a uintptr
      case Format::k118:
        return 40;
      case Format::k120:
        return 44;  // + startLine
    }
    return 44;
  }
  absl::string_view Region(uint64_t begin, uint64_t end) const {
    return tab.substr(begin, end - begin);
  }

  // Word at table offset `off` as the loader sees it: PIE relocations supply 1.16/1.17 entry words.
  absl::StatusOr<uint64_t> PointerAt(uint64_t off) const {
    if (off > tab.size() || tab.size() - off < 8) return pcln::Truncated("pointer");
    return elf->ReadPointer(vaddr + off);
  }

  absl::StatusOr<uint64_t> FtabEntry(uint64_t i) const {
    if (i > nfunc) return pcln::Truncated("functab index");
    uint64_t off = pcln_off + i * FtabEntrySize();
    if (format == Format::k116) return PointerAt(off);
    ASSIGN_OR_RETURN(uint32_t entryoff, pcln::U32At(tab, off));
    return text_start + entryoff;
  }

  absl::StatusOr<uint64_t> FuncOff(uint64_t i) const {
    if (i >= nfunc) return pcln::Truncated("functab index");
    uint64_t off = pcln_off + i * FtabEntrySize();
    uint64_t funcoff;
    if (format == Format::k116) {
      ASSIGN_OR_RETURN(funcoff, pcln::U64At(tab, off + 8));
    } else {
      ASSIGN_OR_RETURN(funcoff, pcln::U32At(tab, off + 4));
    }
    if (funcoff >= tab.size() - pcln_off) return pcln::Truncated("funcoff");
    return pcln_off + funcoff;
  }

  absl::StatusOr<pcln::FuncInfo> Func(uint64_t i) const {
    pcln::FuncInfo f;
    ASSIGN_OR_RETURN(f.off, FuncOff(i));
    if (tab.size() - f.off < FuncHeaderSize()) return pcln::Truncated("_func");
    const char* p = tab.data() + f.off;
    uint64_t o = 0;
    if (format == Format::k116) {
      ASSIGN_OR_RETURN(f.entry, PointerAt(f.off));
      o = 8;
    } else {
      f.entry = text_start + pcln::Le32(p);
      o = 4;
    }
    f.nameoff = static_cast<int32_t>(pcln::Le32(p + o));
    f.args = static_cast<int32_t>(pcln::Le32(p + o + 4));
    f.pcsp = pcln::Le32(p + o + 12);  // after deferreturn
    f.pcfile = pcln::Le32(p + o + 16);
    f.pcln = pcln::Le32(p + o + 20);
    f.npcdata = pcln::Le32(p + o + 24);
    f.cu_offset = pcln::Le32(p + o + 28);
    f.func_id = static_cast<uint8_t>(p[FuncHeaderSize() - 4]);  // funcID, flag, pad, nfuncdata
    f.flag = static_cast<uint8_t>(p[FuncHeaderSize() - 3]);
    f.nfuncdata = static_cast<uint8_t>(p[FuncHeaderSize() - 1]);
    return f;
  }

  absl::StatusOr<absl::string_view> Name(int32_t nameoff) const {
    if (nameoff < 0) return pcln::Truncated("nameoff");
    return pcln::CStringAt(Region(funcname_off, cu_off), static_cast<uint64_t>(nameoff));
  }

  // The runtime's pcvalue: value deltas (zigzag) start from -1, pc deltas are in units of minLC.
  // Returns -1 for a missing table or a pc past its end, like the runtime.
  absl::StatusOr<int32_t> PcValue(uint32_t table_off, uint64_t entry, uint64_t target) const {
    if (table_off == 0) return -1;
    absl::string_view pct = Region(pctab_off, pcln_off);
    if (table_off >= pct.size()) return pcln::Truncated("pcvalue table");
    size_t pos = table_off;
    auto uvarint = [&](uint64_t* out) -> bool {
      uint64_t v = 0;
      for (int shift = 0; shift < 35 && pos < pct.size(); shift += 7) {
        uint8_t b = static_cast<uint8_t>(pct[pos++]);
        v |= static_cast<uint64_t>(b & 0x7F) << shift;
        if ((b & 0x80) == 0) {
          *out = v;
          return true;
        }
      }
      return false;
    };
    uint64_t pc = entry;
    int32_t val = -1;
    for (bool first = true;; first = false) {
      uint64_t uvdelta, pcdelta;
      if (!uvarint(&uvdelta)) return pcln::Truncated("pcvalue varint");
      if (uvdelta == 0 && !first) return -1;
      uint32_t d = static_cast<uint32_t>(uvdelta);
      int32_t delta = (d & 1) ? static_cast<int32_t>(~(d >> 1)) : static_cast<int32_t>(d >> 1);
      val = static_cast<int32_t>(static_cast<uint32_t>(val) + static_cast<uint32_t>(delta));
      if (!uvarint(&pcdelta)) return pcln::Truncated("pcvalue varint");
      pc += pcdelta * min_lc;
      if (target < pc) return val;
    }
  }

  absl::StatusOr<absl::string_view> File(const pcln::FuncInfo& f, int32_t fileno) const {
    if (fileno < 0) return absl::string_view();  // no position, e.g. padding after the code
    uint64_t idx = static_cast<uint64_t>(f.cu_offset) + static_cast<uint64_t>(fileno);
    ASSIGN_OR_RETURN(uint32_t off, pcln::U32At(Region(cu_off, filetab_off), idx * 4));
    if (off == 0xFFFFFFFF) return absl::string_view();
    return pcln::CStringAt(Region(filetab_off, pctab_off), off);
  }

  absl::StatusOr<uint32_t> Pcdata(const pcln::FuncInfo& f, uint32_t k) const {
    if (k >= f.npcdata) return 0;
    return pcln::U32At(tab, f.off + FuncHeaderSize() + 4ull * k);
  }

  // Link-time address of the function's FUNCDATA_* `k` (runtime.funcdata), 0 when it has none.
  absl::StatusOr<uint64_t> Funcdata(const pcln::FuncInfo& f, uint32_t k) const {
    if (k >= f.nfuncdata) return 0;
    uint64_t p = f.off + FuncHeaderSize() + 4ull * f.npcdata;
    if (format == Format::k116) {
      // Absolute pointers, 8-aligned by address.
      if ((vaddr + p) & 4) p += 4;
      return PointerAt(p + 8ull * k);
    }
    // Offsets from moduledata.gofunc (go:func.*).
    ASSIGN_OR_RETURN(uint32_t off, pcln::U32At(tab, p + 4ull * k));
    if (off == pcln::kNoFuncdata || gofunc == 0) return 0;
    return gofunc + off;
  }

  struct InlinedCall {
    int32_t nameoff;
    int32_t parent_pc;
    uint8_t func_id;
  };
  absl::StatusOr<InlinedCall> InlineEntry(uint64_t tree, int32_t ix) const {
    uint64_t size = format == Format::k120 ? 16 : 20;
    ASSIGN_OR_RETURN(absl::string_view e,
                     elf->ReadAt(tree + size * static_cast<uint64_t>(ix), size));
    if (format == Format::k120) {
      return InlinedCall{static_cast<int32_t>(pcln::Le32(e.data() + 4)),
                         static_cast<int32_t>(pcln::Le32(e.data() + 8)),
                         static_cast<uint8_t>(e[0])};
    }
    // {parent int16, funcID uint8, _ byte, file, line, func_, parentPc int32} before Go 1.20.
    return InlinedCall{static_cast<int32_t>(pcln::Le32(e.data() + 12)),
                       static_cast<int32_t>(pcln::Le32(e.data() + 16)), static_cast<uint8_t>(e[2])};
  }

  // Index of the function containing pc, by binary search over the functab.
  absl::StatusOr<uint64_t> IndexForPC(uint64_t pc) const {
    ASSIGN_OR_RETURN(uint64_t lo_pc, FtabEntry(0));
    ASSIGN_OR_RETURN(uint64_t hi_pc, FtabEntry(nfunc));
    if (pc < lo_pc || pc >= hi_pc) {
      return absl::NotFoundError(
          absl::StrFormat("pc 0x%x outside Go text [0x%x, 0x%x)", pc, lo_pc, hi_pc));
    }
    uint64_t lo = 0, hi = nfunc;  // invariant: entry(lo) <= pc < entry(hi)
    while (hi - lo > 1) {
      uint64_t mid = lo + (hi - lo) / 2;
      ASSIGN_OR_RETURN(uint64_t e, FtabEntry(mid));
      if (e <= pc) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  static absl::StatusOr<Layout> Decode(const ElfFile& elf, uint64_t vaddr, uint64_t avail);
  static absl::StatusOr<Layout> Locate(const ElfFile& elf);
  bool IsModuledata(uint64_t md) const;
  uint64_t LocateModuledata() const;
  uint64_t ReadGofunc(uint64_t md) const;
};

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_PCLNTAB_LAYOUT_H_
