// Test helper: a real HTTP server (cpp-httplib) on 127.0.0.1 with a kernel-chosen port, standing
// in for STS, instance metadata, container credential endpoints and X-Ray in unit tests.
// Register handlers on server() before Start(); the destructor stops and joins. Handlers run on
// the server's threads: guard shared test state with a mutex.
#pragma once

#include <httplib.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

namespace xrayd::testing {

class LocalHttpServer {
 public:
  LocalHttpServer() = default;
  ~LocalHttpServer() { Stop(); }
  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  httplib::Server& server() { return server_; }

  void Start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void Stop() {
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

// Decodes an application/x-www-form-urlencoded body into key → value.
inline std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> out;
  httplib::Params params;
  httplib::detail::parse_query_text(body, params);
  for (const auto& [k, v] : params) out[k] = v;
  return out;
}

}  // namespace xrayd::testing
