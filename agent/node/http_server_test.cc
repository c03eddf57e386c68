#include "agent/node/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

std::string Request(int port, const std::string& raw) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  (void)!write(fd, raw.data(), raw.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

TEST(HttpServerTest, ServesGetAndRejectsTheRest) {
  auto server = HttpServer::Start("127.0.0.1:0", [](const std::string& path) {
    if (path == "/hello") return HttpResponse{200, "text/plain", "hi\n"};
    return HttpResponse{404, "text/plain", "no\n"};
  });
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  EXPECT_THAT(Request(port, "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
              ::testing::AllOf(::testing::StartsWith("HTTP/1.1 200 OK"),
                               ::testing::HasSubstr("Content-Length: 3\r\n"),
                               ::testing::EndsWith("\r\n\r\nhi\n")));
  EXPECT_THAT(Request(port, "GET /nope HTTP/1.1\r\n\r\n"), ::testing::StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Request(port, "POST /hello HTTP/1.1\r\n\r\n"), ::testing::StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(Request(port, "garbage\r\n\r\n"), ::testing::StartsWith("HTTP/1.1 400"));
}

TEST(HttpServerTest, BadListenAddresses) {
  for (const char* bad : {"nope", "1.2.3.4.5:80", "127.0.0.1:99999", ":x"}) {
    EXPECT_FALSE(HttpServer::Start(bad, [](const std::string&) { return HttpResponse{}; }).ok())
        << bad;
  }
}

}  // namespace
}  // namespace ctxagent
