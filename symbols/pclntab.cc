#include "symbols/pclntab.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symbols/pclntab_layout.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {

using pcln::Copy;
using pcln::FuncInfo;
using pcln::Le32;
using pcln::Le64;
using pcln::Truncated;
using pcln::U32At;

namespace {

constexpr uint32_t kMagic12 = 0xFFFFFFFB;  // Go 1.2-1.15
constexpr uint32_t kMagic116 = 0xFFFFFFFA;
constexpr uint32_t kMagic118 = 0xFFFFFFF0;
constexpr uint32_t kMagic120 = 0xFFFFFFF1;

constexpr int kPcdataInlTreeIndex = 2;
constexpr int kFuncdataInlTree = 3;

// moduledata word indices (src/runtime/symtab.go `type moduledata`). The prefix up to `text` is the
// same in 1.16-1.27; `gofunc` moves: 1.18-1.19 have no covctrs (38), 1.20 added covctrs (40), 1.27
// added typedesclen, itaboffset, itabsize (43).
constexpr uint64_t kMdFuncnametab = 1;
constexpr uint64_t kMdCutab = 4;
constexpr uint64_t kMdFiletab = 7;
constexpr uint64_t kMdText = 22;
constexpr uint64_t kMdGofunc118 = 38;
constexpr uint64_t kMdGofunc120 = 40;
constexpr uint64_t kMdGofunc127 = 43;
constexpr uint64_t kMdTypes = 37;  // 1.20+: types; 1.27: types, typedesclen, etypes follow

bool LooksLikeMagic(uint32_t v) {
  return v == kMagic116 || v == kMagic118 || v == kMagic120 || v == kMagic12;
}

// Inlined frames nest at most a few levels; a hostile parentPc chain must not loop forever.
constexpr int kMaxInlineDepth = 256;

}  // namespace

// Decodes and validates a header at `vaddr`, with `avail` bytes up to the end of its section. Cheap
// (O(1)) so it can vet every candidate of a scan; rejects anything a Go linker would not write.
auto Pclntab::Layout::Decode(const ElfFile& elf, uint64_t vaddr, uint64_t avail)
    -> absl::StatusOr<Layout> {
  ASSIGN_OR_RETURN(absl::string_view head, elf.ReadAt(vaddr, std::min<uint64_t>(avail, 8)));
  if (head.size() < 8) return Truncated("header");
  uint32_t magic = Le32(head.data());
  Layout l;
  l.elf = &elf;
  l.vaddr = vaddr;
  if (!LooksLikeMagic(magic)) {
    return absl::InvalidArgumentError(absl::StrFormat("pclntab: unknown magic 0x%08x", magic));
  }
  // The fixed bytes after the magic first: a stray magic-like word is not an old or 32-bit table.
  if (head[4] != 0 || head[5] != 0)
    return absl::InvalidArgumentError("pclntab: nonzero header padding");
  l.min_lc = static_cast<uint8_t>(head[6]);
  if (l.min_lc != 1 && l.min_lc != 2 && l.min_lc != 4) {
    return absl::InvalidArgumentError(absl::StrFormat("pclntab: bad minLC %d", l.min_lc));
  }
  uint8_t ptr_size = static_cast<uint8_t>(head[7]);
  if (ptr_size != 4 && ptr_size != 8) {
    return absl::InvalidArgumentError(absl::StrFormat("pclntab: bad ptrSize %d", ptr_size));
  }
  switch (magic) {
    case kMagic116:
      l.format = Layout::Format::k116;
      break;
    case kMagic118:
      l.format = Layout::Format::k118;
      break;
    case kMagic120:
      l.format = Layout::Format::k120;
      break;
    default:
      return absl::UnimplementedError(
          "pclntab: Go 1.2-1.15 format (magic 0xFFFFFFFB) is not supported");
  }
  if (ptr_size == 4) return absl::UnimplementedError("pclntab: 32-bit binaries are not supported");

  ASSIGN_OR_RETURN(l.tab, elf.ReadAt(vaddr, avail));
  const uint64_t header_size = l.format == Layout::Format::k116 ? 64 : 72;
  if (l.tab.size() < header_size) return Truncated("header");
  const char* p = l.tab.data();
  l.nfunc = Le64(p + 8);
  uint64_t w = 24;                               // after nfunc, nfiles
  if (l.format != Layout::Format::k116) w += 8;  // textStart, read below through relocations
  l.funcname_off = Le64(p + w);
  l.cu_off = Le64(p + w + 8);
  l.filetab_off = Le64(p + w + 16);
  l.pctab_off = Le64(p + w + 24);
  l.pcln_off = Le64(p + w + 32);
  const uint64_t size = l.tab.size();
  // The linker writes the header, then funcnametab, cutab, filetab, pctab, functab+_funcs in order.
  if (!(header_size <= l.funcname_off && l.funcname_off <= l.cu_off && l.cu_off <= l.filetab_off &&
        l.filetab_off <= l.pctab_off && l.pctab_off <= l.pcln_off && l.pcln_off < size)) {
    return absl::InvalidArgumentError("pclntab: header offsets out of order or out of bounds");
  }
  if (l.nfunc == 0 || l.nfunc >= (size - l.pcln_off) / l.FtabEntrySize()) {
    return absl::InvalidArgumentError(absl::StrFormat("pclntab: implausible nfunc %d", l.nfunc));
  }
  // First functab entry: its _func must lie in the table and agree on the entry point.
  if (l.format == Layout::Format::k116) {
    ASSIGN_OR_RETURN(FuncInfo f0, l.Func(0));
    ASSIGN_OR_RETURN(uint64_t e0, l.FtabEntry(0));
    if (f0.entry != e0)
      return absl::InvalidArgumentError("pclntab: first _func disagrees with functab");
  } else {
    ASSIGN_OR_RETURN(uint32_t e0, U32At(l.tab, l.pcln_off));
    ASSIGN_OR_RETURN(uint64_t f0off, l.FuncOff(0));
    ASSIGN_OR_RETURN(uint32_t fe0, U32At(l.tab, f0off));
    if (fe0 != e0) return absl::InvalidArgumentError("pclntab: first _func disagrees with functab");
    ASSIGN_OR_RETURN(uint32_t elast, U32At(l.tab, l.pcln_off + l.nfunc * 8));
    if (elast < e0) return absl::InvalidArgumentError("pclntab: functab not ascending");
  }
  return l;
}

// Finds the header: a .gopclntab section (".data.rel.ro.gopclntab" in internally linked PIE), the
// runtime.pcheader symbol, or a scan of the data (externally linked PIE puts it in .data.rel.ro).
auto Pclntab::Layout::Locate(const ElfFile& elf) -> absl::StatusOr<Layout> {
  for (const ElfSection& s : elf.sections()) {
    if (s.name == ".gopclntab" || absl::EndsWith(s.name, ".gopclntab")) {
      if (s.size == 0) continue;
      return Decode(elf, s.addr, s.size);
    }
  }
  if (absl::StatusOr<uint64_t> sym = elf.LookupSymbol("runtime.pcheader"); sym.ok() && *sym != 0) {
    auto [begin, end] = elf.ContainingRange(*sym);
    if (end > *sym) {
      absl::StatusOr<Layout> l = Decode(elf, *sym, end - *sym);
      if (l.ok()) return l;
    }
  }
  // Scan pointer-aligned words of every allocated, non-executable, file-backed range.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const ElfSection& s : elf.sections()) {
    if ((s.flags & SHF_ALLOC) && !(s.flags & SHF_EXECINSTR) && s.type == SHT_PROGBITS &&
        s.addr != 0) {
      ranges.push_back({s.addr, s.addr + s.size});
    }
  }
  if (elf.sections().empty()) {
    for (const ElfSegment& seg : elf.segments()) {
      if (seg.type == PT_LOAD && !(seg.flags & PF_X)) {
        ranges.push_back({seg.vaddr, seg.vaddr + seg.filesz});
      }
    }
  }
  absl::Status result = absl::NotFoundError("no Go pclntab found (not a Go binary?)");
  for (auto [begin, end] : ranges) {
    if (end <= begin) continue;
    absl::StatusOr<absl::string_view> bytes = elf.ReadAt(begin, end - begin);
    if (!bytes.ok()) continue;
    uint64_t first = (begin + 7) & ~uint64_t{7};
    for (uint64_t a = first; a + 8 <= end; a += 8) {
      if (!LooksLikeMagic(Le32(bytes->data() + (a - begin)))) continue;
      absl::StatusOr<Layout> l = Decode(elf, a, end - a);
      if (l.ok()) return l;
      // An old-format or 32-bit table is reported as such; other near-misses are just noise.
      if (absl::IsUnimplemented(l.status()) && absl::IsNotFound(result)) result = l.status();
    }
  }
  return result;
}

// Checks that `md` is the moduledata of the table: its first slices point into the pclntab.
bool Pclntab::Layout::IsModuledata(uint64_t md) const {
  const Layout& l = *this;
  const ElfFile& elf = *this->elf;
  auto word = [&](uint64_t i) -> uint64_t {
    absl::StatusOr<uint64_t> v = elf.ReadPointer(md + 8 * i);
    return v.ok() ? *v : ~uint64_t{0};
  };
  return word(0) == l.vaddr && word(kMdFuncnametab) == l.vaddr + l.funcname_off &&
         word(kMdCutab) == l.vaddr + l.cu_off && word(kMdFiletab) == l.vaddr + l.filetab_off;
}

// Finds runtime.firstmoduledata: .go.module (1.26+), the symbol, R_X86_64_RELATIVE relocations to
// the table (PIE stores zeros in the file), or a scan of writable data for a pointer to the table.
uint64_t Pclntab::Layout::LocateModuledata() const {
  const Layout& l = *this;
  const ElfFile& elf = *this->elf;
  if (const ElfSection* s = elf.FindSection(".go.module"); s != nullptr && IsModuledata(s->addr)) {
    return s->addr;
  }
  if (absl::StatusOr<uint64_t> sym = elf.LookupSymbol("runtime.firstmoduledata");
      sym.ok() && IsModuledata(*sym)) {
    return *sym;
  }
  for (uint64_t a : elf.RelativeRelocationsTo(l.vaddr)) {
    if (IsModuledata(a)) return a;
  }
  for (const ElfSection& s : elf.sections()) {
    if (!((s.flags & SHF_ALLOC) && (s.flags & SHF_WRITE) && s.type == SHT_PROGBITS)) continue;
    absl::StatusOr<absl::string_view> bytes = elf.SectionData(s);
    if (!bytes.ok()) continue;
    uint64_t first = (s.addr + 7) & ~uint64_t{7};
    for (uint64_t a = first; a + 8 <= s.addr + bytes->size(); a += 8) {
      if (Le64(bytes->data() + (a - s.addr)) == l.vaddr && IsModuledata(a)) return a;
    }
  }
  return 0;
}

// moduledata.gofunc, whose word index depends on the Go version (see kMdGofunc*).
uint64_t Pclntab::Layout::ReadGofunc(uint64_t md) const {
  const Layout& l = *this;
  const ElfFile& elf = *this->elf;
  auto word = [&](uint64_t i) -> uint64_t {
    absl::StatusOr<uint64_t> v = elf.ReadPointer(md + 8 * i);
    return v.ok() ? *v : 0;
  };
  uint64_t index = kMdGofunc118;
  if (l.format == Layout::Format::k120) {
    // 1.27 has types, typedesclen (a length), etypes where 1.20-1.26 have types, etypes, rodata
    // (rodata <= types there, so the length test below cannot pass).
    uint64_t types = word(kMdTypes), w38 = word(kMdTypes + 1), w39 = word(kMdTypes + 2);
    bool is127 = w39 >= types && w38 <= w39 - types;
    index = is127 ? kMdGofunc127 : kMdGofunc120;
  }
  return word(index);
}

absl::StatusOr<std::unique_ptr<Pclntab>> Pclntab::Parse(const ElfFile& elf) {
  ASSIGN_OR_RETURN(Layout l, Layout::Locate(elf));
  uint64_t md = l.LocateModuledata();
  uint64_t md_text = 0;
  if (md != 0) {
    absl::StatusOr<uint64_t> t = elf.ReadPointer(md + 8 * kMdText);
    if (t.ok()) md_text = *t;
    if (l.format != Layout::Format::k116) l.gofunc = l.ReadGofunc(md);
  }
  if (l.format == Layout::Format::k116) {
    l.text_start = md_text;
    if (l.text_start == 0) {
      ASSIGN_OR_RETURN(l.text_start, l.FtabEntry(0));
    }
  } else {
    // textStart may be a relocated word in PIE; 1.26+ leaves it zero.
    ASSIGN_OR_RETURN(l.text_start, elf.ReadPointer(l.vaddr + 24));
    if (l.text_start == 0) l.text_start = md_text;
    if (l.text_start == 0) {
      return absl::NotFoundError(
          "pclntab: textStart is 0 (Go 1.26+) and the moduledata holding `text` was not found");
    }
  }
  auto tab = std::unique_ptr<Pclntab>(new Pclntab());
  tab->magic_ = Le32(l.tab.data());
  tab->vaddr_ = l.vaddr;
  tab->text_start_ = l.text_start;
  tab->moduledata_ = md;
  tab->nfunc_ = l.nfunc;
  // FuncIDWrapper is the last funcID in every release (its value changes): the largest in the
  // table, which always holds wrappers (ABI wrappers, generated equality functions).
  for (size_t i = 0; i < l.nfunc; ++i) {
    absl::StatusOr<FuncInfo> f = l.Func(i);
    if (f.ok()) tab->wrapper_func_id_ = std::max(tab->wrapper_func_id_, f->func_id);
  }
  tab->layout_ = std::make_shared<const Layout>(l);
  return tab;
}

absl::StatusOr<Function> Pclntab::FunctionAt(size_t i) const {
  if (i >= nfunc_)
    return absl::OutOfRangeError(absl::StrFormat("function index %d >= %d", i, nfunc_));
  Function fn;
  ASSIGN_OR_RETURN(FuncInfo f, layout_->Func(i));
  ASSIGN_OR_RETURN(fn.name, Copy(layout_->Name(f.nameoff)));
  ASSIGN_OR_RETURN(fn.entry, layout_->FtabEntry(i));
  ASSIGN_OR_RETURN(fn.end, layout_->FtabEntry(i + 1));
  return fn;
}

absl::StatusOr<Function> Pclntab::FindFunction(absl::string_view name) const {
  if (!by_name_built_) {
    by_name_built_ = true;
    // Bounded by nfunc, which Parse checked against the table size.
    by_name_.reserve(nfunc_);
    for (size_t i = 0; i < nfunc_; ++i) {
      absl::StatusOr<FuncInfo> f = layout_->Func(i);
      if (!f.ok()) continue;
      absl::StatusOr<absl::string_view> n = layout_->Name(f->nameoff);
      if (!n.ok()) continue;
      // A name appears twice when an ABI wrapper (ABI0 <-> ABIInternal) exists; the wrapper has
      // FuncIDWrapper, the last funcID in every version, so the smallest funcID is the real body.
      auto [it, inserted] = by_name_.emplace(*n, i);
      if (!inserted) {
        absl::StatusOr<FuncInfo> prev = layout_->Func(it->second);
        if (prev.ok() && f->func_id < prev->func_id) it->second = i;
      }
    }
  }
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return absl::NotFoundError(absl::StrCat("no function ", name));
  return FunctionAt(it->second);
}

absl::StatusOr<Function> Pclntab::FunctionForPC(uint64_t pc) const {
  ASSIGN_OR_RETURN(uint64_t i, layout_->IndexForPC(pc));
  return FunctionAt(i);
}

absl::StatusOr<std::vector<SourceFrame>> Pclntab::Symbolize(uint64_t pc) const {
  const Layout& l = *layout_;
  ASSIGN_OR_RETURN(uint64_t i, l.IndexForPC(pc));
  ASSIGN_OR_RETURN(FuncInfo f, l.Func(i));
  ASSIGN_OR_RETURN(uint64_t tree, l.Funcdata(f, kFuncdataInlTree));
  ASSIGN_OR_RETURN(uint32_t inl_table, l.Pcdata(f, kPcdataInlTreeIndex));
  int32_t ix = -1;
  if (tree != 0) {
    ASSIGN_OR_RETURN(ix, l.PcValue(inl_table, f.entry, pc));
  }

  // The runtime's inline unwinder: frame name from inltree[ix], file:line at the current pc, then
  // continue at the call site entry+parentPc until the index says we are in the outer function.
  std::vector<SourceFrame> frames;
  uint64_t cur = pc;
  for (int depth = 0;; ++depth) {
    if (depth > kMaxInlineDepth)
      return absl::DataLossError("pclntab: inline tree too deep or cyclic");
    SourceFrame frame;
    ASSIGN_OR_RETURN(int32_t fileno, l.PcValue(f.pcfile, f.entry, cur));
    ASSIGN_OR_RETURN(frame.file, Copy(l.File(f, fileno)));
    ASSIGN_OR_RETURN(frame.line, l.PcValue(f.pcln, f.entry, cur));
    if (frame.line < 0) frame.line = 0;  // unknown
    if (ix < 0) {
      ASSIGN_OR_RETURN(frame.function, Copy(l.Name(f.nameoff)));
      frame.wrapper = wrapper_func_id_ != 0 && f.func_id == wrapper_func_id_;
      frames.push_back(std::move(frame));
      break;
    }
    ASSIGN_OR_RETURN(Layout::InlinedCall call, l.InlineEntry(tree, ix));
    ASSIGN_OR_RETURN(frame.function, Copy(l.Name(call.nameoff)));
    frame.inlined = true;
    frame.wrapper = wrapper_func_id_ != 0 && call.func_id == wrapper_func_id_;
    frames.push_back(std::move(frame));
    if (call.parent_pc < 0) return absl::DataLossError("pclntab: negative inline parentPc");
    cur = f.entry + static_cast<uint64_t>(call.parent_pc);
    ASSIGN_OR_RETURN(ix, l.PcValue(inl_table, f.entry, cur));
  }
  return frames;
}

}  // namespace ctxagent::symbols
