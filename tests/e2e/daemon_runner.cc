#include "tests/e2e/daemon_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/e2e/http_get.h"

namespace ctxagent::testing {

std::unique_ptr<LoggedProcess> LoggedProcess::Start(const std::vector<std::string>& argv,
                                                    const std::string& log_path) {
  std::unique_ptr<LoggedProcess> p(new LoggedProcess());
  p->log_path_ = log_path;
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    if (log >= 0) {
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    dprintf(STDERR_FILENO, "exec %s failed\n", args[0]);
    _exit(127);
  }
  if (log >= 0) close(log);
  p->proc_ = ChildPid(pid);
  return p;
}

std::string LoggedProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

DaemonHandle StartDaemon(const std::string& bin, const std::vector<std::string>& flags,
                         const std::string& log_path, const std::vector<std::string>& prefix,
                         absl::Duration ready_timeout) {
  DaemonHandle h;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = FreeLoopbackPort();
    int detail_port = FreeLoopbackPort();
    while (detail_port == port) detail_port = FreeLoopbackPort();
    std::vector<std::string> argv = prefix;
    argv.push_back(bin);
    argv.push_back("daemon");
    argv.push_back(absl::StrCat("--listen=127.0.0.1:", port));
    argv.push_back(absl::StrCat("--detail_listen=127.0.0.1:", detail_port));
    argv.insert(argv.end(), flags.begin(), flags.end());
    h.process = LoggedProcess::Start(argv, log_path);
    const absl::Time deadline = absl::Now() + ready_timeout;
    while (absl::Now() < deadline && h.process->Running()) {
      if (HttpGet(port, "/readyz", absl::Seconds(2)).status == 200) {
        h.port = port;
        h.detail_port = detail_port;
        return h;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (h.process->Running()) return h;  // up but never ready: give up, port stays 0
    if (h.process->Log().find("cannot listen") == std::string::npos) return h;
    // The port was taken between FreeLoopbackPort and bind: try another.
  }
  return h;
}

std::vector<Sample> ParseMetrics(const std::string& text) {
  std::vector<Sample> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line[0] == '#') continue;
    Sample s;
    size_t brace = line.find('{');
    size_t space;
    if (brace != absl::string_view::npos) {
      s.name = std::string(line.substr(0, brace));
      size_t close = line.rfind('}');
      if (close == absl::string_view::npos) continue;
      absl::string_view labels = line.substr(brace + 1, close - brace - 1);
      // label="value" pairs; values here never contain '"' or ','.
      for (absl::string_view kv : absl::StrSplit(labels, ',', absl::SkipEmpty())) {
        std::pair<absl::string_view, absl::string_view> p =
            absl::StrSplit(kv, absl::MaxSplits('=', 1));
        absl::string_view v = p.second;
        absl::ConsumePrefix(&v, "\"");
        absl::ConsumeSuffix(&v, "\"");
        s.labels[std::string(p.first)] = std::string(v);
      }
      space = close + 1;
    } else {
      space = line.find(' ');
      if (space == absl::string_view::npos) continue;
      s.name = std::string(line.substr(0, space));
    }
    absl::string_view rest = absl::StripAsciiWhitespace(line.substr(space));
    rest = rest.substr(0, rest.find(' '));  // drop a timestamp
    if (!absl::SimpleAtod(rest, &s.value)) continue;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> Find(const std::vector<Sample>& samples, const std::string& name,
                         const std::map<std::string, std::string>& match) {
  std::vector<Sample> out;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      ok = ok && it != s.labels.end() && it->second == v;
    }
    if (ok) out.push_back(s);
  }
  return out;
}

nlohmann::json Processes(int port) {
  HttpResult r = HttpGet(port, "/processes");
  if (r.status != 200) return nullptr;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return nullptr;
  return j;
}

std::optional<nlohmann::json> ProcessEntry(const nlohmann::json& processes, pid_t pid) {
  if (!processes.is_array()) return std::nullopt;
  for (const auto& p : processes) {
    if (p.contains("pid") && p["pid"].get<long>() == pid) return p;
  }
  return std::nullopt;
}

long VmRssKiB(pid_t pid) { return StatusKiB(pid, "VmRSS"); }

long StatusKiB(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, field + ":")) {
      v = absl::StripAsciiWhitespace(v);
      long kib;
      if (absl::SimpleAtoi(v.substr(0, v.find(' ')), &kib)) return kib;
    }
  }
  return -1;
}

}  // namespace ctxagent::testing
