// Test-only: run `ctxagent daemon` (or Prometheus) as a child with its output in a log file, and
// read what the daemon serves: Prometheus text metrics, the /processes list, VmRSS.
#ifndef CTXAGENT_TESTS_E2E_DAEMON_RUNNER_H_
#define CTXAGENT_TESTS_E2E_DAEMON_RUNNER_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/process_runner.h"

namespace ctxagent::testing {

// A child process whose stdout and stderr go to a file; killed (SIGKILL) when destroyed if still
// running.
class LoggedProcess {
 public:
  static std::unique_ptr<LoggedProcess> Start(const std::vector<std::string>& argv,
                                              const std::string& log_path);
  pid_t pid() const { return proc_.pid(); }
  bool Running() { return proc_.Running(); }
  void Signal(int sig) { proc_.Signal(sig); }
  // Exit code, or 128+signal; -1 on timeout (the process is then killed).
  int Wait(absl::Duration timeout) { return proc_.Wait(timeout); }
  // SIGTERM, then Wait.
  int Stop(absl::Duration timeout) {
    Signal(15);
    return Wait(timeout);
  }
  std::string Log() const;

 private:
  ChildPid proc_;
  std::string log_path_;
};

// `ctxagent daemon --listen=127.0.0.1:<free port> --detail_listen=127.0.0.1:<another> <flags>`,
// optionally behind `prefix` (e.g. setpriv).
struct DaemonHandle {
  std::unique_ptr<LoggedProcess> process;
  int port = 0;         // /metrics, /healthz, /readyz
  int detail_port = 0;  // /processes/...
};

// Starts the daemon and waits for /readyz; retries on another port if the port was taken meanwhile.
// On failure `process` is left set (exited) so the caller can show its log, and port is 0.
DaemonHandle StartDaemon(const std::string& bin, const std::vector<std::string>& flags,
                         const std::string& log_path, const std::vector<std::string>& prefix = {},
                         absl::Duration ready_timeout = absl::Seconds(30));

// The pid of the program the daemon handle runs (after `prefix` exec'd into it, same pid).
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
std::vector<Sample> ParseMetrics(const std::string& text);
// Samples named `name` whose labels include every pair of `match`.
std::vector<Sample> Find(const std::vector<Sample>& samples, const std::string& name,
                         const std::map<std::string, std::string>& match = {});

// GET /processes as JSON (null on failure).
nlohmann::json Processes(int port);
// The entry of /processes for `pid`, if listed.
std::optional<nlohmann::json> ProcessEntry(const nlohmann::json& processes, pid_t pid);

// VmRSS of `pid` in KiB (-1 if unreadable).
long VmRssKiB(pid_t pid);
// A field of /proc/<pid>/status in KiB ("VmHWM": the peak RSS); -1 if unreadable.
long StatusKiB(pid_t pid, const std::string& field);

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_E2E_DAEMON_RUNNER_H_
