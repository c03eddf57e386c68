#include "agent/trace/process.h"

#include <elf.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ctxagent {

namespace {

// The fields of /proc/<pid>/stat after "pid (comm)": the name may hold spaces and parentheses.
absl::StatusOr<std::vector<std::string>> StatFields(pid_t pid, const std::string& proc) {
  std::ifstream stat(absl::StrCat(proc, "/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return absl::NotFoundError(absl::StrCat("pid ", pid, " is gone"));
  size_t paren = line.rfind(')');
  if (paren == std::string::npos) {
    return absl::DataLossError(absl::StrCat("pid ", pid, ": unreadable /proc/", pid, "/stat"));
  }
  return absl::StrSplit(absl::string_view(line).substr(paren + 1), ' ', absl::SkipEmpty());
}

}  // namespace

absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid, const std::string& proc) {
  absl::StatusOr<std::vector<std::string>> f = StatFields(pid, proc);
  if (!f.ok()) return f.status();
  uint64_t start = 0;
  // Field 22 is the 20th after "pid (comm)", the state being field 3.
  if (f->size() < 20 || !absl::SimpleAtoi((*f)[19], &start)) {
    return absl::DataLossError(
        absl::StrCat("pid ", pid, ": no start time in /proc/", pid, "/stat"));
  }
  return start;
}

Process::Process(pid_t pid) : pid_(pid) {
  if (pid > 0) start_time_ = ProcessStartTime(pid).value_or(0);
}

std::string Process::exe_path() const { return absl::StrCat("/proc/", pid_, "/exe"); }

bool Process::Alive() const {
  // A zombie still answers kill(pid, 0): read its state instead.
  absl::StatusOr<std::vector<std::string>> f = StatFields(pid_, "/proc");
  if (!f.ok() || f->size() < 20 || (*f)[0] == "Z" || (*f)[0] == "X") return false;
  return start_time_ != 0 && (*f)[19] == absl::StrCat(start_time_);
}

absl::Status Process::CheckIsProcess() const {
  std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
  if (pid_ <= 0 || !status) return absl::NotFoundError(absl::StrCat("no process with pid ", pid_));
  for (std::string line; std::getline(status, line);) {
    absl::string_view rest = line;
    pid_t tgid = 0;
    if (!absl::ConsumePrefix(&rest, "Tgid:") ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &tgid)) {
      continue;
    }
    if (tgid == pid_) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(pid_, " is a thread of process ", tgid,
                                                   ", not a process: give its pid, ", tgid));
  }
  return absl::NotFoundError(absl::StrCat("no process with pid ", pid_));
}

absl::Status Process::CheckRuns(const symbols::FileIdentity& exe) const {
  // Start time first: once it matches, the exe read next is this process's.
  absl::StatusOr<uint64_t> start = ProcessStartTime(pid_);
  if (!start.ok() || start_time_ == 0) {
    return absl::NotFoundError(absl::StrCat("pid ", pid_, " has exited"));
  }
  if (*start != start_time_) {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", pid_, " was reused: another process has its number now"));
  }
  struct stat st;
  if (stat(exe_path().c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("pid ", pid_, " has exited"));
  }
  if (!symbols::FileIdentity::Of(st).SameInode(exe)) return CalledExec();
  return absl::OkStatus();
}

absl::Status Process::CalledExec() const {
  return absl::FailedPreconditionError(
      absl::StrCat("pid ", pid_, " now runs another binary (it called exec)"));
}

absl::StatusOr<uint64_t> Process::LoadBias(const symbols::ElfFile& exe) const {
  if (!exe.is_pie()) return 0;
  struct stat st;
  if (stat(exe_path().c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("pid ", pid_, ": cannot stat its executable"));
  }
  // The mapping of the executable's inode at file offset 0 starts at the first PT_LOAD's page.
  std::ifstream maps(absl::StrCat("/proc/", pid_, "/maps"));
  if (!maps) return absl::NotFoundError(absl::StrCat("pid ", pid_, " has exited"));
  uint64_t first_vaddr = UINT64_MAX;
  for (const auto& seg : exe.segments()) {
    if (seg.type == PT_LOAD) first_vaddr = std::min(first_vaddr, seg.vaddr & ~uint64_t{0xfff});
  }
  std::string line;
  while (std::getline(maps, line)) {
    // start-end perms offset dev inode path
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 6) continue;
    uint64_t inode = 0, offset = 0, start = 0;
    if (!absl::SimpleAtoi(f[4], &inode) || inode != st.st_ino) continue;
    if (!absl::SimpleHexAtoi(f[2], &offset) || offset != 0) continue;
    if (!absl::SimpleHexAtoi(f[0].substr(0, f[0].find('-')), &start)) continue;
    return start - first_vaddr;
  }
  return absl::NotFoundError(absl::StrCat("pid ", pid_, ": executable mapping not found"));
}

WritableMemory WritableMemory::Parse(absl::string_view maps) {
  WritableMemory out;
  for (absl::string_view line : absl::StrSplit(maps, '\n', absl::SkipEmpty())) {
    // start-end perms offset dev inode path
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 2 || f[1].size() < 2 || f[1][0] != 'r' || f[1][1] != 'w') continue;
    const size_t dash = f[0].find('-');
    uint64_t start = 0, end = 0;
    if (dash == absl::string_view::npos || !absl::SimpleHexAtoi(f[0].substr(0, dash), &start) ||
        !absl::SimpleHexAtoi(f[0].substr(dash + 1), &end) || end <= start) {
      continue;
    }
    if (!out.ranges_.empty() && out.ranges_.back().second == start) {
      out.ranges_.back().second = end;
    } else {
      out.ranges_.push_back({start, end});
    }
  }
  return out;  // the kernel lists mappings in address order
}

uint64_t WritableMemory::Extent(uint64_t addr) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](uint64_t a, const auto& r) { return a < r.first; });
  if (it == ranges_.begin()) return 0;
  --it;
  return addr < it->second ? it->second - addr : 0;
}

absl::StatusOr<WritableMemory> Process::Writable() const {
  std::ifstream maps(absl::StrCat("/proc/", pid_, "/maps"));
  if (!maps) return absl::NotFoundError(absl::StrCat("pid ", pid_, " has exited"));
  std::stringstream text;
  text << maps.rdbuf();
  return WritableMemory::Parse(text.str());
}

absl::Status Process::Read(uint64_t addr, void* out, size_t len) const {
  struct iovec local = {out, len};
  struct iovec remote = {reinterpret_cast<void*>(addr), len};
  ssize_t n = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len)) {
    return absl::ErrnoToStatus(n < 0 ? errno : EFAULT,
                               absl::StrCat("pid ", pid_, ": cannot read memory at ", addr));
  }
  return absl::OkStatus();
}

void Process::ReadMany(std::vector<ReadRequest>& requests) const {
  std::vector<iovec> local, remote;
  size_t i = 0;
  while (i < requests.size()) {
    const size_t end = std::min(requests.size(), i + IOV_MAX);
    local.clear();
    remote.clear();
    for (size_t k = i; k < end; ++k) {
      local.push_back({requests[k].out, requests[k].len});
      remote.push_back({reinterpret_cast<void*>(requests[k].addr), requests[k].len});
    }
    ssize_t n = process_vm_readv(pid_, local.data(), local.size(), remote.data(), remote.size(), 0);
    if (n < 0 && errno == ESRCH) return;  // the process is gone: nothing is readable
    // Transfers stop at the first region that fails and never split one: skip it, go on after it.
    size_t done = n > 0 ? static_cast<size_t>(n) : 0;
    for (; i < end && done >= requests[i].len; ++i) {
      done -= requests[i].len;
      requests[i].ok = true;
    }
    ++i;  // the failed one (or, after a full transfer, i == end already and this skips nothing)
    if (i > end) i = end;
  }
}

absl::StatusOr<uint64_t> Process::ReadWord(uint64_t addr) const {
  uint64_t v = 0;
  absl::Status s = Read(addr, &v, sizeof(v));
  if (!s.ok()) return s;
  return v;
}

}  // namespace ctxagent
