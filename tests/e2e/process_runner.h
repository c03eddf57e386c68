// Test-only: start programs with their stdout captured, wait for a line, stop them.
#ifndef CTXAGENT_TESTS_E2E_PROCESS_RUNNER_H_
#define CTXAGENT_TESTS_E2E_PROCESS_RUNNER_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace ctxagent::testing {

// A started child process's exit state: reaped once; killed (SIGKILL) on destruction if still
// running.
class ChildPid {
 public:
  explicit ChildPid(pid_t pid = -1) : pid_(pid) {}
  ChildPid(ChildPid&& o) noexcept { *this = std::move(o); }
  ChildPid& operator=(ChildPid&& o) noexcept;
  ChildPid(const ChildPid&) = delete;
  ~ChildPid();

  pid_t pid() const { return pid_; }
  bool Running();  // reaps it when it has exited
  void Signal(int sig);
  // Waits for exit; returns the exit code, or 128+signal; -1 on timeout (the child is then killed).
  int Wait(absl::Duration timeout);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

class Child {
 public:
  // Starts argv[0] with stdout (and stderr, if `merge_stderr`) into a pipe; its stdin is a pipe
  // kept open until the Child is destroyed (some servers stop when stdin closes).
  static Child Start(const std::vector<std::string>& argv, bool merge_stderr = false);
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  ~Child();

  pid_t pid() const { return proc_.pid(); }
  // Reads stdout until a line containing `needle`; false on EOF or timeout.
  bool WaitForLine(const std::string& needle, absl::Duration timeout);
  // Reads everything until EOF (the child closed stdout or exited), bounded by `timeout`.
  std::string ReadAll(absl::Duration timeout);
  // Waits for exit; returns the exit code, or 128+signal; -1 on timeout (the child is then killed).
  int Wait(absl::Duration timeout) { return proc_.Wait(timeout); }
  void Kill(int sig) { proc_.Signal(sig); }

 private:
  Child() = default;
  ChildPid proc_;
  int out_fd_ = -1;
  int in_fd_ = -1;
  std::string buffered_;
};

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_E2E_PROCESS_RUNNER_H_
