#include "symbols/elf_file.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace {

// More program headers than this is no real executable; refusing bounds parse work and memory.
constexpr uint64_t kMaxSegments = 1 << 12;

template <typename T>
absl::StatusOr<T> ReadStruct(absl::string_view data, uint64_t offset, absl::string_view what) {
  if (offset > data.size() || data.size() - offset < sizeof(T)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s at file offset 0x%x lies beyond the end of the file (%u bytes)", what,
                        offset, data.size()));
  }
  T out;
  memcpy(&out, data.data() + offset, sizeof(T));
  return out;
}

absl::StatusOr<absl::string_view> Slice(absl::string_view data, uint64_t offset, uint64_t size,
                                        absl::string_view what) {
  if (offset > data.size() || data.size() - offset < size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s (offset 0x%x, size 0x%x) lies beyond the end of the file", what, offset, size));
  }
  return data.substr(offset, size);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ElfFile>> ElfFile::Open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer before the type check.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("cannot open ", path));
  }
  absl::StatusOr<std::unique_ptr<ElfFile>> elf = OpenFd(fd, path);
  close(fd);
  return elf;
}

absl::StatusOr<std::unique_ptr<ElfFile>> ElfFile::OpenFd(int fd, const std::string& name) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": not a regular file"));
  }
  std::unique_ptr<ElfFile> elf(new ElfFile());
  elf->name_ = name;
  if (st.st_size > 0) {
    // MAP_SHARED, never MAP_PRIVATE: the kernel writes every uprobe's int3 into each private file
    // mapping that may execute (VM_MAYEXEC, whatever PROT), readers' included, so a binary read
    // while a system-wide probe is on it would be planned from the breakpoints, not its code.
    // Shared mappings are not uprobe targets (valid_vma() in kernel/events/uprobes.c).
    void* map = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      int err = errno;
      return absl::ErrnoToStatus(err, absl::StrCat("cannot map ", name));
    }
    elf->map_ = map;
    elf->map_size_ = st.st_size;
    elf->data_ = absl::string_view(static_cast<const char*>(map), st.st_size);
  }
  RETURN_IF_ERROR(elf->Parse());
  return elf;
}

absl::StatusOr<std::unique_ptr<ElfFile>> ElfFile::FromBuffer(std::string data, std::string name) {
  std::unique_ptr<ElfFile> elf(new ElfFile());
  elf->name_ = std::move(name);
  elf->owned_ = std::move(data);
  elf->data_ = elf->owned_;
  RETURN_IF_ERROR(elf->Parse());
  return elf;
}

ElfFile::~ElfFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

bool ElfFile::is_pie() const { return elf_type_ == ET_DYN; }

absl::Status ElfFile::Parse() {
  if (data_.size() < EI_NIDENT || memcmp(data_.data(), ELFMAG, SELFMAG) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": not an ELF file"));
  }
  if (data_[EI_CLASS] != ELFCLASS64 || data_[EI_DATA] != ELFDATA2LSB) {
    return absl::UnimplementedError(
        absl::StrCat(name_, ": only 64-bit little-endian ELF files are supported"));
  }
  ASSIGN_OR_RETURN(Elf64_Ehdr eh, ReadStruct<Elf64_Ehdr>(data_, 0, "ELF header"));
  machine_ = eh.e_machine;
  elf_type_ = eh.e_type;
  entry_ = eh.e_entry;

  if (eh.e_phnum > kMaxSegments) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: implausible program header count %u", name_, eh.e_phnum));
  }
  if (eh.e_phnum > 0 && eh.e_phentsize != sizeof(Elf64_Phdr)) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": unexpected program header size"));
  }
  for (uint64_t i = 0; i < eh.e_phnum; ++i) {
    ASSIGN_OR_RETURN(
        Elf64_Phdr ph,
        ReadStruct<Elf64_Phdr>(data_, eh.e_phoff + i * sizeof(Elf64_Phdr), "program header"));
    segments_.push_back({ph.p_type, ph.p_flags, ph.p_offset, ph.p_vaddr, ph.p_filesz, ph.p_memsz});
  }

  if (eh.e_shnum == 0) return absl::OkStatus();
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": unexpected section header size"));
  }
  std::vector<Elf64_Shdr> raw;
  raw.reserve(eh.e_shnum);
  for (uint64_t i = 0; i < eh.e_shnum; ++i) {
    ASSIGN_OR_RETURN(
        Elf64_Shdr sh,
        ReadStruct<Elf64_Shdr>(data_, eh.e_shoff + i * sizeof(Elf64_Shdr), "section header"));
    raw.push_back(sh);
  }
  if (eh.e_shstrndx >= raw.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": section name table index out of range"));
  }
  const Elf64_Shdr& strtab = raw[eh.e_shstrndx];
  ASSIGN_OR_RETURN(absl::string_view names,
                   Slice(data_, strtab.sh_offset, strtab.sh_size, "section name table"));
  for (const Elf64_Shdr& sh : raw) {
    ElfSection s;
    if (sh.sh_name < names.size()) {
      absl::string_view rest = names.substr(sh.sh_name);
      s.name = std::string(rest.substr(0, rest.find('\0')));
    }
    s.type = sh.sh_type;
    s.flags = sh.sh_flags;
    s.addr = sh.sh_addr;
    s.offset = sh.sh_offset;
    s.size = sh.sh_size;
    sections_.push_back(std::move(s));
  }
  return absl::OkStatus();
}

const ElfSection* ElfFile::FindSection(absl::string_view name) const {
  for (const ElfSection& s : sections_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::pair<uint64_t, uint64_t> ElfFile::ImageRange() const {
  uint64_t start = UINT64_MAX, end = 0;
  for (const ElfSegment& seg : segments_) {
    if (seg.type != PT_LOAD) continue;
    start = std::min(start, seg.vaddr);
    end = std::max(end, seg.vaddr + seg.memsz);
  }
  return end == 0 ? std::pair<uint64_t, uint64_t>{0, 0} : std::pair{start, end};
}

std::pair<uint64_t, uint64_t> ElfFile::ContainingRange(uint64_t vaddr) const {
  for (const ElfSection& s : sections_) {
    if (s.addr != 0 && s.type != SHT_NOBITS && vaddr >= s.addr && vaddr - s.addr < s.size) {
      return {s.addr, s.addr + s.size};
    }
  }
  for (const ElfSegment& seg : segments_) {
    if (seg.type == PT_LOAD && vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.filesz) {
      return {seg.vaddr, seg.vaddr + seg.filesz};
    }
  }
  return {0, 0};
}

absl::StatusOr<absl::string_view> ElfFile::SectionData(const ElfSection& section) const {
  if (section.type == SHT_NOBITS) return absl::string_view();
  return Slice(data_, section.offset, section.size, absl::StrCat("section ", section.name));
}

absl::StatusOr<uint64_t> ElfFile::LookupSymbol(absl::string_view name) const {
  // A scan, not a table: a binary needs two or three symbols, and hashing the ~30k names of a Go
  // binary (with the pages a table touches) cost more than scanning them each time.
  const ElfSection* symtab = FindSection(".symtab");
  const ElfSection* strtab = FindSection(".strtab");
  if (symtab != nullptr && strtab != nullptr) {
    ASSIGN_OR_RETURN(absl::string_view syms, SectionData(*symtab));
    ASSIGN_OR_RETURN(absl::string_view strs, SectionData(*strtab));
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= syms.size(); off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      memcpy(&sym, syms.data() + off, sizeof(sym));
      if (sym.st_name == 0 || sym.st_name >= strs.size() || sym.st_shndx == SHN_UNDEF) continue;
      absl::string_view rest = strs.substr(sym.st_name);
      if (absl::StartsWith(rest, name) && (rest.size() == name.size() || rest[name.size()] == 0)) {
        return sym.st_value;
      }
    }
  }
  return absl::NotFoundError(absl::StrCat(name_, ": no symbol ", name));
}

absl::StatusOr<uint64_t> ElfFile::VaddrToFileOffset(uint64_t vaddr) const {
  for (const ElfSegment& seg : segments_) {
    if (seg.type == PT_LOAD && vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.filesz) {
      return seg.offset + (vaddr - seg.vaddr);
    }
  }
  return absl::NotFoundError(
      absl::StrFormat("%s: address 0x%x is not in a file-backed loadable segment", name_, vaddr));
}

absl::StatusOr<uint64_t> ElfFile::FileOffsetToVaddr(uint64_t offset) const {
  for (const ElfSegment& seg : segments_) {
    if (seg.type == PT_LOAD && offset >= seg.offset && offset - seg.offset < seg.filesz) {
      return seg.vaddr + (offset - seg.offset);
    }
  }
  return absl::NotFoundError(
      absl::StrFormat("%s: file offset 0x%x is not in a loadable segment", name_, offset));
}

absl::StatusOr<absl::string_view> ElfFile::ReadAt(uint64_t vaddr, uint64_t len) const {
  for (const ElfSegment& seg : segments_) {
    if (seg.type != PT_LOAD || vaddr < seg.vaddr || vaddr - seg.vaddr >= seg.filesz) continue;
    if (seg.filesz - (vaddr - seg.vaddr) < len) break;
    return Slice(data_, seg.offset + (vaddr - seg.vaddr), len, "segment data");
  }
  return absl::OutOfRangeError(absl::StrFormat(
      "%s: %u bytes at 0x%x are not inside one file-backed loadable segment", name_, len, vaddr));
}

absl::StatusOr<absl::string_view> ElfFile::ReadUpTo(uint64_t vaddr, uint64_t max_len) const {
  for (const ElfSegment& seg : segments_) {
    if (seg.type != PT_LOAD || vaddr < seg.vaddr || vaddr - seg.vaddr >= seg.filesz) continue;
    return Slice(data_, seg.offset + (vaddr - seg.vaddr),
                 std::min(max_len, seg.filesz - (vaddr - seg.vaddr)), "segment data");
  }
  return absl::OutOfRangeError(
      absl::StrFormat("%s: 0x%x is not inside a file-backed loadable segment", name_, vaddr));
}

absl::Status ElfFile::LoadRelocations() const {
  if (relocations_loaded_) return absl::OkStatus();
  relocations_loaded_ = true;
  for (const ElfSection& s : sections_) {
    if (s.type != SHT_RELA) continue;
    ASSIGN_OR_RETURN(absl::string_view rela, SectionData(s));
    for (uint64_t off = 0; off + sizeof(Elf64_Rela) <= rela.size(); off += sizeof(Elf64_Rela)) {
      Elf64_Rela r;
      memcpy(&r, rela.data() + off, sizeof(r));
      if (ELF64_R_TYPE(r.r_info) == R_X86_64_RELATIVE) relative_relocs_[r.r_offset] = r.r_addend;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ElfFile::ReadPointer(uint64_t vaddr) const {
  if (is_pie()) {
    RETURN_IF_ERROR(LoadRelocations());
    auto it = relative_relocs_.find(vaddr);
    if (it != relative_relocs_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(absl::string_view bytes, ReadAt(vaddr, sizeof(uint64_t)));
  uint64_t v;
  memcpy(&v, bytes.data(), sizeof(v));
  return v;
}

std::vector<uint64_t> ElfFile::RelativeRelocationsTo(uint64_t value) const {
  std::vector<uint64_t> out;
  if (!LoadRelocations().ok()) return out;
  for (const auto& [target, addend] : relative_relocs_) {
    if (addend == value) out.push_back(target);
  }
  return out;
}

}  // namespace ctxagent::symbols
