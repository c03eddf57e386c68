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

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

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
    auto server = HttpServer::Start(Loopback(), [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "x"};
    });
    ASSERT_TRUE(server.ok()) << server.status();
    int fd = Connect((*server)->port());
    for (int i = 0; i < 3; ++i) {
      const std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: a\r\n\r\n");
      ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
      std::string out;
      char buf[4096];
      while (!absl::EndsWith(out, "\r\n\r\nx")) {
        ssize_t n = read(fd, buf, sizeof(buf));
        ASSERT_GT(n, 0) << path << " request " << i << ": " << out;
        out.append(buf, n);
      }
      EXPECT_THAT(out, StartsWith("HTTP/1.1 200"));
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
  o.request_timeout = absl::Milliseconds(700);
  auto server = HttpServer::Start(o, [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "x"};
  });
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
