// HealthServer: /healthz (liveness), /readyz (readiness) and /metrics (Prometheus) over HTTP.
//
// Owns a listening socket and its serving threads (cpp-httplib). Off unless an address is
// configured. Start() binds and returns an error if it cannot; Stop() is idempotent, stops
// accepting, and joins the threads. Stop it before the stages its readiness check looks at.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "http/http_server.h"

namespace xrayd {

class HealthServer {
 public:
  // `ready` is called on serving threads; it must be thread-safe.
  HealthServer(std::string address, std::function<bool()> ready);
  ~HealthServer();

  Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  const std::string address_;
  const std::function<bool()> ready_;
  std::unique_ptr<http::ListeningServer> server_;
  int port_ = 0;
};

}  // namespace xrayd
