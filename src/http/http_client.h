// HttpClient: the one outbound HTTP client (libcurl underneath).
//
// One instance per sending thread: it owns a curl easy handle, which keeps its connections alive
// between requests. Not thread-safe. Every call has a total timeout, so a stalled peer can never
// hold a sender forever. Proxies: the explicit option, else libcurl's standard environment
// variables (HTTPS_PROXY, https_proxy, HTTP_PROXY, NO_PROXY).
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace xrayd::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method = "POST";
  std::string url;
  Headers headers;
  std::string body;
};

struct Response {
  long status = 0;
  std::string body;
  Headers headers;  // names lower-cased
  std::string Header(std::string_view lower_name) const;
};

struct ClientOptions {
  std::string proxy;  // "http://host:port"; empty: environment
  bool verify_tls = true;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
  size_t max_response_bytes = 4 * 1024 * 1024;
  // When set and true, a transfer in progress is abandoned (shutdown).
  const std::atomic<bool>* abort = nullptr;
};

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Transport failures (refused, reset, timeout, TLS, ...) are Retryable errors whose `transport`
  // names the kind (common/result.h TransportError); any HTTP status, including 4xx/5xx, is a
  // Response for the caller to classify.
  Result<Response> Send(const Request& request);

 private:
  const ClientOptions options_;
  void* curl_;  // CURL*, owned
};

}  // namespace xrayd::http
