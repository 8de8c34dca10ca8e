#include "telemetry/health_server.h"

#include <httplib.h>

#include "telemetry/metrics.h"

namespace xrayd {

HealthServer::HealthServer(std::string address, std::function<bool()> ready)
    : address_(std::move(address)), ready_(std::move(ready)) {}

HealthServer::~HealthServer() { Stop(); }

Status HealthServer::Start() {
  server_ = std::make_unique<http::ListeningServer>(2);
  httplib::Server& routes = server_->routes();
  routes.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  routes.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = ready_ ? ready_() : true;
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", "text/plain");
  });
  routes.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(GlobalMetrics().RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
  });
  auto port = server_->Start(address_, "health");
  if (!port) return port.error();
  port_ = *port;
  return OkStatus();
}

void HealthServer::Stop() {
  if (server_) server_->Stop();
}

}  // namespace xrayd
