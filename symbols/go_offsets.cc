#include "symbols/go_offsets.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "symbols/go_facts.h"

namespace ctxagent::symbols {

std::vector<std::pair<const char*, int32_t>> GoOffsets::Named() const {
  std::vector<std::pair<const char*, int32_t>> out;
  for (const OffsetFact& f : OffsetFacts()) {
    out.emplace_back(f.name, f.offset != nullptr ? this->*f.offset : (this->*f.flag ? 1 : 0));
  }
  return out;
}

bool GoOffsets::operator==(const GoOffsets& o) const { return Named() == o.Named(); }

int32_t GoOffsets::GReadSpan() const {
  if (g_goid < 0) return 0;
  int32_t end = 0;
  for (const OffsetFact& f : OffsetFacts()) {
    if (f.offset == nullptr) continue;
    const int32_t off = this->*f.offset;
    if (std::strcmp(f.type, "runtime.g") == 0) end = std::max(end, off + 8);
    if (std::strcmp(f.type, "runtime.gobuf") == 0 && g_sched >= 0) {
      end = std::max(end, g_sched + off + 8);
    }
  }
  return end;
}

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

// Offsets past this are not a field of these structs (runtime.mheap, the largest, is ~91 KiB):
// the DWARF is corrupt.
constexpr Dwarf_Word kMaxSaneOffset = 1 << 20;

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
  if (dwarf_getlocation(&attr, &ops, &nops) == 0 && nops == 1 && ops[0].atom == DW_OP_plus_uconst &&
      ops[0].number <= kMaxSaneOffset) {
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

// Sets every fact whose DWARF location is member `name` of type `type` (from the member's DIE).
void ApplyMember(const char* type, const char* name, Dwarf_Die* member, GoOffsets& out) {
  for (const OffsetFact& f : OffsetFacts()) {
    const bool here = (std::strcmp(type, f.type) == 0 && std::strcmp(name, f.member) == 0) ||
                      (f.alt_type != nullptr && std::strcmp(type, f.alt_type) == 0 &&
                       std::strcmp(name, f.alt_member) == 0);
    if (!here) continue;
    if (f.offset != nullptr) out.*f.offset = static_cast<int32_t>(MemberOffset(member));
    if (f.flag != nullptr) out.*f.flag = MemberIsPointer(member);
  }
}

void ReadStruct(Dwarf_Die* type, const char* type_name, GoOffsets& out) {
  Dwarf_Die member;
  if (dwarf_child(type, &member) != 0) return;
  do {
    if (dwarf_tag(&member) != DW_TAG_member) continue;
    const char* name = dwarf_diename(&member);
    if (name != nullptr) ApplyMember(type_name, name, &member, out);
  } while (dwarf_siblingof(&member, &member) == 0);
}

// The DWARF types the facts live in (each fact's type and its later name).
std::vector<const char*> WantedTypes() {
  std::vector<const char*> out;
  auto add = [&](const char* t) {
    if (t == nullptr) return;
    for (const char* have : out) {
      if (std::strcmp(have, t) == 0) return;
    }
    out.push_back(t);
  };
  for (const OffsetFact& f : OffsetFacts()) {
    add(f.type);
    add(f.alt_type);
  }
  return out;
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
  // Types are found once each; a fact's later type name stands in for its first one.
  const std::vector<const char*> wanted = WantedTypes();
  // Each release has one of a fact's two type names (several facts may share one).
  absl::flat_hash_set<absl::string_view> alternatives;
  for (const OffsetFact& f : OffsetFacts()) {
    if (f.alt_type != nullptr) alternatives.insert(f.alt_type);
  }
  const size_t needed = wanted.size() - alternatives.size();
  std::vector<bool> found(wanted.size(), false);
  size_t num_found = 0;
  Dwarf_CU* cu = nullptr;
  Dwarf_Die cudie;
  int rc = 0;
  // Go emits its types as direct children of the compile units: no need to descend further.
  while (num_found < needed &&
         (rc = dwarf_get_units(dw.get(), cu, &cu, nullptr, nullptr, &cudie, nullptr)) == 0) {
    Dwarf_Die die;
    if (dwarf_child(&cudie, &die) != 0) continue;
    do {
      if (dwarf_tag(&die) != DW_TAG_structure_type || dwarf_hasattr(&die, DW_AT_declaration)) {
        continue;
      }
      const char* name = dwarf_diename(&die);
      if (name == nullptr) continue;
      for (size_t i = 0; i < wanted.size(); ++i) {
        if (found[i] || std::strcmp(name, wanted[i]) != 0) continue;
        ReadStruct(&die, wanted[i], out);
        found[i] = true;
        ++num_found;
      }
    } while (num_found < needed && dwarf_siblingof(&die, &die) == 0);
  }
  // wanted[0] is runtime.g, the first fact's type.
  if (!found[0] && rc < 0) {
    return absl::DataLossError(absl::StrCat(path, ": bad DWARF unit: ", dwarf_errmsg(-1)));
  }
  if (!found[0]) {
    return absl::NotFoundError(absl::StrCat(path, ": DWARF has no runtime.g"));
  }
  return out;
}

bool TableVerifiedAgainstDwarf(const GoVersion& version) {
  return version.major == 1 && absl::c_linear_search(kDwarfVerifiedMinors, version.minor);
}

absl::StatusOr<GoOffsets> OffsetsForVersion(const GoVersion& version) {
  if (!IsSupportedGoVersion(version)) {
    return absl::UnimplementedError(absl::StrCat("no offset table for go", version.major, ".",
                                                 version.minor,
                                                 " (supported: ", SupportedGoVersions(), ")"));
  }
  GoOffsets o;
  o.source = GoOffsets::Source::kTable;
  for (const OffsetFact& f : OffsetFacts()) {
    const int32_t v = ValueAt(f.history, version.minor);
    if (f.offset != nullptr) o.*f.offset = v;
    if (f.flag != nullptr) o.*f.flag = v == 1;
  }
  return o;
}

}  // namespace ctxagent::symbols
