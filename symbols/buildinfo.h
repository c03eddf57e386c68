// The Go version and module facts the linker writes into `.go.buildinfo`.
#ifndef CTXAGENT_SYMBOLS_BUILDINFO_H_
#define CTXAGENT_SYMBOLS_BUILDINFO_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "symbols/elf_file.h"

namespace ctxagent::symbols {

// A Go release, e.g. "go1.26.10-X:goroutineleakprofile" -> {1, 26, 10, "-X:goroutineleakprofile"}.
// Pre-releases ("go1.21rc2") parse with patch 0 and the rest in `suffix`.
struct GoVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string suffix;
  std::string raw;

  static absl::StatusOr<GoVersion> Parse(absl::string_view text);
  // True when this release is 1.`minor` or newer (major 1 assumed, as for every release so far).
  bool AtLeast(int minor_version) const {
    return major > 1 || (major == 1 && minor >= minor_version);
  }
  std::string ShortString() const;  // "go1.21"
};

struct BuildInfo {
  GoVersion version;
  std::string main_path;     // main package path ("path" line)
  std::string main_module;   // main module path ("mod" line), empty when built outside a module
  std::string main_version;  // "(devel)" for local builds
  std::vector<std::pair<std::string, std::string>>
      settings;         // "build" lines: -ldflags, CGO_ENABLED, ...
  std::string modinfo;  // raw module info text, framing removed
  // Where the version came from: ".go.buildinfo", or "runtime.buildVersion" for binaries linked
  // without build info (e.g. esbuild >= 0.27 releases), which then have no module facts.
  std::string version_source;
};

// Reads `.go.buildinfo` (located by section name, else by scanning writable data for the magic).
// Handles the 1.18+ inline varint encoding and the older pointer encoding (pointers resolved
// through the ELF, relocations included). Without the blob, falls back to the
// `runtime.buildVersion` string header in the data segments. NotFound: not a Go binary.
absl::StatusOr<BuildInfo> ReadBuildInfo(const ElfFile& elf);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_BUILDINFO_H_
