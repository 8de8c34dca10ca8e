// HttpClient: the one outbound HTTP/1.1 client (Boost.Beast over Asio sockets, OpenSSL for https).
//
// One instance per sending thread: it owns one connection (a socket, and a TLS session for https),
// kept alive between requests to the same place, and an io_context that runs only inside Send() on
// the caller's thread. The first name lookup starts Asio's resolver thread for that io_context; the
// destructor closes the connection, then joins that thread (waiting out a lookup that a timeout or
// abort left running). Not thread-safe. Every call has
// a total timeout, so a stalled peer can never hold a sender forever. Proxies: the explicit option,
// else the environment as libcurl reads it (http/url.h: https_proxy, HTTPS_PROXY, http_proxy,
// all_proxy, NO_PROXY); https goes through a CONNECT tunnel. TLS verification uses the system's CA
// store; SSL_CERT_FILE / SSL_CERT_DIR name another bundle. Destroying it closes the connection.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
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
  bool direct = false;  // true: never through a proxy, neither `proxy` nor the environment's
  bool verify_tls = true;
  // TLS files (PEM), for a destination with its own PKI: a CA bundle trusted instead of the
  // system's, and a client certificate and key presented when the server asks (mutual TLS). All
  // empty: the process-wide context (system CAs, no client certificate). A file that cannot be
  // loaded fails each https request as a kTls transport error naming it.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
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
  struct Impl;
  const ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xrayd::http
