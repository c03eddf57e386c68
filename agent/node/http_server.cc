#include "agent/node/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <deque>
#include <map>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace ctxagent {

// A request handed to a worker; its connection stays suspended until the response is ready.
struct Pending {
  MHD_Connection* connection;
  uint32_t client = 0;  // IPv4 source address
  HttpRequest request;
  HttpResponse response;          // a deferred one's `then` until it is due
  bool queued = false;            // handed to a worker (touched by the MHD thread only)
  bool deferred = false;          // counted in deferred_by_client until answered (workers only)
  std::atomic<bool> done{false};  // the worker's response is ready
};

struct HttpServer::Impl {
  HttpServerOptions options;
  Handler handler;
  MHD_Daemon* daemon = nullptr;
  absl::Mutex mu;
  std::deque<Pending*> queue ABSL_GUARDED_BY(mu);
  // Deferred requests by when they are due. A worker waits for the earliest it knows of; the one
  // that defers a request computes its wait again, so a new earliest is never overslept.
  std::multimap<absl::Time, Pending*> deferred ABSL_GUARDED_BY(mu);
  std::map<uint32_t, int> deferred_by_client ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::vector<std::thread> workers;
  // Open connections (from libmicrohttpd's start notification to its close notification, which
  // comes before it closes the socket): their socket, and since when they wait for a request.
  struct Open {
    int fd;
    absl::Time waiting_since;  // InfiniteFuture while a request is being answered
    uint32_t client;           // IPv4 source address
    bool closing = false;      // its socket is shut down: no longer holds a slot
  };
  absl::Mutex conn_mu;
  std::map<MHD_Connection*, Open> open ABSL_GUARDED_BY(conn_mu);
  int holding ABSL_GUARDED_BY(conn_mu) = 0;  // open and not closing
  std::map<uint32_t, int> holding_by_client ABSL_GUARDED_BY(conn_mu);
  // The sweeper sleeps until the earliest deadline, or until one of these is set.
  bool open_changed ABSL_GUARDED_BY(conn_mu) = false;
  bool sweeper_stop ABSL_GUARDED_BY(conn_mu) = false;
  std::thread sweeper;

  void Work();
  // The next request for a worker: queued, or deferred and due (any deferred once stopping); null
  // when stopping with none left. `stop`: answer it with 503.
  Pending* Next(bool& stop);
  // Keeps `p` suspended until `p->response.at`; false (and a 429 in `p->response`) when its client
  // has too many deferred already (a deferral again is not counted again) or a 503 when stopping.
  bool Defer(Pending* p);
  void Answered(Pending* p);  // a deferred request no longer counts for its client
  // Shuts down the sockets of connections whose request is overdue; libmicrohttpd then closes them.
  void Sweep();
  void Close(Open& o) ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu);
  void Release(Open& o) ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu);  // it no longer holds a slot
  // The connection waiting longest for a request, other than `fresh` (just accepted), of `client`
  // only if set; null when every other one is busy.
  Open* Idlest(MHD_Connection* fresh, std::optional<uint32_t> client)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu);
  // Makes room for `fresh`: closes the idlest connections of its client beyond the per-client
  // limit (`fresh` itself when all are busy), then the idlest of all while fewer than the reserved
  // slots are free. So a fresh connection (the kubelet's probe) always finds a slot, even from an
  // address it shares with a neighbour (a hostNetwork pod's is the node's).
  void MakeRoom(MHD_Connection* fresh) ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu);
  void SetWaiting(MHD_Connection* c, bool waiting_for_request);
  void OnConnection(MHD_Connection* c, bool started);
  // Hands `p` to a worker (suspending its connection); false when the queue is full or stopping.
  bool Enqueue(Pending* p);
};

namespace {

MHD_Result Send(MHD_Connection* c, const HttpResponse& r) {
  MHD_Response* resp = MHD_create_response_from_buffer(
      r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  if (resp == nullptr) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
  MHD_Result ok = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);
  return ok;
}

bool HasBody(MHD_Connection* c) {
  const char* length =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  return (length != nullptr && std::string_view(length) != "0") ||
         MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) !=
             nullptr;
}

MHD_Result AddQueryArgument(void* cls, MHD_ValueKind, const char* key, const char* value) {
  (*static_cast<std::map<std::string, std::string>*>(cls))[key] = value ? value : "";
  return MHD_YES;
}

// MHD calls this once the request headers are in, again for each piece of body and at its end,
// and once more after a resume. Responding at the first call would make MHD close the connection
// (it cannot know the request ended), so a GET is answered at its end, for keep-alive.
MHD_Result OnRequest(void* cls, MHD_Connection* c, const char* url, const char* method,
                     const char* version, const char* upload_data, size_t* upload_data_size,
                     void** req_cls) {
  auto* impl = static_cast<HttpServer::Impl*>(cls);
  auto* p = static_cast<Pending*>(*req_cls);
  if (p == nullptr) {
    const std::string m = method;
    if (m != "GET" && m != "HEAD") return Send(c, {405, "text/plain", "only GET\n"});
    // Answered before the body is read, the connection is closed after the answer: a declared body
    // cannot hold a slot byte by byte.
    if (HasBody(c)) return Send(c, {413, "text/plain", "no request body expected\n"});
    p = new Pending();  // deleted by OnCompleted
    p->connection = c;
    p->request.method = m;
    p->request.path = url;
    if (const MHD_ConnectionInfo* from =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        from != nullptr && from->client_addr->sa_family == AF_INET) {
      p->client = reinterpret_cast<const sockaddr_in*>(from->client_addr)->sin_addr.s_addr;
    }
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, AddQueryArgument, &p->request.query);
    *req_cls = p;
    impl->SetWaiting(c, false);
    return MHD_YES;
  }
  if (p->done) return Send(c, p->response);
  if (p->queued) return MHD_YES;
  if (impl->options.inline_paths.count(p->request.path) > 0) {
    return Send(c, impl->handler(p->request));
  }
  if (!impl->Enqueue(p)) return Send(c, {503, "text/plain", "busy\n"});
  return MHD_YES;
}

void OnCompleted(void* cls, MHD_Connection* c, void** req_cls, MHD_RequestTerminationCode) {
  delete static_cast<Pending*>(*req_cls);
  *req_cls = nullptr;
  static_cast<HttpServer::Impl*>(cls)->SetWaiting(c, true);  // for the next keep-alive request
}

void OnConnection(void* cls, MHD_Connection* c, void**, MHD_ConnectionNotificationCode code) {
  static_cast<HttpServer::Impl*>(cls)->OnConnection(c, code == MHD_CONNECTION_NOTIFY_STARTED);
}

absl::StatusOr<sockaddr_in> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address must be host:port, not \"", listen, "\""));
  }
  std::string host = listen.substr(0, colon);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty() || host == "0.0.0.0") {
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (host == "localhost") {
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad IPv4 address \"", host, "\""));
  }
  return addr;
}

}  // namespace

bool HttpServer::Impl::Enqueue(Pending* p) {
  absl::MutexLock l(&mu);
  if (stopping || queue.size() >= static_cast<size_t>(options.max_queued)) return false;
  // Suspended before any worker can see it, so that its resume cannot come first.
  MHD_suspend_connection(p->connection);
  p->queued = true;
  queue.push_back(p);
  return true;
}

void HttpServer::Impl::OnConnection(MHD_Connection* c, bool started) {
  absl::MutexLock l(&conn_mu);
  if (!started) {
    // From now on the socket may be closed and its number reused.
    if (auto it = open.find(c); it != open.end()) {
      if (!it->second.closing) Release(it->second);
      open.erase(it);
    }
    return;
  }
  const MHD_ConnectionInfo* fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  const MHD_ConnectionInfo* from = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (fd == nullptr || from == nullptr || from->client_addr->sa_family != AF_INET) return;
  const uint32_t client = reinterpret_cast<const sockaddr_in*>(from->client_addr)->sin_addr.s_addr;
  open[c] = {fd->connect_fd, absl::Now(), client};
  ++holding;
  ++holding_by_client[client];
  open_changed = true;
  MakeRoom(c);
}

void HttpServer::Impl::Close(Open& o) {
  shutdown(o.fd, SHUT_RDWR);
  o.closing = true;  // once
  o.waiting_since = absl::InfiniteFuture();
  Release(o);
}

void HttpServer::Impl::Release(Open& o) {
  --holding;
  if (--holding_by_client[o.client] == 0) holding_by_client.erase(o.client);
}

HttpServer::Impl::Open* HttpServer::Impl::Idlest(MHD_Connection* fresh,
                                                 std::optional<uint32_t> client) {
  Open* idlest = nullptr;
  for (auto& [connection, o] : open) {
    if (connection != fresh && o.waiting_since != absl::InfiniteFuture() &&
        (!client.has_value() || o.client == *client) &&
        (idlest == nullptr || o.waiting_since < idlest->waiting_since)) {
      idlest = &o;
    }
  }
  return idlest;
}

void HttpServer::Impl::MakeRoom(MHD_Connection* fresh) {
  const HttpLimits& l = options.limits;
  Open& mine = open.at(fresh);
  while (holding_by_client[mine.client] > l.max_connections_per_client) {
    Open* idlest = Idlest(fresh, mine.client);
    if (idlest == nullptr) {  // its others are all busy
      Close(mine);
      return;
    }
    Close(*idlest);
  }
  while (holding > l.max_connections - l.reserved_connections) {
    Open* idlest = Idlest(fresh, std::nullopt);
    if (idlest == nullptr) return;  // all busy: the reserved slots take the newcomers
    Close(*idlest);
  }
}

void HttpServer::Impl::SetWaiting(MHD_Connection* c, bool waiting_for_request) {
  absl::MutexLock l(&conn_mu);
  if (auto it = open.find(c); it != open.end()) {
    it->second.waiting_since = waiting_for_request ? absl::Now() : absl::InfiniteFuture();
    if (waiting_for_request) open_changed = true;  // maybe earlier than the sweeper's deadline
  }
}

// Sleeps until the earliest request deadline (forever with no connection waiting: an idle server
// never wakes), or until a connection starts waiting.
void HttpServer::Impl::Sweep() {
  absl::MutexLock l(&conn_mu);
  while (!sweeper_stop) {
    const absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    for (auto& [connection, o] : open) {
      if (o.waiting_since == absl::InfiniteFuture()) continue;
      const absl::Time deadline = o.waiting_since + options.limits.request_timeout;
      if (deadline > now) {
        next = std::min(next, deadline);
        continue;
      }
      Close(o);
    }
    open_changed = false;
    conn_mu.AwaitWithDeadline(absl::Condition(
                                  +[](Impl* i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(i->conn_mu) {
                                    return i->open_changed || i->sweeper_stop;
                                  },
                                  this),
                              next);
  }
}

Pending* HttpServer::Impl::Next(bool& stop) {
  absl::MutexLock l(&mu);
  while (true) {
    stop = stopping;
    if (!queue.empty()) {
      Pending* p = queue.front();
      queue.pop_front();
      return p;
    }
    if (!deferred.empty() && (stopping || deferred.begin()->first <= absl::Now())) {
      Pending* p = deferred.begin()->second;
      deferred.erase(deferred.begin());
      return p;
    }
    if (stopping) return nullptr;
    mu.AwaitWithDeadline(absl::Condition(
                             +[](Impl* i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(i->mu) {
                               return i->stopping || !i->queue.empty();
                             },
                             this),
                         deferred.empty() ? absl::InfiniteFuture() : deferred.begin()->first);
  }
}

bool HttpServer::Impl::Defer(Pending* p) {
  absl::MutexLock l(&mu);
  if (stopping) {
    p->response = {503, "text/plain", "shutting down\n"};
    return false;
  }
  if (!p->deferred) {
    int& pending = deferred_by_client[p->client];
    if (pending >= options.limits.max_deferred_per_client) {
      p->response = {429, "text/plain", "too many deferred requests from this client\n"};
      return false;
    }
    ++pending;
    p->deferred = true;
  }
  deferred.emplace(p->response.at, p);
  return true;
}

void HttpServer::Impl::Answered(Pending* p) {
  absl::MutexLock l(&mu);
  if (--deferred_by_client[p->client] == 0) deferred_by_client.erase(p->client);
}

void HttpServer::Impl::Work() {
  bool stop;
  while (Pending* p = Next(stop)) {
    // Stopping, what is still queued or deferred is answered at once: MHD cannot stop with
    // suspended requests.
    if (stop) {
      p->response = {503, "text/plain", "shutting down\n"};
    } else {
      p->response = p->response.then ? p->response.then() : handler(p->request);
      if (p->response.then && Defer(p)) continue;
    }
    if (p->deferred) Answered(p);
    p->done = true;
    MHD_resume_connection(p->connection);
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              Handler handler) {
  auto addr = ParseListen(options.listen);
  if (!addr.ok()) return addr.status();
  // A client that goes away mid-response must not kill the agent with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0 ||
      listen(fd, 256) != 0) {
    absl::Status s = absl::ErrnoToStatus(errno, absl::StrCat("cannot listen on ", options.listen));
    if (fd >= 0) close(fd);
    return s;
  }
  socklen_t len = sizeof(*addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&*addr), &len);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handler = std::move(handler);
  const HttpLimits& l = options.limits;
  const unsigned idle_s =
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(l.idle_timeout)));
  impl->daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, nullptr,
      nullptr, OnRequest, impl.get(), MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(l.max_connections),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, options.max_header_bytes, MHD_OPTION_CONNECTION_TIMEOUT,
      idle_s, MHD_OPTION_NOTIFY_COMPLETED, OnCompleted, impl.get(), MHD_OPTION_NOTIFY_CONNECTION,
      OnConnection, impl.get(), MHD_OPTION_END);
  if (impl->daemon == nullptr) {
    close(fd);
    return absl::InternalError(absl::StrCat("cannot start the HTTP server on ", options.listen));
  }
  for (int i = 0; i < std::max(1, options.worker_threads); ++i) {
    impl->workers.emplace_back([i = impl.get()] { i->Work(); });
  }
  impl->sweeper = std::thread([i = impl.get()] { i->Sweep(); });
  std::unique_ptr<HttpServer> s(new HttpServer(std::move(impl)));
  s->port_ = ntohs(addr->sin_port);
  return s;
}

HttpServer::~HttpServer() {
  {
    absl::MutexLock l(&impl_->mu);
    impl_->stopping = true;
  }
  for (std::thread& t : impl_->workers) t.join();
  {
    absl::MutexLock l(&impl_->conn_mu);
    impl_->sweeper_stop = true;
  }
  impl_->sweeper.join();
  MHD_stop_daemon(impl_->daemon);  // closes the listening socket too
}

}  // namespace ctxagent
