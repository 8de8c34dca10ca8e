#include "http/http_server.h"

#include <httplib.h>

#include "ingest/udp_receiver.h"

namespace xrayd::http {

ListeningServer::ListeningServer(int threads) : server_(std::make_unique<httplib::Server>()) {
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // Idle keep-alive connections hold a worker until this expires, and Stop() waits for them.
  server_->set_keep_alive_timeout(1);
}

ListeningServer::~ListeningServer() { Stop(); }

Result<int> ListeningServer::Start(const std::string& address, std::string_view what) {
  auto hp = SplitHostPort(address);
  if (!hp) return hp.error();
  const std::string host = hp->host.empty() ? "0.0.0.0" : hp->host;
  const int wanted = std::stoi(hp->port);
  int port = wanted;
  if (wanted == 0) {
    port = server_->bind_to_any_port(host);
    if (port < 0) return Error::Io("cannot bind " + std::string(what) + " address " + address);
  } else if (!server_->bind_to_port(host, wanted)) {
    return Error::Io("cannot bind " + std::string(what) + " address " + address);
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return port;
}

void ListeningServer::Stop() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace xrayd::http
