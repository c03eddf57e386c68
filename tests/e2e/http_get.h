// Test-only: a plain HTTP/1.0 GET over a raw loopback socket (no curl), and a free loopback port.
#ifndef CTXAGENT_TESTS_E2E_HTTP_GET_H_
#define CTXAGENT_TESTS_E2E_HTTP_GET_H_

#include <string>

#include "absl/time/time.h"

namespace ctxagent::testing {

struct HttpResult {
  int status = 0;    // 0: no answer (refused, timed out, unparseable)
  std::string body;  // de-chunked if the server chunked it
};

// GET http://127.0.0.1:<port><path>, one connection per request, bounded by `timeout`.
HttpResult HttpGet(int port, const std::string& path, absl::Duration timeout = absl::Seconds(5));

// Starts a non-blocking connection to 127.0.0.1:<port> from `source` (any 127.x.y.z: the server
// sees another client per address); -1 on failure. Writable once connected.
int ConnectFrom(int port, const std::string& source);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

// Percent-encodes a query parameter value.
std::string UrlEncode(const std::string& s);

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_E2E_HTTP_GET_H_
