#include "tests/e2e/process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/time/clock.h"

namespace ctxagent::testing {

Child Child::Start(const std::vector<std::string>& argv, bool merge_stderr) {
  Child c;
  int fds[2], in[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return c;
  if (pipe2(in, O_CLOEXEC) != 0) return c;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    if (merge_stderr) dup2(fds[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  close(in[0]);
  c.proc_ = ChildPid(pid);
  c.out_fd_ = fds[0];
  c.in_fd_ = in[1];
  return c;
}

Child::Child(Child&& o) noexcept { *this = std::move(o); }

Child& Child::operator=(Child&& o) noexcept {
  std::swap(proc_, o.proc_);
  std::swap(out_fd_, o.out_fd_);
  std::swap(in_fd_, o.in_fd_);
  std::swap(buffered_, o.buffered_);
  return *this;
}

ChildPid& ChildPid::operator=(ChildPid&& o) noexcept {
  std::swap(pid_, o.pid_);
  std::swap(reaped_, o.reaped_);
  std::swap(status_, o.status_);
  return *this;
}

ChildPid::~ChildPid() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool ChildPid::Running() {
  if (pid_ <= 0 || reaped_) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

void ChildPid::Signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

int ChildPid::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  const absl::Time deadline = absl::Now() + timeout;
  while (Running()) {
    if (absl::Now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
      reaped_ = true;
      return -1;
    }
    usleep(10000);
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return 128 + WTERMSIG(status_);
}

Child::~Child() {
  if (out_fd_ >= 0) close(out_fd_);
  if (in_fd_ >= 0) close(in_fd_);
}

bool Child::WaitForLine(const std::string& needle, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    size_t nl;
    while ((nl = buffered_.find('\n')) != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      if (line.find(needle) != std::string::npos) return true;
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p{out_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) continue;
    char buf[4096];
    ssize_t n = read(out_fd_, buf, sizeof(buf));
    if (n <= 0) return false;
    buffered_.append(buf, n);
  }
}

std::string Child::ReadAll(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  std::string out = std::move(buffered_);
  buffered_.clear();
  while (true) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    pollfd p{out_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) continue;
    char buf[65536];
    ssize_t n = read(out_fd_, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, n);
  }
  return out;
}

}  // namespace ctxagent::testing
