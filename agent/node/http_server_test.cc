#include "agent/node/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A connection to 127.0.0.1:port from `source` (another client, as the server counts them).
int Connect(int port, const char* source = "127.0.0.1") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, source, &a.sin_addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << source;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

// Sends one keep-alive GET on `fd` and reads its answer (body "x").
std::string KeepAliveGet(int fd, const std::string& path) {
  const std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: a\r\n\r\n");
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return "send failed";
  }
  std::string out;
  char buf[4096];
  while (!absl::EndsWith(out, "\r\n\r\nx")) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) break;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, n);
  }
  return out;
}

// Whether the server closed `fd` (EOF or reset) within `wait`.
bool ClosedByServer(int fd, absl::Duration wait) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) <= 0) return false;
  char buf[256];
  return read(fd, buf, sizeof(buf)) <= 0;
}

HttpResponse AnswerX(const HttpRequest&) { return HttpResponse{200, "text/plain", "x"}; }

// Sends `raw` (while reading, so that a server that answers early cannot deadlock us) and returns
// everything read until the server closes or 5 s pass; "RESET" if the connection was reset.
std::string Request(int port, const std::string& raw) {
  int fd = Connect(port);
  size_t sent = 0;
  std::string out;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < raw.size() ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 100) <= 0) continue;
    if (p.revents & POLLIN) {
      char buf[4096];
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == ECONNRESET) out += "RESET";
      if (n <= 0) break;
      out.append(buf, n);
    } else if (p.revents & POLLOUT) {
      ssize_t n = send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) sent = raw.size();  // the server stopped reading: see what it answered
      if (n > 0) sent += n;
    }
  }
  close(fd);
  return out;
}

HttpServerOptions Loopback() {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.inline_paths = {"/healthz"};
  return o;
}

TEST(HttpServerTest, ServesGetAndRejectsTheRest) {
  auto server = HttpServer::Start(Loopback(), [](const HttpRequest& r) {
    if (r.path == "/hello") {
      auto it = r.query.find("x");
      return HttpResponse{200, "text/plain",
                          absl::StrCat("hi ", it == r.query.end() ? "-" : it->second, "\n")};
    }
    return HttpResponse{404, "text/plain", "no\n"};
  });
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  EXPECT_THAT(Request(port, "GET /hello?x=a%20b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
              ::testing::AllOf(StartsWith("HTTP/1.1 200 OK"), HasSubstr("Content-Type: text/plain"),
                               ::testing::EndsWith("\r\n\r\nhi a b\n")));
  EXPECT_THAT(Request(port, "GET /nope HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Request(port, "POST /hello HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"),
              StartsWith("HTTP/1.1 405"));
  // Garbage is closed on (libmicrohttpd answers nothing), and the server goes on.
  EXPECT_THAT(Request(port, "garbage\r\n\r\n"),
              ::testing::AnyOf(StartsWith("HTTP/1.1 400"), ::testing::IsEmpty()));
  EXPECT_THAT(Request(port, "GET /hello HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200"));
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  for (const char* path : {"/healthz", "/a"}) {  // inline and on a worker
    auto server = HttpServer::Start(Loopback(), AnswerX);
    ASSERT_TRUE(server.ok()) << server.status();
    int fd = Connect((*server)->port());
    for (int i = 0; i < 3; ++i) {
      const std::string out = KeepAliveGet(fd, path);
      EXPECT_THAT(out, StartsWith("HTTP/1.1 200")) << path << " request " << i;
      EXPECT_THAT(out, ::testing::Not(HasSubstr("Connection: close"))) << path;
    }
    close(fd);
  }
}

TEST(HttpServerTest, HugeUrlGets414NotAReset) {
  auto server = HttpServer::Start(Loopback(), [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "x"};
  });
  ASSERT_TRUE(server.ok()) << server.status();
  std::string out = Request((*server)->port(), absl::StrCat("GET /", std::string(1 << 20, 'a'),
                                                            " HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_THAT(out, ::testing::AnyOf(StartsWith("HTTP/1.1 414"), StartsWith("HTTP/1.1 431")))
      << out.substr(0, 200);
}

// A handler that blocks (the daemon's lock held by a slow refresh) delays neither /healthz nor the
// other workers' requests; idle and byte-a-second clients delay nothing.
TEST(HttpServerTest, NoClientOrHandlerStallsHealthz) {
  absl::Notification release;
  HttpServerOptions o = Loopback();
  o.worker_threads = 2;
  o.limits.max_connections_per_client = 200;  // the idle ones below are held, not refused
  auto server = HttpServer::Start(o, [&](const HttpRequest& r) {
    if (r.path == "/slow") release.WaitForNotificationWithTimeout(absl::Seconds(10));
    return HttpResponse{200, "text/plain", "ok\n"};
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::thread slow([&] { Request(port, "GET /slow HTTP/1.0\r\n\r\n"); });
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(Connect(port));
  int loris = Connect(port);
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: ";
  ASSERT_EQ(send(loris, partial.data(), partial.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(partial.size()));
  std::vector<absl::Duration> took;
  for (int i = 0; i < 30; ++i) {
    (void)!send(loris, "x", 1, MSG_NOSIGNAL);
    absl::Time t0 = absl::Now();
    std::string path = i % 2 ? "/healthz" : "/other";
    EXPECT_THAT(Request(port, absl::StrCat("GET ", path, " HTTP/1.0\r\n\r\n")),
                StartsWith("HTTP/1.1 200"));
    took.push_back(absl::Now() - t0);
    absl::SleepFor(absl::Milliseconds(10));
  }
  release.Notify();
  slow.join();
  for (int fd : idle) close(fd);
  close(loris);
  std::sort(took.begin(), took.end());
  // Stalls were seconds long; one request late by a scheduler hiccup on a loaded machine is not.
  EXPECT_LT(took[took.size() - 2], absl::Milliseconds(100)) << "second slowest of 30 requests";
  EXPECT_LT(took.back(), absl::Seconds(1)) << "slowest of 30 requests";
}

// A client that never completes its request is cut off at request_timeout, however steadily it
// trickles bytes; one that completes it in time is served.
TEST(HttpServerTest, SlowRequestsAreCutOffAtTheirDeadline) {
  HttpServerOptions o = Loopback();
  o.limits.request_timeout = absl::Milliseconds(700);
  auto server = HttpServer::Start(o, AnswerX);
  ASSERT_TRUE(server.ok()) << server.status();
  int fd = Connect((*server)->port());
  const std::string head = "GET /a HTTP/1.1\r\nHost: a\r\nX-Slow: ";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  const absl::Time start = absl::Now();
  bool closed = false;
  while (!closed && absl::Now() - start < absl::Seconds(5)) {
    (void)!send(fd, "x", 1, MSG_NOSIGNAL);
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {
      char buf[256];
      closed = read(fd, buf, sizeof(buf)) <= 0;
    }
  }
  const absl::Duration lived = absl::Now() - start;
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_GE(lived, absl::Milliseconds(600));
  EXPECT_LT(lived, absl::Seconds(2));
  EXPECT_THAT(Request((*server)->port(), "GET /a HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200"));
}

// A declared body (a 1 GB Content-Length, chunked) is refused at once, and the connection closed:
// sending it a byte every few seconds cannot hold a slot.
TEST(HttpServerTest, RequestBodiesAreRefusedAndTheirConnectionsClosed) {
  auto server = HttpServer::Start(Loopback(), AnswerX);
  ASSERT_TRUE(server.ok()) << server.status();
  for (const char* head : {"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\nab",
                           "GET /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na",
                           "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\nab"}) {
    const absl::Time start = absl::Now();
    const std::string out = Request((*server)->port(), head);  // returns when the server closes
    EXPECT_THAT(out, ::testing::AnyOf(StartsWith("HTTP/1.1 413"), StartsWith("HTTP/1.1 405")))
        << head;
    EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "not closed: " << head;
  }
  EXPECT_THAT(Request((*server)->port(),
                      "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
}

// A client at its limit: its next connection closes its own connection idle longest, no other
// client's.
TEST(HttpServerTest, OneClientCannotTakeMoreThanItsConnections) {
  HttpServerOptions o = Loopback();
  o.limits.max_connections_per_client = 3;
  auto server = HttpServer::Start(o, AnswerX);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const int other = Connect(port, "127.0.0.3");
  ASSERT_THAT(KeepAliveGet(other, "/a"), StartsWith("HTTP/1.1 200"));
  std::vector<int> mine;
  for (int i = 0; i < 3; ++i) {
    mine.push_back(Connect(port, "127.0.0.2"));
    ASSERT_THAT(KeepAliveGet(mine.back(), "/a"), StartsWith("HTTP/1.1 200"));
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_THAT(KeepAliveGet(mine[0], "/a"), StartsWith("HTTP/1.1 200"));  // mine[1] idle longest
  mine.push_back(Connect(port, "127.0.0.2"));
  EXPECT_THAT(KeepAliveGet(mine.back(), "/a"), StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(ClosedByServer(mine[1], absl::Seconds(1)));
  for (int i : {0, 2}) EXPECT_THAT(KeepAliveGet(mine[i], "/a"), StartsWith("HTTP/1.1 200")) << i;
  EXPECT_THAT(KeepAliveGet(other, "/a"), StartsWith("HTTP/1.1 200"));
  for (int fd : mine) close(fd);
  close(other);
}

// Busy keep-alive clients holding every slot: a fresh connection closes the one idle longest, and
// no other.
TEST(HttpServerTest, OldestIdleKeepAliveConnectionMakesRoomForAFreshOne) {
  HttpServerOptions o = Loopback();
  o.limits.max_connections = 8;
  o.limits.reserved_connections = 2;
  auto server = HttpServer::Start(o, AnswerX);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::vector<int> kept;  // 6 = max_connections - reserved_connections, each after a request
  for (int i = 0; i < 6; ++i) {
    kept.push_back(Connect(port, absl::StrCat("127.0.1.", i + 1).c_str()));
    ASSERT_THAT(KeepAliveGet(kept.back(), "/a"), StartsWith("HTTP/1.1 200"));
    absl::SleepFor(absl::Milliseconds(5));  // a distinct idle-since for each
  }
  ASSERT_THAT(KeepAliveGet(kept[0], "/a"), StartsWith("HTTP/1.1 200"));  // now kept[1] is oldest
  EXPECT_THAT(Request(port, "GET /healthz HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(ClosedByServer(kept[1], absl::Seconds(1)));
  // Its slot taken by a newcomer that stays, the next fresh connection closes the next oldest.
  kept.push_back(Connect(port, "127.0.1.9"));
  EXPECT_THAT(Request(port, "GET /healthz HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(ClosedByServer(kept[2], absl::Seconds(1)));
  for (int i : {0, 3, 4, 5, 6}) {
    EXPECT_FALSE(ClosedByServer(kept[i], absl::Milliseconds(50))) << i;
    EXPECT_THAT(KeepAliveGet(kept[i], "/a"), StartsWith("HTTP/1.1 200")) << i;
  }
  for (int fd : kept) close(fd);
}

// A deferred answer holds no worker: with one worker, other requests are answered while deferred
// ones wait, each of which comes when due, even past the idle timeout (a suspended connection does
// not time out); a client's deferrals beyond its limit get 429, another client's do not.
TEST(HttpServerTest, DeferredAnswersHoldNoWorker) {
  HttpServerOptions o = Loopback();
  o.worker_threads = 1;
  o.limits.idle_timeout = absl::Seconds(1);
  o.limits.max_deferred_per_client = 2;
  constexpr absl::Duration kLater = absl::Milliseconds(1500);
  std::atomic<int> then_ran{0};
  auto server = HttpServer::Start(o, [&](const HttpRequest& r) {
    if (r.path != "/later") return AnswerX(r);
    HttpResponse deferred;
    deferred.at = absl::Now() + kLater;
    deferred.then = [&] {
      ++then_ran;
      return HttpResponse{200, "text/plain", "x"};
    };
    return deferred;
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const absl::Time start = absl::Now();
  std::vector<std::thread> waiting;
  std::vector<std::string> answers(3);
  std::vector<absl::Duration> took(3);
  for (int i = 0; i < 3; ++i) {
    waiting.emplace_back([&, i] {
      const int fd = Connect(port, i < 2 ? "127.0.0.1" : "127.0.0.2");
      answers[i] = KeepAliveGet(fd, "/later");
      took[i] = absl::Now() - start;
      close(fd);
    });
  }
  absl::SleepFor(absl::Milliseconds(300));  // all three deferred
  const int same = Connect(port);
  const absl::Time asked = absl::Now();
  EXPECT_THAT(KeepAliveGet(same, "/now"), StartsWith("HTTP/1.1 200"));
  EXPECT_LT(absl::Now() - asked, absl::Milliseconds(300));
  EXPECT_THAT(KeepAliveGet(same, "/later"), StartsWith("HTTP/1.1 429")) << "its third deferral";
  close(same);
  for (std::thread& t : waiting) t.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(answers[i], ::testing::AllOf(StartsWith("HTTP/1.1 200"), ::testing::EndsWith("x")))
        << i;
    EXPECT_GE(took[i], kLater) << i;
    EXPECT_LT(took[i], kLater + absl::Seconds(1)) << i;
  }
  EXPECT_EQ(then_ran, 3);
}

TEST(HttpServerTest, BadListenAddresses) {
  for (const char* bad : {"nope", "1.2.3.4.5:80", "127.0.0.1:99999", ":x"}) {
    HttpServerOptions o;
    o.listen = bad;
    EXPECT_FALSE(HttpServer::Start(o, [](const HttpRequest&) { return HttpResponse{}; }).ok())
        << bad;
  }
  auto first = HttpServer::Start(Loopback(), [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_TRUE(first.ok());
  HttpServerOptions taken;
  taken.listen = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = HttpServer::Start(taken, [](const HttpRequest&) { return HttpResponse{}; });
  EXPECT_THAT(second.status().message(), HasSubstr("cannot listen on"));
}

}  // namespace
}  // namespace ctxagent
