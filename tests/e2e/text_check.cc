#include "tests/e2e/text_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "symbols/go_binary.h"

namespace ctxagent::testing {
namespace {

constexpr size_t kMaxReported = 20;

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

absl::StatusOr<std::vector<std::string>> ForeignTextBytes(pid_t pid) {
  const std::string proc = absl::StrCat("/proc/", pid);
  Fd exe{open((proc + "/exe").c_str(), O_RDONLY | O_CLOEXEC)};
  Fd mem{open((proc + "/mem").c_str(), O_RDONLY | O_CLOEXEC)};
  struct stat st;
  if (exe.fd < 0 || mem.fd < 0 || fstat(exe.fd, &st) != 0) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, " is gone"));
  }
  // The plan of the file read here, whatever /proc/<pid>/exe names by now.
  absl::StatusOr<std::unique_ptr<symbols::GoBinary>> bin =
      symbols::GoBinary::Open(absl::StrCat("/proc/self/fd/", exe.fd));
  if (!bin.ok()) return bin.status();
  std::set<uint64_t> probes;
  for (const symbols::Probe& p : (*bin)->plan().probes) probes.insert(p.site.file_offset);

  std::vector<std::string> out;
  std::ifstream maps(proc + "/maps");
  int mapped = 0;
  for (std::string line; std::getline(maps, line);) {
    // start-end perms offset dev inode path
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t inode = 0, offset = 0, start = 0, end = 0;
    if (f.size() < 6 || f[1].find('x') == std::string::npos || !absl::SimpleAtoi(f[4], &inode) ||
        inode != st.st_ino || !absl::SimpleHexAtoi(f[2], &offset)) {
      continue;
    }
    std::vector<std::string> range = absl::StrSplit(f[0], '-');
    if (range.size() != 2 || !absl::SimpleHexAtoi(range[0], &start) ||
        !absl::SimpleHexAtoi(range[1], &end)) {
      continue;
    }
    // A mapping may run past the end of the file (its last page): compare what the file has.
    const uint64_t len = std::min<uint64_t>(
        end - start, st.st_size > static_cast<off_t>(offset) ? st.st_size - offset : 0);
    std::string in_mem(len, '\0'), in_file(len, '\0');
    if (pread(mem.fd, in_mem.data(), len, static_cast<off_t>(start)) != static_cast<ssize_t>(len)) {
      return absl::NotFoundError(absl::StrCat("pid ", pid, ": cannot read its text (gone?)"));
    }
    if (pread(exe.fd, in_file.data(), len, static_cast<off_t>(offset)) !=
        static_cast<ssize_t>(len)) {
      return absl::DataLossError(absl::StrCat("pid ", pid, ": cannot read its executable"));
    }
    ++mapped;
    for (uint64_t i = 0; i < len && out.size() < kMaxReported; ++i) {
      if (in_mem[i] == in_file[i]) continue;
      const uint64_t at = offset + i;
      if (static_cast<uint8_t>(in_mem[i]) == 0xcc && probes.count(at) > 0) continue;
      out.push_back(absl::StrFormat("%s: file offset %#x: %#04x in memory, %#04x in the file",
                                    (*bin)->path(), at, static_cast<uint8_t>(in_mem[i]),
                                    static_cast<uint8_t>(in_file[i])));
    }
  }
  if (mapped == 0) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, ": no executable mapping of its file"));
  }
  return out;
}

}  // namespace ctxagent::testing
