// HealthServer: /healthz (liveness), /readyz (readiness) and /metrics (Prometheus) over HTTP.
// /readyz answers 200 "ready" once the daemon is up, else 503 "not ready"; also 503 while an
// exporter's spool is unusable (one line per exporter naming it and the problem; the exporter
// keeps running from memory).
//
// Owns an http::Server (its listening socket, three threads, two handler slots). Off unless
// an address is configured. Requests are GETs: request bodies are capped at 4 KiB, headers at
// 8 KiB. Start() binds and returns an error if it cannot; Stop() is idempotent, stops accepting,
// and joins the threads. Stop it before the stages its readiness check looks at.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/server.h"

namespace xrayd {

class HealthServer {
 public:
  // `ready` is called on handler threads; it must be thread-safe.
  HealthServer(std::string address, std::function<bool()> ready);
  ~HealthServer();

  // The health port's limits: small requests, two handler threads.
  static http::ServerLimits Limits();

  Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  http::OutgoingResponse Handle(const http::IncomingRequest& req) const;

  const std::string address_;
  const std::function<bool()> ready_;
  http::Server server_{"health", HttpListener::kHealth};
  int port_ = 0;
};

}  // namespace xrayd
