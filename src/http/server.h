// http::Server: the HTTP/1.1 listener under every xrayd port that speaks HTTP (X-Ray API, TCP
// sampling proxy, health port), built on Boost.Beast's parser and Boost.Asio. It holds under slow,
// idle and hostile clients:
//
// - One I/O thread ("xrayd-<name>") runs an io_context: accepting, reading, parsing and writing
//   are asynchronous, so a connection that trickles bytes or sits idle costs a socket and a small
//   buffer, never a thread.
// - Complete requests run on a bounded handler pool ("xrayd-<name>-N", ServerLimits::handler_threads)
//   with a bounded queue, so handlers may block (libcurl upstream calls, SQLite reads) and slow
//   readers cannot starve them: a slow reader never reaches the pool. Queue full → 503 Retry-After.
// - Deadlines (ServerLimits): idle (no request in progress), header (first byte to end of header),
//   body (end of header to end of body), write (one response). A header or body deadline answers
//   408; an idle one just closes.
// - Limits: request line + headers (bytes and count), body under any framing and again after
//   Content-Encoding, inflation ratio, open connections (past the cap: 503 and close).
// - Strict framing (RFC 9112 §6.3), see http/server_reader.h.
// Every refusal answers 400/408/413/415/431/501/503 with "Connection: close", closes the connection
// (after a short lingering drain so the client can read the answer) and is counted in
// xrayd_http_refused_total{listener,reason}.
//
// Requests on one connection are served one at a time (no reading ahead while a handler runs).
//
// Threads and stop order: Start() binds on the caller's thread, then starts the handler threads and
// the I/O thread. Stop() (idempotent, also from the destructor) closes the listening socket, stops
// the handler pool (queued requests are dropped, running handlers finish: a blocking handler must
// be unblocked by its owner first, as SamplingProxy aborts its upstream calls), then stops and joins
// the I/O thread and closes every connection. Start() and Stop() are called from one thread.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "http/server_message.h"
#include "http/server_reader.h"
#include "telemetry/metrics.h"

namespace xrayd::http {

struct ServerCore;  // server.cc: what the I/O thread, the connections and the handler jobs share

class Server {
 public:
  // `name` labels threads and logs ("API", "TCP", "health"); `listener` labels the refusal counters.
  Server(std::string name, HttpListener listener);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds "host:port" (port 0: any free port; empty host: all interfaces) with SO_REUSEADDR only,
  // and serves `handler`. Returns the bound port, or an error naming the listener and the address.
  // `handler` runs on the handler threads and must be thread-safe.
  Result<int> Start(const std::string& address, RequestHandler handler, ServerLimits limits);
  void Stop();

  // Connections open now (for tests and diagnostics).
  size_t open_connections() const;

 private:
  const std::string name_;
  const HttpListener listener_;
  std::unique_ptr<ServerCore> core_;
  std::thread io_thread_;
};

}  // namespace xrayd::http
