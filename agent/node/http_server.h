// A minimal HTTP/1.1 server for the daemon's endpoints: GET only, one request per connection,
// served on its own thread. Enough for Prometheus scrapes and kubelet probes; not a web framework.
#ifndef CTXAGENT_AGENT_NODE_HTTP_SERVER_H_
#define CTXAGENT_AGENT_NODE_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace ctxagent {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const std::string& path)>;
  // Listens on "host:port" (":port" or "0.0.0.0:port" for all addresses; port 0 picks one).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           Handler handler);
  ~HttpServer();
  int port() const { return port_; }

 private:
  HttpServer() = default;
  void Serve();
  int fd_ = -1;
  int port_ = 0;
  Handler handler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_HTTP_SERVER_H_
