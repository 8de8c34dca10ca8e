#include "telemetry/health_server.h"

#include "telemetry/metrics.h"

namespace xrayd {

HealthServer::HealthServer(std::string address, std::function<bool()> ready)
    : address_(std::move(address)), ready_(std::move(ready)) {}

HealthServer::~HealthServer() { Stop(); }

http::ServerLimits HealthServer::Limits() {
  http::ServerLimits limits;
  limits.max_header_bytes = 8 * 1024;
  limits.max_body_bytes = 4 * 1024;
  limits.handler_threads = 2;
  limits.handler_queue = 32;
  return limits;
}

http::OutgoingResponse HealthServer::Handle(const http::IncomingRequest& req) const {
  const auto text = [](int status, std::string body) {
    return http::OutgoingResponse{status, "text/plain", {}, std::move(body)};
  };
  if (req.method != "GET" && req.method != "HEAD") return text(405, "only GET\n");
  if (req.path == "/healthz") return text(200, "ok\n");
  if (req.path == "/readyz") {
    const bool ready = ready_ ? ready_() : true;
    if (!ready) return text(503, "not ready\n");
    // An exporter running from memory because its spool is unusable: up, but not as configured.
    auto problems = GlobalMetrics().ReadinessProblems();
    if (problems.empty()) return text(200, "ready\n");
    std::string body = "not ready\n";
    for (const auto& p : problems) body += p + "\n";
    return text(503, std::move(body));
  }
  if (req.path == "/metrics")
    return {200, "text/plain; version=0.0.4; charset=utf-8", {}, GlobalMetrics().RenderPrometheus()};
  return text(404, "not found\n");
}

Status HealthServer::Start() {
  auto port = server_.Start(address_, [this](const http::IncomingRequest& req) { return Handle(req); }, Limits());
  if (!port) return port.error();
  port_ = *port;
  return OkStatus();
}

void HealthServer::Stop() { server_.Stop(); }

}  // namespace xrayd
