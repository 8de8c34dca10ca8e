// http::Server over real loopback sockets: binding, stopping, and the refusals that need a socket
// (deadlines, the connection cap, a full handler queue). Parsing refusals: server_reader_test.cc.
#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace xrayd::http {
namespace {

using namespace std::chrono_literals;

// A blocking client socket with a receive timeout; closed on destruction.
class Conn {
 public:
  explicit Conn(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Conn() { close(fd_); }
  bool connected() const { return connected_; }
  void Send(const std::string& s) { (void)!send(fd_, s.data(), s.size(), MSG_NOSIGNAL); }
  // Everything until the peer closes (or 5 s pass).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  // One response of a kept-alive connection (enough for the small bodies these tests use).
  std::string ReadSome() {
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

 private:
  int fd_;
  bool connected_ = false;
};

OutgoingResponse Echo(const IncomingRequest& req) { return {200, "text/plain", {}, req.method + " " + req.path}; }

TEST(HttpServer, ServesKeepAliveAndCloses) {
  Server server("test", HttpListener::kApi);
  auto port = server.Start("127.0.0.1:0", Echo, ServerLimits{});
  ASSERT_TRUE(port.ok()) << port.error().message;
  Conn c(*port);
  c.Send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(c.ReadSome().find("GET /one"), std::string::npos);
  c.Send("GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string last = c.ReadAll();
  EXPECT_NE(last.find("Connection: close"), std::string::npos) << last;
  EXPECT_NE(last.find("GET /two"), std::string::npos) << last;
}

TEST(HttpServer, SecondListenerOnTheSamePortIsRefused) {
  Server first("first", HttpListener::kApi);
  auto port = first.Start("127.0.0.1:0", Echo, ServerLimits{});
  ASSERT_TRUE(port.ok());
  Server second("test API", HttpListener::kApi);
  auto again = second.Start("127.0.0.1:" + std::to_string(*port), Echo, ServerLimits{});
  ASSERT_FALSE(again.ok()) << "two listeners shared port " << *port;
  EXPECT_NE(again.error().message.find("cannot bind test API address 127.0.0.1:"), std::string::npos)
      << again.error().message;
  EXPECT_NE(again.error().message.find("in use"), std::string::npos) << again.error().message;
}

TEST(HttpServer, PortCanBeReboundAfterStopAndStopRightAfterStartReturns) {
  int port = 0;
  {
    Server server("first", HttpListener::kApi);
    auto bound = server.Start("127.0.0.1:0", Echo, ServerLimits{});
    ASSERT_TRUE(bound.ok());
    port = *bound;
    Conn c(port);
    c.Send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    EXPECT_FALSE(c.ReadAll().empty());  // leaves a connection in TIME_WAIT
    server.Stop();
    server.Stop();  // idempotent
  }
  Server again("restarted", HttpListener::kApi);
  EXPECT_TRUE(again.Start("127.0.0.1:" + std::to_string(port), Echo, ServerLimits{}).ok());
  for (int i = 0; i < 50; ++i) {
    Server s("short-lived", HttpListener::kApi);
    ASSERT_TRUE(s.Start("127.0.0.1:0", Echo, ServerLimits{}).ok());
  }
}

TEST(HttpServer, HandlerExceptionAnswers500WithoutItsText) {
  Server server("test", HttpListener::kApi);
  auto port = server.Start(
      "127.0.0.1:0", [](const IncomingRequest&) -> OutgoingResponse { throw std::runtime_error("secret detail"); },
      ServerLimits{});
  ASSERT_TRUE(port.ok());
  Conn c(*port);
  c.Send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  const std::string out = c.ReadAll();
  EXPECT_EQ(out.rfind("HTTP/1.1 500", 0), 0u) << out;
  EXPECT_EQ(out.find("secret"), std::string::npos) << out;
}

TEST(HttpServer, SlowHeaderGets408AndIdleConnectionsAreClosed) {
  ServerLimits limits;
  limits.header_timeout = 300ms;
  limits.idle_timeout = 300ms;
  Server server("test", HttpListener::kApi);
  auto port = server.Start("127.0.0.1:0", Echo, limits);
  ASSERT_TRUE(port.ok());
  const uint64_t before = GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kHeaderTimeout);
  Conn slow(*port), idle(*port);
  slow.Send("GET / HT");
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = slow.ReadAll();
  EXPECT_EQ(out.rfind("HTTP/1.1 408", 0), 0u) << out;
  EXPECT_EQ(idle.ReadAll(), "");  // closed without a word
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kHeaderTimeout), before + 1);
}

TEST(HttpServer, ConnectionCapAnswers503) {
  ServerLimits limits;
  limits.max_connections = 3;
  Server server("test", HttpListener::kProxy);
  auto port = server.Start("127.0.0.1:0", Echo, limits);
  ASSERT_TRUE(port.ok());
  Conn a(*port), b(*port), c(*port);
  for (int i = 0; i < 100 && server.open_connections() < 3; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(server.open_connections(), 3u);
  Conn d(*port);
  d.Send("GET / HTTP/1.1\r\n\r\n");
  const std::string out = d.ReadAll();
  EXPECT_EQ(out.rfind("HTTP/1.1 503", 0), 0u) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
}

// Holds handlers until Open(): a handler calls Enter(), which counts it and blocks.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> entered{0};
  void Enter() {
    ++entered;
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void Open() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

TEST(HttpServer, FullHandlerQueueAnswers503RetryAfter) {
  ServerLimits limits;
  limits.handler_threads = 1;
  limits.handler_queue = 1;
  Gate gate;
  Server server("test", HttpListener::kApi);
  auto port = server.Start(
      "127.0.0.1:0",
      [&](const IncomingRequest& req) {
        gate.Enter();
        return Echo(req);
      },
      limits);
  ASSERT_TRUE(port.ok());
  Conn running(*port), queued(*port), refused(*port);
  running.Send("GET /1 HTTP/1.1\r\n\r\n");
  for (int i = 0; i < 200 && gate.entered == 0; ++i) std::this_thread::sleep_for(5ms);
  queued.Send("GET /2 HTTP/1.1\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  refused.Send("GET /3 HTTP/1.1\r\n\r\n");
  const std::string out = refused.ReadAll();
  EXPECT_EQ(out.rfind("HTTP/1.1 503", 0), 0u) << out;
  EXPECT_NE(out.find("Retry-After: 1"), std::string::npos) << out;
  gate.Open();
  EXPECT_NE(running.ReadSome().find("GET /1"), std::string::npos);
  EXPECT_NE(queued.ReadSome().find("GET /2"), std::string::npos);
}

// Handlers run inline on the server's threads; with every handler slot blocked, one thread is
// still left for I/O: a slow header still gets its 408, a kept-alive connection is still served
// once a slot frees, and a queued request takes the slot its predecessor hands on.
TEST(HttpServer, BlockedHandlersLeaveIoAndDeadlinesRunning) {
  ServerLimits limits;
  limits.handler_threads = 2;
  limits.handler_queue = 4;
  limits.header_timeout = 300ms;
  Gate gate;
  Server server("test", HttpListener::kApi);
  auto port = server.Start(
      "127.0.0.1:0",
      [&](const IncomingRequest& req) {
        if (req.path == "/block") gate.Enter();
        return Echo(req);
      },
      limits);
  ASSERT_TRUE(port.ok());
  Conn a(*port), b(*port), queued(*port), slow(*port);
  a.Send("GET /block HTTP/1.1\r\n\r\n");
  b.Send("GET /block HTTP/1.1\r\n\r\n");
  for (int i = 0; i < 400 && gate.entered < 2; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(gate.entered, 2);
  queued.Send("GET /queued HTTP/1.1\r\n\r\n");
  slow.Send("GET / HT");
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = slow.ReadAll();
  EXPECT_EQ(out.rfind("HTTP/1.1 408", 0), 0u) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  gate.Open();
  EXPECT_NE(a.ReadSome().find("GET /block"), std::string::npos);
  EXPECT_NE(b.ReadSome().find("GET /block"), std::string::npos);
  EXPECT_NE(queued.ReadSome().find("GET /queued"), std::string::npos);
  a.Send("GET /again HTTP/1.1\r\n\r\n");  // the kept-alive connection goes on
  const std::string again = a.ReadSome();
  EXPECT_NE(again.find("GET /again"), std::string::npos) << again;
  EXPECT_EQ(again.find("Server-Timing"), std::string::npos) << again;  // only with XRAYD_SERVER_TIMING=1
}

TEST(HttpServer, ServerTimingWhenAskedByTheEnvironment) {
  ASSERT_EQ(setenv("XRAYD_SERVER_TIMING", "1", 1), 0);
  Server server("test", HttpListener::kApi);
  auto port = server.Start("127.0.0.1:0", Echo, ServerLimits{});
  unsetenv("XRAYD_SERVER_TIMING");
  ASSERT_TRUE(port.ok());
  Conn c(*port);
  c.Send("GET /t HTTP/1.1\r\n\r\n");
  const std::string out = c.ReadSome();
  EXPECT_NE(out.find("\r\nServer-Timing: queue;dur="), std::string::npos) << out;
  EXPECT_NE(out.find(", handler;dur="), std::string::npos) << out;
  EXPECT_NE(out.find("GET /t"), std::string::npos) << out;
}

}  // namespace
}  // namespace xrayd::http
