// SamplingProxy: the daemon's TCP port. X-Ray SDKs call it for centralized sampling
// (POST /GetSamplingRules, /SamplingTargets, /SamplingStatisticSummaries); it signs each call
// with the daemon's credentials (aws::SignedClient; with no credentials at hand it forwards unsigned
// and warns, as AWS's daemon does) and forwards it to the X-Ray endpoint, relaying the answer.
//
// Only those X-Ray API paths are forwarded, only with POST, only to the configured endpoint:
// it is not an open proxy (AWS's daemon forwards any path; we refuse with 404). Request bodies are
// capped at 1 MB whatever their framing (Content-Length, chunked) and again once decompressed: a
// larger one is refused with 413 by the server layer and never forwarded. Each upstream call has
// the client timeout.
//
// Owns an http::Server (listening socket, kHandlerThreads + 1 threads, kHandlerThreads handler slots that
// block on upstream calls). Start() binds and returns an error if it cannot. Stop() is idempotent:
// it first aborts every upstream call in flight (they answer 502 within about a second, libcurl's
// progress-callback interval), then stops the server and joins its threads, so a stalled upstream
// cannot hold shutdown. Stop it before the credentials provider it borrows is destroyed.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "aws/credentials.h"
#include "aws/signed_client.h"
#include "common/log.h"
#include "common/result.h"
#include "common/thread_annotations.h"
#include "http/http_client.h"
#include "http/server.h"

namespace xrayd {

struct SamplingProxyOptions {
  std::string listen_address = "127.0.0.1:2000";
  std::string endpoint;  // X-Ray base URL
  std::string region;    // signing region
  http::ClientOptions http;
};

class SamplingProxy {
 public:
  SamplingProxy(SamplingProxyOptions options, aws::CredentialsProvider* credentials);
  ~SamplingProxy();

  Status Start();
  void Stop();
  int port() const { return port_; }

  // The X-Ray API paths the proxy forwards.
  static bool IsForwardedPath(const std::string& path);
  static constexpr int kHandlerThreads = 8;
  static http::ServerLimits Limits();

 private:
  http::OutgoingResponse Forward(const http::IncomingRequest& req);
  std::unique_ptr<http::Client> TakeClient();
  void ReturnClient(std::unique_ptr<http::Client> client);

  const SamplingProxyOptions options_;
  aws::CredentialsProvider* const credentials_;
  std::shared_ptr<const aws::SignedClient> upstream_;  // set by Start()
  log::RateLimiter upstream_log_{std::chrono::seconds(5)};  // failed forwards, from any handler thread
  std::atomic<bool> abort_{false};  // set by Stop(): every upstream call in flight gives up
  http::Server server_{"TCP", HttpListener::kProxy};
  int port_ = 0;
  Mutex clients_mu_;
  std::vector<std::unique_ptr<http::Client>> idle_clients_ XRAYD_GUARDED_BY(clients_mu_);
};

}  // namespace xrayd
