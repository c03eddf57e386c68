// The real, stripped Go binaries nobody here built (tests/realbin/esbuild_versions.txt), as the
// `esbuild_binaries` target caches them: <dir>/<go version>/esbuild.
#ifndef CTXAGENT_TESTS_REALBIN_REALBIN_LIST_H_
#define CTXAGENT_TESTS_REALBIN_REALBIN_LIST_H_

#include <cstdio>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ctxagent::testing {

struct RealBinary {
  std::string package;     // "@esbuild/linux-x64@0.23.1"
  std::string go_version;  // "go1.22.5", what the release was built with
  std::string path;
};

inline std::vector<RealBinary> LoadRealBinaries(const std::string& list, const std::string& dir) {
  std::vector<RealBinary> out;
  std::ifstream in(list);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    RealBinary b;
    std::string integrity;
    if (!(fields >> b.package >> b.go_version >> integrity)) continue;
    b.path = absl::StrCat(dir, "/", b.go_version, "/esbuild");
    out.push_back(std::move(b));
  }
  return out;
}

inline void PrintTo(const RealBinary& b, std::ostream* os) {
  *os << b.package << " " << b.go_version;
}

// "go1.22.5" -> 22; -1 when unparsable.
inline int GoMinor(const std::string& v) {
  int major = 0, minor = -1;
  if (std::sscanf(v.c_str(), "go%d.%d", &major, &minor) != 2 || major != 1) return -1;
  return minor;
}

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_REALBIN_REALBIN_LIST_H_
