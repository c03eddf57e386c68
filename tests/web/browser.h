// Test-only: headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4). Needs only Debian's `chromium`:
// no WebSocket client, no npm package. Runs as root with --no-sandbox.
#ifndef CTXAGENT_TESTS_WEB_BROWSER_H_
#define CTXAGENT_TESTS_WEB_BROWSER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace ctxagent::testing {

class Browser {
 public:
  // Starts `chromium` with one page of `width` x `height` CSS pixels.
  static absl::StatusOr<std::unique_ptr<Browser>> Launch(const std::string& chromium, int width,
                                                         int height);
  ~Browser();  // closes the browser (killed if it does not exit) and removes its profile

  absl::Status Navigate(const std::string& url);
  // Evaluates `js` in the page, awaiting a promise; its value as JSON.
  absl::StatusOr<nlohmann::json> Eval(const std::string& js);
  // Evaluates `js` until it returns something other than null/false/undefined; that value.
  absl::StatusOr<nlohmann::json> WaitFor(const std::string& js, absl::Duration timeout);
  // A real left click (mouse pressed and released) at viewport coordinates.
  absl::Status Click(double x, double y);
  // Scrolls the element matching `selector` into view and clicks its centre.
  absl::Status ClickOn(const std::string& selector);
  absl::Status Screenshot(const std::string& png_path);

 private:
  Browser() = default;
  // One command (to the page's session unless `browser_level`), its result.
  absl::StatusOr<nlohmann::json> Call(const std::string& method, nlohmann::json params,
                                      bool browser_level = false);

  pid_t pid_ = -1;
  int to_browser_ = -1, from_browser_ = -1;
  std::string session_;
  std::string profile_;
  std::string buffered_;
  int next_id_ = 1;
};

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_WEB_BROWSER_H_
