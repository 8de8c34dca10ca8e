// http::Client's transport-error kinds, each provoked for real on loopback sockets.
#include "http/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/support/local_http_server.h"

namespace xrayd::http {
namespace {

using namespace std::chrono_literals;

// A TCP listener on 127.0.0.1 that accepts and then does what `on_accept` says with the socket.
class RawListener {
 public:
  template <typename F>
  explicit RawListener(F on_accept) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 8), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, on_accept] {
      const int c = accept(fd_, nullptr, nullptr);
      if (c >= 0) on_accept(c);
    });
  }
  ~RawListener() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string Url(const char* scheme = "http") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port_) + "/";
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// A port nothing listens on: bound, then closed.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

Error SendExpectingError(const std::string& url, ClientOptions options = {}) {
  Client client(options);
  auto r = client.Send({"POST", url, {}, "{}"});
  EXPECT_FALSE(r.ok()) << url;
  return r ? Error{} : r.error();
}

TEST(HttpClientTransport, ConnectionRefused) {
  const Error e = SendExpectingError("http://127.0.0.1:" + std::to_string(ClosedPort()) + "/");
  EXPECT_EQ(e.transport, TransportError::kConnectRefused) << e.message;
  EXPECT_EQ(e.kind, Error::Kind::kRetryable);
}

TEST(HttpClientTransport, TimeoutWhenThePeerNeverAnswers) {
  RawListener silent([](int c) {
    std::this_thread::sleep_for(1500ms);
    close(c);
  });
  ClientOptions o;
  o.timeout = 300ms;
  const Error e = SendExpectingError(silent.Url(), o);
  EXPECT_EQ(e.transport, TransportError::kTimeout) << e.message;
}

TEST(HttpClientTransport, ResetWhenThePeerClosesWithoutAnswer) {
  RawListener rude([](int c) {
    char buf[4096];
    (void)!read(c, buf, sizeof buf);
    close(c);
  });
  const Error e = SendExpectingError(rude.Url());
  EXPECT_EQ(e.transport, TransportError::kReset) << e.message;
}

TEST(HttpClientTransport, TlsWhenThePeerSpeaksPlainText) {
  RawListener plain([](int c) {
    const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!write(c, answer, sizeof answer - 1);
    std::this_thread::sleep_for(200ms);
    close(c);
  });
  const Error e = SendExpectingError(plain.Url("https"));
  EXPECT_EQ(e.transport, TransportError::kTls) << e.message;
}

TEST(HttpClientTransport, DnsForANameThatCannotResolve) {
  // RFC 6761: .invalid never resolves; libcurl fails without a network round trip on most hosts.
  ClientOptions o;
  o.timeout = 5s;
  const Error e = SendExpectingError("http://no-such-host.invalid/", o);
  EXPECT_EQ(e.transport, TransportError::kDns) << e.message;
}

TEST(HttpClientTransport, ResponseTooLargeAndAbort) {
  testing::LocalHttpServer server;
  server.server().Post("/big", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(64 * 1024, 'x'), "text/plain");
  });
  std::atomic<bool> abort{false};
  server.server().Post("/slow", [&](const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(1s);
    res.set_content("late", "text/plain");
  });
  server.Start();
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());

  ClientOptions small;
  small.max_response_bytes = 1024;
  EXPECT_EQ(SendExpectingError(base + "/big", small).transport, TransportError::kResponseTooLarge);

  ClientOptions abortable;
  abortable.abort = &abort;
  std::thread aborter([&] {
    std::this_thread::sleep_for(100ms);
    abort = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(SendExpectingError(base + "/slow", abortable).transport, TransportError::kAborted);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  aborter.join();
}

TEST(HttpClientTransport, AnHttpStatusIsAResponseNotATransportError) {
  testing::LocalHttpServer server;
  server.server().Post("/", [](const httplib::Request&, httplib::Response& res) { res.status = 503; });
  server.Start();
  Client client({});
  auto r = client.Send({"POST", "http://127.0.0.1:" + std::to_string(server.port()) + "/", {}, "{}"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 503);
}

TEST(HttpClientTransport, KeepsTheConnectionAliveBetweenRequests) {
  // The listener accepts one connection and answers two requests on it: a second connection would
  // never be answered, and the second Send would time out.
  RawListener once([](int c) {
    const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for (int i = 0; i < 2; ++i) {
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n{}") == std::string::npos) {
        const ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) return;
        request.append(buf, static_cast<size_t>(n));
      }
      (void)!write(c, answer, sizeof answer - 1);
    }
    std::this_thread::sleep_for(300ms);
    close(c);
  });
  ClientOptions o;
  o.timeout = 2s;
  Client client(o);
  for (int i = 0; i < 2; ++i) {
    auto r = client.Send({"POST", once.Url(), {}, "{}"});
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().message;
    EXPECT_EQ(r->body, "ok");
  }
}

}  // namespace
}  // namespace xrayd::http
