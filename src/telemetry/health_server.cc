#include "telemetry/health_server.h"

#include <httplib.h>

#include "ingest/udp_receiver.h"
#include "telemetry/metrics.h"

namespace xrayd {

HealthServer::HealthServer(std::string address, std::function<bool()> ready)
    : address_(std::move(address)), ready_(std::move(ready)) {}

HealthServer::~HealthServer() { Stop(); }

Status HealthServer::Start() {
  auto hp = SplitHostPort(address_);
  if (!hp) return hp.error();
  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = ready_ ? ready_() : true;
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", "text/plain");
  });
  server_->Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(GlobalMetrics().RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
  });
  const std::string host = hp->host.empty() ? "0.0.0.0" : hp->host;
  const int port = std::stoi(hp->port);
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ < 0) return Error::Io("cannot bind health address " + address_);
  } else {
    if (!server_->bind_to_port(host, port)) return Error::Io("cannot bind health address " + address_);
    port_ = port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return OkStatus();
}

void HealthServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace xrayd
