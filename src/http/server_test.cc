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
#include <functional>
#include <memory>
#include <vector>
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
  void FinishSending() { shutdown(fd_, SHUT_WR); }
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

// Starts `server` with a handler that echoes, after holding at `gate` the requests for `held_path`
// (every request when empty).
Result<int> StartGated(Server& server, Gate& gate, const std::string& held_path, const ServerLimits& limits) {
  return server.Start(
      "127.0.0.1:0",
      [&gate, held_path](const IncomingRequest& req) {
        if (held_path.empty() || req.path == held_path) gate.Enter();
        return Echo(req);
      },
      limits);
}

TEST(HttpServer, FullHandlerQueueAnswers503RetryAfter) {
  ServerLimits limits;
  limits.handler_threads = 1;
  limits.handler_queue = 1;
  Gate gate;
  Server server("test", HttpListener::kApi);
  auto port = StartGated(server, gate, "", limits);
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
  auto port = StartGated(server, gate, "/block", limits);
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

// The memory budget (ServerLimits::max_held_body_bytes) over real sockets.
std::string Post(const std::string& path, size_t body_bytes) {
  return "POST " + path + " HTTP/1.1\r\nContent-Length: " + std::to_string(body_bytes) + "\r\n\r\n" +
         std::string(body_bytes, 'b');
}

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

ServerLimits BudgetLimits() {
  ServerLimits limits;
  limits.max_body_bytes = 1 << 20;
  limits.max_held_body_bytes = 2 << 20;  // two bodies of the largest size
  limits.handler_threads = 4;
  return limits;
}

// Bodies past the budget wait, unread, until a handler returns; then every one is served, and
// every reserved byte is back.
TEST(HttpServerBudget, BodiesOverTheBudgetWaitAndAllGetIn) {
  Gate gate;
  Server server("test", HttpListener::kApi);
  auto port = server.Start(
      "127.0.0.1:0",
      [&](const IncomingRequest& req) {
        gate.Enter();
        return OutgoingResponse{200, "text/plain", {}, std::to_string(req.body.size())};
      },
      BudgetLimits());
  ASSERT_TRUE(port.ok());
  const uint64_t refused = GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget);
  Conn a(*port), b(*port), c(*port);
  std::thread sa([&] { a.Send(Post("/a", 1 << 20)); }), sb([&] { b.Send(Post("/b", 1 << 20)); });
  ASSERT_TRUE(WaitFor([&] { return gate.entered == 2; }));
  std::thread sc([&] { c.Send(Post("/c", 1 << 20)); });
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(gate.entered, 2) << "a third body was read past the budget";
  EXPECT_EQ(server.held_body_bytes(), 2u << 20);
  gate.Open();
  for (Conn* conn : {&a, &b, &c}) {
    const std::string out = conn->ReadSome();
    EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
    EXPECT_NE(out.find(std::to_string(1 << 20)), std::string::npos) << out;
  }
  sa.join(), sb.join(), sc.join();
  EXPECT_EQ(GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget), refused);
  EXPECT_TRUE(WaitFor([&] { return server.held_body_bytes() == 0; })) << server.held_body_bytes();
}

// A body that waits longer than budget_wait gets 503 Retry-After, counted; the client writes its
// whole body first and still reads the answer. Once the handlers return, requests get in again.
TEST(HttpServerBudget, WaitingPastBudgetWaitAnswers503AndTheBudgetComesBack) {
  ServerLimits limits = BudgetLimits();
  limits.budget_wait = 200ms;
  Gate gate;
  Server server("test", HttpListener::kApi);
  auto port = StartGated(server, gate, "/hold", limits);
  ASSERT_TRUE(port.ok());
  const uint64_t refused = GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget);
  Conn a(*port), b(*port), late(*port);
  std::thread sa([&] { a.Send(Post("/hold", 1 << 20)); }), sb([&] { b.Send(Post("/hold", 1 << 20)); });
  ASSERT_TRUE(WaitFor([&] { return gate.entered == 2; }));
  late.Send(Post("/late", 1 << 20));
  late.FinishSending();
  const std::string out = late.ReadAll();
  EXPECT_EQ(out.rfind("HTTP/1.1 503", 0), 0u) << out;
  EXPECT_NE(out.find("Retry-After: 1"), std::string::npos) << out;
  EXPECT_EQ(GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget), refused + 1);
  gate.Open();
  EXPECT_EQ(a.ReadSome().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(b.ReadSome().rfind("HTTP/1.1 200", 0), 0u);
  sa.join(), sb.join();
  for (int i = 0; i < 3; ++i) {  // each needs the budget whole: released by every request before
    Conn again(*port);
    again.Send(Post("/again", 1 << 20));
    const std::string answer = again.ReadSome();
    EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  }
  EXPECT_EQ(GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget), refused + 1);
}

// Slowloris with big promises: connections announcing 8 MB and trickling bytes hold no more than
// the budget together; the rest are refused (503) when their wait ends, and nothing stays held.
TEST(HttpServerBudget, SlowClientsAnnouncingLargeBodiesHoldOnlyTheBudget) {
  ServerLimits limits;  // 8 MB bodies
  limits.max_held_body_bytes = 16 << 20;
  limits.budget_wait = 300ms;
  limits.body_timeout = 5s;
  Server server("test", HttpListener::kApi);
  auto port = server.Start("127.0.0.1:0", Echo, limits);
  ASSERT_TRUE(port.ok());
  const uint64_t refused = GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget);
  std::vector<std::unique_ptr<Conn>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<Conn>(*port));
    slow.back()->Send("POST /slow HTTP/1.1\r\nContent-Length: 8388608\r\n\r\nxx");
  }
  ASSERT_TRUE(WaitFor([&] { return server.held_body_bytes() == 16u << 20; })) << server.held_body_bytes();
  ASSERT_TRUE(WaitFor([&] {
    return GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget) >= refused + 18;
  }));
  EXPECT_LE(server.held_body_bytes(), 16u << 20);
  size_t refused_503 = 0;
  for (auto& c : slow) {
    c->Send("yy");
    c->FinishSending();
    refused_503 += c->ReadAll().rfind("HTTP/1.1 503", 0) == 0;  // the two held are just closed
  }
  EXPECT_EQ(refused_503, 18u);
  slow.clear();
  EXPECT_TRUE(WaitFor([&] { return server.held_body_bytes() == 0; })) << server.held_body_bytes();
}

// A chunked body reserves as it arrives; past the budget it is refused at once.
TEST(HttpServerBudget, ChunkedBodyGrowingPastTheBudgetIsRefused) {
  Gate gate;
  Server server("test", HttpListener::kApi);
  auto port = StartGated(server, gate, "/hold", BudgetLimits());
  ASSERT_TRUE(port.ok());
  const uint64_t refused = GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget);
  Conn h1(*port), h2(*port);
  std::thread s1([&] { h1.Send(Post("/hold", 1 << 20)); });
  std::thread s2([&] { h2.Send(Post("/hold", (1 << 20) - 4096)); });
  ASSERT_TRUE(WaitFor([&] { return gate.entered == 2; }));
  Conn chunked(*port);
  std::string chunk = "2000\r\n" + std::string(0x2000, 'c') + "\r\n";  // 8 KB per chunk
  chunked.Send("POST /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 4; ++i) chunked.Send(chunk);  // 32 KB: past the 4 KB left
  chunked.Send("0\r\n\r\n");
  chunked.FinishSending();
  const std::string out = chunked.ReadAll();
  EXPECT_EQ(out.rfind("HTTP/1.1 503", 0), 0u) << out;
  EXPECT_EQ(GlobalMetrics().HttpRefused(HttpListener::kApi, HttpRefusal::kMemoryBudget), refused + 1);
  gate.Open();
  EXPECT_EQ(h1.ReadSome().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(h2.ReadSome().rfind("HTTP/1.1 200", 0), 0u);
  s1.join(), s2.join();
  Conn small(*port);  // a chunked body within the budget is served
  small.Send("POST /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + "0\r\n\r\n");
  EXPECT_EQ(small.ReadSome().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_TRUE(WaitFor([&] { return server.held_body_bytes() == 0; })) << server.held_body_bytes();
}

}  // namespace
}  // namespace xrayd::http
