#include "tests/web/browser.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ctxagent::testing {

absl::StatusOr<std::unique_ptr<Browser>> Browser::Launch(const std::string& chromium, int width,
                                                         int height) {
  if (access(chromium.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(chromium, " not found: run scripts/install-deps.sh"));
  }
  std::unique_ptr<Browser> b(new Browser());
  char dir[] = "/tmp/ctxagent-chromium-XXXXXX";
  if (mkdtemp(dir) == nullptr) return absl::InternalError("mkdtemp failed");
  b->profile_ = dir;
  int to[2], from[2];  // to[0]: the browser's fd 3; from[1]: its fd 4
  if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe failed");
  }
  std::vector<std::string> args = {chromium,
                                   "--headless",
                                   "--no-sandbox",  // root in CI
                                   "--disable-gpu",
                                   "--disable-dev-shm-usage",
                                   "--disable-extensions",
                                   "--disable-background-networking",
                                   "--no-first-run",
                                   "--no-default-browser-check",
                                   "--hide-scrollbars",
                                   "--remote-debugging-pipe",
                                   "--user-data-dir=" + b->profile_,
                                   absl::StrCat("--window-size=", width, ",", height),
                                   "about:blank"};
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // Move the pipe ends above 4 first: dup2 onto 3 and 4 must not clobber each other.
    int in = fcntl(to[0], F_DUPFD, 10), out = fcntl(from[1], F_DUPFD, 10);
    dup2(in, 3);
    dup2(out, 4);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(to[0]);
  close(from[1]);
  b->pid_ = pid;
  b->to_browser_ = to[1];
  b->from_browser_ = from[0];
  auto target = b->Call("Target.createTarget", {{"url", "about:blank"}}, true);
  if (!target.ok()) return target.status();
  auto attached = b->Call("Target.attachToTarget",
                          {{"targetId", (*target)["targetId"]}, {"flatten", true}}, true);
  if (!attached.ok()) return attached.status();
  b->session_ = (*attached)["sessionId"].get<std::string>();
  auto metrics =
      b->Call("Emulation.setDeviceMetricsOverride",
              {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}});
  if (!metrics.ok()) return metrics.status();
  return b;
}

Browser::~Browser() {
  if (pid_ > 0) {
    (void)Call("Browser.close", nlohmann::json::object(), true);
    int status;
    const absl::Time end = absl::Now() + absl::Seconds(5);
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > end) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  if (to_browser_ >= 0) close(to_browser_);
  if (from_browser_ >= 0) close(from_browser_);
  std::error_code ec;
  if (!profile_.empty()) std::filesystem::remove_all(profile_, ec);
}

absl::StatusOr<nlohmann::json> Browser::Call(const std::string& method, nlohmann::json params,
                                             bool browser_level) {
  const int id = next_id_++;
  nlohmann::json msg = {{"id", id}, {"method", method}, {"params", std::move(params)}};
  if (!browser_level) msg["sessionId"] = session_;
  std::string out = msg.dump();
  out.push_back('\0');
  for (size_t off = 0; off < out.size();) {
    ssize_t n = write(to_browser_, out.data() + off, out.size() - off);
    if (n <= 0) return absl::UnavailableError(absl::StrCat(method, ": the browser is gone"));
    off += n;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    // Replies and events, NUL-terminated; events are skipped.
    for (size_t end; (end = buffered_.find('\0')) != std::string::npos;) {
      nlohmann::json reply = nlohmann::json::parse(buffered_.substr(0, end), nullptr, false);
      buffered_.erase(0, end + 1);
      if (reply.is_discarded() || !reply.contains("id") || reply["id"] != id) continue;
      if (reply.contains("error")) {
        return absl::InternalError(absl::StrCat(method, ": ", reply["error"].dump()));
      }
      return reply.value("result", nlohmann::json::object());
    }
    const int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    pollfd p{from_browser_, POLLIN, 0};
    if (wait_ms <= 0 || poll(&p, 1, wait_ms) <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(method, ": no reply within 30 s"));
    }
    char buf[65536];
    ssize_t n = read(from_browser_, buf, sizeof(buf));
    if (n <= 0) return absl::UnavailableError(absl::StrCat(method, ": the browser is gone"));
    buffered_.append(buf, n);
  }
}

absl::Status Browser::Navigate(const std::string& url) {
  return Call("Page.navigate", {{"url", url}}).status();
}

absl::StatusOr<nlohmann::json> Browser::Eval(const std::string& js) {
  auto r = Call("Runtime.evaluate",
                {{"expression", js}, {"returnByValue", true}, {"awaitPromise", true}});
  if (!r.ok()) return r.status();
  if (r->contains("exceptionDetails")) {
    return absl::InvalidArgumentError(absl::StrCat("page: ", (*r)["exceptionDetails"].dump()));
  }
  return (*r)["result"].value("value", nlohmann::json());
}

absl::StatusOr<nlohmann::json> Browser::WaitFor(const std::string& js, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError(absl::StrCat("timed out waiting for ", js));
  while (absl::Now() < end) {
    auto v = Eval(js);
    if (v.ok() && !v->is_null() && *v != false) return v;
    if (!v.ok()) last = v.status();
    absl::SleepFor(absl::Milliseconds(200));
  }
  return last;
}

absl::Status Browser::Click(double x, double y) {
  for (const char* type : {"mousePressed", "mouseReleased"}) {
    auto r = Call("Input.dispatchMouseEvent",
                  {{"type", type}, {"x", x}, {"y", y}, {"button", "left"}, {"clickCount", 1}});
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::Status Browser::ClickOn(const std::string& selector) {
  auto at = Eval(absl::StrCat("(() => { const e = document.querySelector(",
                              nlohmann::json(selector).dump(),
                              "); if (!e) return null; e.scrollIntoView({block: 'center', inline: "
                              "'center'}); const r = e.getBoundingClientRect(); return [r.x + "
                              "r.width / 2, r.y + r.height / 2]; })()"));
  if (!at.ok()) return at.status();
  if (!at->is_array()) return absl::NotFoundError(absl::StrCat("no element ", selector));
  return Click((*at)[0].get<double>(), (*at)[1].get<double>());
}

absl::Status Browser::Screenshot(const std::string& png_path) {
  auto r = Call("Page.captureScreenshot", {{"format", "png"}});
  if (!r.ok()) return r.status();
  std::string png;
  if (!absl::Base64Unescape((*r)["data"].get<std::string>(), &png)) {
    return absl::InternalError("screenshot: bad base64");
  }
  std::ofstream(png_path, std::ios::binary) << png;
  return absl::OkStatus();
}

}  // namespace ctxagent::testing
