#include "symbols/buildinfo.h"

#include <elf.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "symbols/status_macros.h"

namespace ctxagent::symbols {
namespace {

constexpr absl::string_view kMagic("\xff Go buildinf:", 14);
constexpr size_t kHeaderSize = 32;
constexpr uint8_t kFlagBigEndian = 0x1;
constexpr uint8_t kFlagInline = 0x2;  // Go 1.18+: strings follow the header as varint-prefixed data
// Strings in a build info blob are short; anything longer is a corrupt or hostile file.
constexpr uint64_t kMaxStringLen = 1 << 20;

// Reads a uvarint-length-prefixed string from the front of `data` and advances it.
absl::StatusOr<absl::string_view> ReadVarString(absl::string_view& data) {
  uint64_t len = 0;
  for (int shift = 0, i = 0;; shift += 7, ++i) {
    if (i >= static_cast<int>(data.size()) || i >= 10) {
      return absl::InvalidArgumentError("truncated varint in build info");
    }
    uint8_t b = data[i];
    len |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      data.remove_prefix(i + 1);
      break;
    }
  }
  if (len > data.size() || len > kMaxStringLen) {
    return absl::InvalidArgumentError("build info string runs past its section");
  }
  absl::string_view out = data.substr(0, len);
  data.remove_prefix(len);
  return out;
}

// Pre-1.18: the header holds pointers to Go string headers {data, len}.
absl::StatusOr<std::string> ReadGoStringAt(const ElfFile& elf, uint64_t string_header) {
  ASSIGN_OR_RETURN(uint64_t ptr, elf.ReadPointer(string_header));
  ASSIGN_OR_RETURN(uint64_t len, elf.ReadPointer(string_header + 8));
  if (len > kMaxStringLen) return absl::InvalidArgumentError("build info string too long");
  ASSIGN_OR_RETURN(absl::string_view s, elf.ReadAt(ptr, len));
  return std::string(s);
}

// The blob is found by section name, else (sections stripped) by a scan of writable segments.
absl::StatusOr<uint64_t> FindBuildInfo(const ElfFile& elf) {
  if (const ElfSection* s = elf.FindSection(".go.buildinfo"); s != nullptr) return s->addr;
  for (const ElfSegment& seg : elf.segments()) {
    if (seg.type != PT_LOAD || (seg.flags & PF_W) == 0) continue;
    auto bytes = elf.ReadAt(seg.vaddr, seg.filesz);
    if (!bytes.ok()) continue;
    for (size_t off = 0; off + kHeaderSize <= bytes->size(); off += 16) {
      if (bytes->substr(off, kMagic.size()) == kMagic) return seg.vaddr + off;
    }
  }
  return absl::NotFoundError(absl::StrCat(elf.name(), ": no Go build info (not a Go binary)"));
}

void ParseModinfo(absl::string_view modinfo, BuildInfo& info) {
  // The runtime frames modinfo with 16-byte sentinels on both sides.
  if (modinfo.size() >= 33 && modinfo[modinfo.size() - 17] == '\n') {
    modinfo = modinfo.substr(16, modinfo.size() - 32);
  }
  info.modinfo = std::string(modinfo);
  for (absl::string_view line : absl::StrSplit(modinfo, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
    if (f.size() >= 2 && f[0] == "path") {
      info.main_path = std::string(f[1]);
    } else if (f.size() >= 3 && f[0] == "mod") {
      info.main_module = std::string(f[1]);
      info.main_version = std::string(f[2]);
    } else if (f.size() >= 2 && f[0] == "build") {
      std::pair<std::string, std::string> kv = absl::StrSplit(f[1], absl::MaxSplits('=', 1));
      info.settings.push_back(std::move(kv));
    }
  }
}

// True for exactly "go1.N", "go1.N.P", "go1.NrcK"/"go1.NbetaK" (a release version, nothing else).
bool IsReleaseVersion(absl::string_view s) {
  if (!absl::ConsumePrefix(&s, "go1.")) return false;
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && absl::ascii_isdigit(s[i])) ++i;
    return i > start;
  };
  if (!digits()) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  } else if (absl::StartsWith(s.substr(i), "rc") || absl::StartsWith(s.substr(i), "beta")) {
    i += s[i] == 'r' ? 2 : 4;
    if (!digits()) return false;
  }
  return i == s.size();
}

// `runtime.buildVersion` is a Go string {ptr, len} in the data segments pointing at "go1.N.P". The
// header is found by scanning pointer-aligned words (or, in PIE, relative relocations) for a
// pointer+length that spells a release version; ambiguity is an error, not a guess.
absl::StatusOr<std::string> FindRuntimeBuildVersion(const ElfFile& elf) {
  std::vector<uint64_t> candidates;
  for (const ElfSegment& seg : elf.segments()) {
    if (seg.type != PT_LOAD || (seg.flags & PF_W) == 0) continue;
    auto bytes = elf.ReadAt(seg.vaddr, seg.filesz);
    if (!bytes.ok()) continue;
    for (size_t off = 0; off + 16 <= bytes->size(); off += 8) {
      uint64_t len;
      memcpy(&len, bytes->data() + off + 8, 8);
      if (len >= 5 && len <= 16) candidates.push_back(seg.vaddr + off);
    }
  }
  std::string found;
  for (uint64_t header : candidates) {
    auto ptr = elf.ReadPointer(header);
    auto len = elf.ReadPointer(header + 8);
    if (!ptr.ok() || !len.ok() || *ptr == 0) continue;
    auto text = elf.ReadAt(*ptr, *len);
    if (!text.ok() || !IsReleaseVersion(*text)) continue;
    if (!found.empty() && found != *text) {
      return absl::NotFoundError(absl::StrCat(elf.name(),
                                              ": no Go build info, and several Go "
                                              "version strings (",
                                              found, ", ", *text, ")"));
    }
    found = std::string(*text);
  }
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat(elf.name(), ": no Go build info (not a Go binary)"));
  }
  return found;
}

}  // namespace

absl::StatusOr<GoVersion> GoVersion::Parse(absl::string_view text) {
  GoVersion v;
  v.raw = std::string(text);
  size_t at = text.find("go1");
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("not a Go version: \"", text, "\""));
  }
  absl::string_view rest = text.substr(at + 2);
  int parts[3] = {0, 0, 0};
  int n = 0;
  while (n < 3) {
    size_t digits = 0;
    while (digits < rest.size() && absl::ascii_isdigit(rest[digits])) ++digits;
    if (digits == 0 || digits > 6 || !absl::SimpleAtoi(rest.substr(0, digits), &parts[n])) break;
    rest.remove_prefix(digits);
    ++n;
    if (rest.empty() || rest[0] != '.') break;
    rest.remove_prefix(1);
  }
  if (n < 2) return absl::InvalidArgumentError(absl::StrCat("not a Go version: \"", text, "\""));
  v.major = parts[0];
  v.minor = parts[1];
  v.patch = parts[2];
  v.suffix = std::string(rest);
  return v;
}

std::string GoVersion::ShortString() const { return absl::StrCat("go", major, ".", minor); }

absl::StatusOr<BuildInfo> ReadBuildInfo(const ElfFile& elf) {
  absl::StatusOr<uint64_t> found = FindBuildInfo(elf);
  if (absl::IsNotFound(found.status()) &&
      (elf.FindSection(".gopclntab") != nullptr || elf.FindSection(".go.module") != nullptr ||
       elf.FindSection(".data.rel.ro.gopclntab") != nullptr)) {
    ASSIGN_OR_RETURN(std::string version, FindRuntimeBuildVersion(elf));
    BuildInfo info;
    ASSIGN_OR_RETURN(info.version, GoVersion::Parse(version));
    info.version_source = "runtime.buildVersion";
    return info;
  }
  if (!found.ok()) return found.status();
  uint64_t addr = *found;
  ASSIGN_OR_RETURN(absl::string_view header, elf.ReadAt(addr, kHeaderSize));
  if (header.substr(0, kMagic.size()) != kMagic) {
    return absl::InvalidArgumentError(absl::StrCat(elf.name(), ": .go.buildinfo has a bad magic"));
  }
  uint8_t ptr_size = header[14];
  uint8_t flags = header[15];
  if (ptr_size != 8 || (flags & kFlagBigEndian) != 0) {
    return absl::UnimplementedError(
        absl::StrCat(elf.name(), ": build info for a non-64-bit or big-endian target"));
  }
  std::string version, modinfo;
  if (flags & kFlagInline) {
    ASSIGN_OR_RETURN(absl::string_view rest, elf.ReadUpTo(addr + kHeaderSize, 2 * kMaxStringLen));
    ASSIGN_OR_RETURN(absl::string_view v, ReadVarString(rest));
    ASSIGN_OR_RETURN(absl::string_view m, ReadVarString(rest));
    version = std::string(v);
    modinfo = std::string(m);
  } else {
    ASSIGN_OR_RETURN(uint64_t vptr, elf.ReadPointer(addr + 16));
    ASSIGN_OR_RETURN(uint64_t mptr, elf.ReadPointer(addr + 16 + ptr_size));
    ASSIGN_OR_RETURN(version, ReadGoStringAt(elf, vptr));
    ASSIGN_OR_RETURN(modinfo, ReadGoStringAt(elf, mptr));
  }
  BuildInfo info;
  auto parsed = GoVersion::Parse(version);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(elf.name(), ": build info has no Go version: ", parsed.status().message()));
  }
  info.version = *std::move(parsed);
  info.version_source = ".go.buildinfo";
  ParseModinfo(modinfo, info);
  return info;
}

}  // namespace ctxagent::symbols
