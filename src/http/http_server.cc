#include "http/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/host_port.h"
#include "common/thread_name.h"

namespace xrayd::http {

namespace {

Error BindError(std::string_view what, const std::string& address) {
  const int err = errno;  // httplib leaves the failed bind()'s errno in place
  std::string message = "cannot bind " + std::string(what) + " address " + address;
  if (err != 0) message += std::string(": ") + std::strerror(err);
  return Error::Io(message);
}

}  // namespace

ListeningServer::ListeningServer(int threads) : server_(std::make_unique<httplib::Server>()) {
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // Idle keep-alive connections hold a worker until this expires, and Stop() waits for them.
  server_->set_keep_alive_timeout(1);
  // httplib's default turns on SO_REUSEPORT, which lets a second listener (another xrayd, or our
  // own API and proxy given the same address) share the port and silently split the connections.
  // SO_REUSEADDR alone still allows a restart while old connections sit in TIME_WAIT.
  server_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
}

ListeningServer::~ListeningServer() { Stop(); }

Result<int> ListeningServer::Start(const std::string& address, std::string_view what) {
  auto hp = SplitHostPort(address);
  if (!hp) return hp.error();
  const std::string host = hp->host.empty() ? "0.0.0.0" : hp->host;
  const int wanted = std::stoi(hp->port);
  int port = wanted;
  errno = 0;
  if (wanted == 0) {
    port = server_->bind_to_any_port(host);
    if (port < 0) return BindError(what, address);
  } else if (!server_->bind_to_port(host, wanted)) {
    return BindError(what, address);
  }
  listener_done_ = false;
  thread_ = std::thread([this, name = std::string(what)] {
    NameThisThread("xrayd-" + name);
    server_->listen_after_bind();
    listener_done_ = true;
  });
  // httplib's stop() does nothing until the listener thread has marked itself running, so a
  // Stop() right after Start() (a SIGTERM during startup) would leave accept() blocked forever.
  while (!server_->is_running() && !listener_done_) std::this_thread::sleep_for(std::chrono::microseconds(200));
  return port;
}

void ListeningServer::Stop() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace xrayd::http
