// The HTTP endpoints of the daemon and of `attach --http`, on GNU libmicrohttpd.
//
// Why libmicrohttpd: it multiplexes connections on one epoll thread, so an idle or slow client
// costs a connection slot and a small buffer, never a thread. civetweb (prometheus-cpp's exposer)
// gives each connection a worker thread until its request arrives: 200 idle connections occupy
// every worker and /healthz waits behind them. Handlers run on a bounded pool of worker threads
// (connections are suspended meanwhile), so a handler waiting for the daemon's lock delays no
// other request; cheap handlers named in `inline_paths` answer on the I/O thread itself. A handler
// may defer its answer (a delta profile's second read): the connection stays suspended, on no
// thread, until a worker completes it. What libmicrohttpd lacks, a deadline for the whole request,
// a sweeper thread adds.
#ifndef CTXAGENT_AGENT_NODE_HTTP_SERVER_H_
#define CTXAGENT_AGENT_NODE_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ctxagent {

struct HttpRequest {
  std::string method;                        // "GET", "HEAD"
  std::string path;                          // percent-decoded, without the query
  std::map<std::string, std::string> query;  // decoded query arguments
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // A deferred answer (net/http/pprof's `seconds`): once `at` has come, a worker answers with
  // `then()` instead (which may defer again). Meanwhile the connection stays suspended and holds no
  // thread, so a client waiting for it delays no other request. Not for inline paths.
  absl::Time at = absl::InfinitePast();
  std::function<HttpResponse()> then;
};

// What clients can hold of a server (flags of the daemon: deploy/README.md, "Endpoints"). A busy
// neighbour may keep every slot with valid keep-alive requests, so bounds on slowness alone do not
// keep a slot free for the kubelet's fresh connection: the per-client limit and the eviction of
// idle keep-alive connections do.
struct HttpLimits {
  int max_connections = 512;
  // Slots kept for fresh connections: beyond max_connections - reserved_connections open ones, the
  // connection waiting longest for its next request is closed (a client that keeps connections
  // must reconnect: RFC 9112 9.5 lets a server close an inactive connection at any time).
  int reserved_connections = 64;
  // Per source address (RFC 9112 9.4: "an excessive number of open connections from a single
  // client"): beyond it a new connection closes the address's connection waiting longest for a
  // request, or itself when all are busy, so a fresh probe wins over idle ones from its address.
  int max_connections_per_client = 16;
  absl::Duration idle_timeout = absl::Seconds(10);  // a silent connection is closed
  // From a connection's start, or its previous response, until its request is complete (headers
  // read; a request with a body is refused, so none is ever read): a client sending a byte a
  // second is cut off here; also the keep-alive timeout.
  absl::Duration request_timeout = absl::Seconds(5);
  // Deferred answers pending per source address: beyond it the deferral is refused with 429, so a
  // client cannot pile up suspended requests and the state they hold.
  int max_deferred_per_client = 4;
};

struct HttpServerOptions {
  std::string listen;  // "host:port" (":port" or "0.0.0.0:port": all addresses; port 0 picks one)
  int worker_threads = 4;
  int max_queued = 64;              // requests waiting for a worker; beyond it 503
  size_t max_header_bytes = 16384;  // request line and headers; a longer URL gets 414
  HttpLimits limits;
  std::set<std::string> inline_paths;  // answered on the I/O thread: must not block
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest& request)>;
  // Only GET and HEAD without a body reach the handler (others get 405, a body 413, and the
  // connection is closed). It may run on several threads at once.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           Handler handler);
  ~HttpServer();
  int port() const { return port_; }

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_HTTP_SERVER_H_
