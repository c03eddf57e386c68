// Test-only: start programs with their stdout captured, wait for a line, stop them.
#ifndef CTXAGENT_TESTS_E2E_PROCESS_RUNNER_H_
#define CTXAGENT_TESTS_E2E_PROCESS_RUNNER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ctxagent::testing {

class Child {
 public:
  // Starts argv[0] with stdout (and stderr, if `merge_stderr`) into a pipe; its stdin is a pipe
  // kept open until the Child is destroyed (some servers stop when stdin closes).
  static Child Start(const std::vector<std::string>& argv, bool merge_stderr = false);
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  // Reads stdout until a line containing `needle`; false on EOF or timeout.
  bool WaitForLine(const std::string& needle, absl::Duration timeout);
  // Reads everything until EOF (the child closed stdout or exited), bounded by `timeout`.
  std::string ReadAll(absl::Duration timeout);
  // Waits for exit; returns the exit code, or 128+signal; -1 on timeout (the child is then killed).
  int Wait(absl::Duration timeout);
  void Kill(int sig);

 private:
  Child() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int in_fd_ = -1;
  std::string buffered_;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_E2E_PROCESS_RUNNER_H_
