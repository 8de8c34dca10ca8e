// ListeningServer: the one way xrayd serves HTTP (cpp-httplib underneath): the health port, the
// sampling proxy and the X-Ray API all use it.
//
// Owns an httplib::Server, its worker pool (`threads`) and the thread that accepts connections.
// Register handlers on routes() before Start(). Start() binds "host:port" (port 0: any free
// port; empty host: all interfaces) and returns the bound port or an error naming `what`.
// Stop() is idempotent: it stops accepting, finishes in-flight requests, and joins.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.h"

namespace httplib {
class Server;
}

namespace xrayd::http {

class ListeningServer {
 public:
  explicit ListeningServer(int threads);
  ~ListeningServer();
  ListeningServer(const ListeningServer&) = delete;
  ListeningServer& operator=(const ListeningServer&) = delete;

  httplib::Server& routes() { return *server_; }
  Result<int> Start(const std::string& address, std::string_view what);
  void Stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> listener_done_{false};
};

}  // namespace xrayd::http
