// SamplingProxy: the daemon's TCP port. X-Ray SDKs call it for centralized sampling
// (POST /GetSamplingRules, /SamplingTargets, /SamplingStatisticSummaries); it signs each call
// with the daemon's credentials and forwards it to the X-Ray endpoint, relaying the answer.
//
// Only those X-Ray API paths are forwarded, only with POST, only to the configured endpoint:
// it is not an open proxy (AWS's daemon forwards any path; we refuse with 404). Request bodies
// are capped at 1 MB and each upstream call has the client timeout.
//
// Owns the listening socket and its serving threads (cpp-httplib, 4 workers). Start() binds and
// returns an error if it cannot; Stop() is idempotent and joins. Stop it before the credentials
// provider it borrows is destroyed.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aws/credentials.h"
#include "common/result.h"
#include "http/http_server.h"
#include "http/http_client.h"

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

 private:
  std::unique_ptr<http::Client> TakeClient();
  void ReturnClient(std::unique_ptr<http::Client> client);

  const SamplingProxyOptions options_;
  aws::CredentialsProvider* const credentials_;
  std::string base_url_;
  std::string host_;
  std::string base_path_;
  std::unique_ptr<http::ListeningServer> server_;
  int port_ = 0;
  std::mutex clients_mu_;
  std::vector<std::unique_ptr<http::Client>> idle_clients_;  // guarded by clients_mu_
};

}  // namespace xrayd
