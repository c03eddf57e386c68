// Read-only view of an ELF64 little-endian executable: sections, segments, .symtab, address
// mapping. Every accessor is bounds-checked against the file: a truncated or hostile file yields an
// error, never a read outside the mapping or an allocation sized by an untrusted header field.
#ifndef CTXAGENT_SYMBOLS_ELF_FILE_H_
#define CTXAGENT_SYMBOLS_ELF_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ctxagent::symbols {

struct ElfSection {
  std::string name;
  uint32_t type = 0;   // SHT_*
  uint64_t flags = 0;  // SHF_*
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct ElfSegment {
  uint32_t type = 0;   // PT_*
  uint32_t flags = 0;  // PF_*
  uint64_t offset = 0;
  uint64_t vaddr = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
};

struct ElfSymbol {
  std::string name;
  uint64_t value = 0;
  uint64_t size = 0;
  uint8_t type = 0;  // STT_*
};

class ElfFile {
 public:
  // Maps the file read-only. Errors: NotFound/PermissionDenied from open, InvalidArgument for
  // non-ELF or malformed headers, Unimplemented for ELF32 / big-endian.
  static absl::StatusOr<std::unique_ptr<ElfFile>> Open(const std::string& path);
  // Maps the file open as `fd` (which stays the caller's); `name` appears in error messages.
  static absl::StatusOr<std::unique_ptr<ElfFile>> OpenFd(int fd, const std::string& name);
  // Parses an in-memory image (tests, fuzzing). `name` only appears in error messages.
  static absl::StatusOr<std::unique_ptr<ElfFile>> FromBuffer(std::string data,
                                                             std::string name = "<buffer>");
  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  const std::string& name() const { return name_; }
  absl::string_view data() const { return data_; }
  uint16_t machine() const { return machine_; }    // EM_*
  uint16_t elf_type() const { return elf_type_; }  // ET_*
  bool is_pie() const;                             // ET_DYN
  uint64_t entry() const { return entry_; }

  absl::Span<const ElfSection> sections() const { return sections_; }
  absl::Span<const ElfSegment> segments() const { return segments_; }
  const ElfSection* FindSection(absl::string_view name) const;
  // The section (or, without section headers, PT_LOAD segment) that holds `vaddr`: [start, end),
  // {0, 0} when none does.
  std::pair<uint64_t, uint64_t> ContainingRange(uint64_t vaddr) const;
  // What the PT_LOAD segments span in memory, link-time: [start, end), {0, 0} without any.
  std::pair<uint64_t, uint64_t> ImageRange() const;
  // Bytes of a section in the file (empty for SHT_NOBITS).
  absl::StatusOr<absl::string_view> SectionData(const ElfSection& section) const;

  bool has_symtab() const { return FindSection(".symtab") != nullptr; }
  // Address of a .symtab symbol; NotFound when absent (stripped binaries have no .symtab).
  absl::StatusOr<uint64_t> LookupSymbol(absl::string_view name) const;

  // Mapping between virtual addresses and file offsets through PT_LOAD segments: a uprobe is
  // attached at a file offset.
  absl::StatusOr<uint64_t> VaddrToFileOffset(uint64_t vaddr) const;
  absl::StatusOr<uint64_t> FileOffsetToVaddr(uint64_t offset) const;
  // `len` bytes at `vaddr`, which must lie in the file-backed part of one PT_LOAD segment.
  absl::StatusOr<absl::string_view> ReadAt(uint64_t vaddr, uint64_t len) const;
  // Up to `max_len` bytes at `vaddr`, fewer where its segment's file-backed part ends.
  absl::StatusOr<absl::string_view> ReadUpTo(uint64_t vaddr, uint64_t max_len) const;
  // A pointer-sized word at `vaddr` as the loader would see it before adding the load bias: a
  // R_X86_64_RELATIVE relocation's addend when one targets that word (PIE), else the file's bytes.
  absl::StatusOr<uint64_t> ReadPointer(uint64_t vaddr) const;
  // Addresses of R_X86_64_RELATIVE relocations whose addend equals `value` (to find pointers to
  // `value` in PIE data whose file bytes are zero).
  std::vector<uint64_t> RelativeRelocationsTo(uint64_t value) const;

 private:
  ElfFile() = default;
  absl::Status Parse();
  absl::Status LoadRelocations() const;

  std::string name_;
  std::string owned_;    // backing store for FromBuffer
  void* map_ = nullptr;  // backing store for Open
  size_t map_size_ = 0;
  absl::string_view data_;
  uint16_t machine_ = 0;
  uint16_t elf_type_ = 0;
  uint64_t entry_ = 0;
  std::vector<ElfSection> sections_;
  std::vector<ElfSegment> segments_;
  mutable bool relocations_loaded_ = false;
  mutable absl::flat_hash_map<uint64_t, uint64_t> relative_relocs_;  // target vaddr -> addend
};

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_ELF_FILE_H_
