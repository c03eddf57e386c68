// Connection slots under a busy neighbour (issue 25), against the daemon's default limits: 600
// keep-alive connections from 40 client addresses, each sending a complete, valid GET /healthz
// every 3 s (never idle long, never slow), and a client declaring a 1 GB body and sending a byte
// every 2 s. Meanwhile fresh-connection /healthz probes, as the kubelet makes them, run every
// second from 4 probers: >= 99% must be answered within 1 s and none later than the deploy's
// tightest probe timeout (the startupProbe's 3 s); /metrics must still be scraped.
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "tests/e2e/daemon_runner.h"
#include "tests/e2e/http_get.h"

namespace ctxagent {
namespace {

using testing::HttpGet;

constexpr int kBusy = 600, kBusyAddresses = 40;  // 15 per address: under the per-client limit
constexpr absl::Duration kBusyEvery = absl::Seconds(3), kProbing = absl::Seconds(30);

struct BusyStats {
  std::atomic<int> answers{0}, closed_by_server{0}, peak_held{0};
};

// The busy neighbour, on one thread until `stop`: keeps kBusy connections, each sending a request
// every kBusyEvery, and reconnects 500 ms after the server closes one.
void RunBusyClients(int port, const std::atomic<bool>& stop, BusyStats& stats) {
  struct Conn {
    int fd = -1;
    bool connected = false;
    absl::Time next_send, reconnect_at;
  };
  std::vector<Conn> conns(kBusy);
  const absl::Time start = absl::Now();
  for (int i = 0; i < kBusy; ++i) conns[i].reconnect_at = start + absl::Milliseconds(2 * i);
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  auto drop = [&](Conn& c, absl::Time now) {
    close(c.fd);
    c = {.reconnect_at = now + absl::Milliseconds(500)};
    ++stats.closed_by_server;
  };
  std::vector<pollfd> fds;
  std::vector<Conn*> of;
  while (!stop) {
    absl::Time now = absl::Now();
    fds.clear();
    of.clear();
    for (int i = 0; i < kBusy; ++i) {
      Conn& c = conns[i];
      if (c.fd < 0 && now >= c.reconnect_at) {
        c.fd = testing::ConnectFrom(port, absl::StrCat("127.1.", i % kBusyAddresses, ".1"));
        c.connected = false;
        c.next_send = now;
        if (c.fd < 0) c.reconnect_at = now + absl::Milliseconds(500);
      }
      if (c.fd < 0) continue;
      fds.push_back({c.fd, static_cast<short>(c.connected ? POLLIN : POLLOUT), 0});
      of.push_back(&c);
    }
    poll(fds.data(), fds.size(), 20);
    now = absl::Now();
    int held = 0;
    for (size_t k = 0; k < fds.size(); ++k) {
      Conn& c = *of[k];
      if (fds[k].revents & (POLLERR | POLLHUP)) {
        drop(c, now);
        continue;
      }
      if (fds[k].revents & POLLOUT) c.connected = true;
      if (fds[k].revents & POLLIN) {
        char buf[4096];
        const ssize_t n = read(c.fd, buf, sizeof(buf));
        if (n <= 0) {
          drop(c, now);
          continue;
        }
        const std::string in(buf, static_cast<size_t>(n));
        for (size_t at = in.find(" 200 OK"); at != std::string::npos;
             at = in.find(" 200 OK", at + 1)) {
          ++stats.answers;
        }
      }
      if (c.connected && now >= c.next_send) {
        if (send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size())) {
          drop(c, now);
          continue;
        }
        c.next_send = now + kBusyEvery;
      }
      held += c.connected;
    }
    stats.peak_held = std::max(stats.peak_held.load(), held);
  }
  for (Conn& c : conns) {
    if (c.fd >= 0) close(c.fd);
  }
}

struct SlowBody {
  int attempts = 0;
  int refused = 0;  // answered 413 or 405
  absl::Duration longest;
};

// Declares a 1 GB body and sends a byte of it every 2 s until the server closes the connection;
// again a second later, until `stop`.
SlowBody RunSlowBody(int port, const std::atomic<bool>& stop) {
  SlowBody r;
  for (int i = 0; !stop && i < 100; ++i) {
    const int fd = testing::ConnectFrom(port, "127.2.0.1");
    if (fd < 0) break;
    ++r.attempts;
    const absl::Time start = absl::Now();
    std::string head =
        absl::StrCat(i % 2 ? "POST" : "GET",
                     " /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
    absl::Time next_byte = start;
    std::string in;
    while (!stop && absl::Now() - start < absl::Seconds(20)) {
      pollfd p{fd, static_cast<short>(POLLIN | (head.empty() ? 0 : POLLOUT)), 0};
      poll(&p, 1, 50);
      if (p.revents & POLLIN) {
        char buf[512];
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      } else if (p.revents & (POLLERR | POLLHUP)) {
        break;
      } else if ((p.revents & POLLOUT) && !head.empty()) {
        if (send(fd, head.data(), head.size(), MSG_NOSIGNAL) <= 0) break;
        head.clear();
      } else if (head.empty() && absl::Now() >= next_byte) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) break;
        next_byte += absl::Seconds(2);
      }
    }
    r.longest = std::max(r.longest, absl::Now() - start);
    r.refused += absl::StartsWith(in, "HTTP/1.1 413") || absl::StartsWith(in, "HTTP/1.1 405");
    close(fd);
    for (int w = 0; w < 10 && !stop; ++w) absl::SleepFor(absl::Milliseconds(100));
  }
  return r;
}

TEST(HttpSlotsTest, FreshHealthzProbesAreAnsweredWhileABusyNeighbourHoldsEverySlot) {
  CTXAGENT_REQUIRE_BPF();
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = std::max<rlim_t>(files.rlim_cur, std::min<rlim_t>(files.rlim_max, 4096));
  setrlimit(RLIMIT_NOFILE, &files);
  // Nothing to trace: what is measured is the HTTP server with its default limits.
  testing::DaemonHandle daemon =
      testing::StartDaemon(CTXAGENT_BIN, {"--include=binary:ctxagent-no-such-binary"},
                           ::testing::TempDir() + "/ctxagent_http_slots.log");
  ASSERT_GT(daemon.port, 0) << daemon.process->Log();

  std::atomic<bool> stop{false};
  BusyStats busy;
  std::thread neighbour([&] { RunBusyClients(daemon.port, stop, busy); });
  SlowBody slow;
  std::thread slow_client([&] { slow = RunSlowBody(daemon.port, stop); });
  const absl::Time warm_by = absl::Now() + absl::Seconds(10);
  while (busy.peak_held < 400 && absl::Now() < warm_by) absl::SleepFor(absl::Milliseconds(100));

  absl::Mutex mu;
  std::vector<absl::Duration> took;  // a failed probe counts as infinitely late
  std::vector<int> scrapes;
  std::vector<std::thread> probers;
  const absl::Time end = absl::Now() + kProbing;
  for (int t = 0; t < 4; ++t) {
    probers.emplace_back([&, t] {
      absl::SleepFor(absl::Milliseconds(250 * t));
      for (absl::Time next = absl::Now(); next < end; next += absl::Seconds(1)) {
        absl::SleepFor(next - absl::Now());
        const absl::Time t0 = absl::Now();
        const testing::HttpResult r = HttpGet(daemon.port, "/healthz", absl::Seconds(5));
        absl::MutexLock l(&mu);
        took.push_back(r.status == 200 ? absl::Now() - t0 : absl::InfiniteDuration());
      }
    });
  }
  for (absl::Time next = absl::Now(); next < end; next += absl::Seconds(5)) {
    absl::SleepFor(next - absl::Now());
    const testing::HttpResult r = HttpGet(daemon.port, "/metrics", absl::Seconds(5));
    scrapes.push_back(
        r.status == 200 && absl::StrContains(r.body, "ctxagent_build_info") ? 200 : r.status);
  }
  for (std::thread& t : probers) t.join();
  stop = true;
  neighbour.join();
  slow_client.join();

  std::sort(took.begin(), took.end());
  const size_t within_1s = static_cast<size_t>(std::count_if(
      took.begin(), took.end(), [](absl::Duration d) { return d <= absl::Seconds(1); }));
  const double answered_pct =
      100.0 * static_cast<double>(within_1s) / static_cast<double>(took.size());
  printf(
      "http slots: %zu fresh /healthz probes, %.1f%% answered within 1 s, p50 %.1f ms, max %.1f "
      "ms; "
      "busy neighbour: %d of %d connections held at peak, %d answers, %d connections closed by the "
      "server; slow body: %d attempts, %d refused, longest held %.0f ms; %zu /metrics scrapes\n",
      took.size(), answered_pct, absl::ToDoubleMilliseconds(took[took.size() / 2]),
      absl::ToDoubleMilliseconds(took.back()), busy.peak_held.load(), kBusy, busy.answers.load(),
      busy.closed_by_server.load(), slow.attempts, slow.refused,
      absl::ToDoubleMilliseconds(slow.longest), scrapes.size());
  ASSERT_GE(took.size(), 100u);
  EXPECT_GE(answered_pct, 99.0);
  EXPECT_LE(took.back(), absl::Seconds(3)) << "a probe outlived the kubelet's timeout (or failed)";
  // The abuse was real: the slots were full and the neighbour was served all along.
  EXPECT_GE(busy.peak_held.load(), 400);
  EXPECT_GE(busy.answers.load(), 3000);
  EXPECT_GE(slow.attempts, 5);
  EXPECT_EQ(slow.refused, slow.attempts) << "a declared body must be refused at once";
  EXPECT_LT(slow.longest, absl::Seconds(2)) << "a slow body held its connection";
  for (int s : scrapes) EXPECT_EQ(s, 200);
  EXPECT_EQ(daemon.process->Stop(absl::Seconds(20)), 0) << daemon.process->Log();
}

}  // namespace
}  // namespace ctxagent
