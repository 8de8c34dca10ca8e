// http::Server: the HTTP/1.1 listener under every xrayd port that speaks HTTP (X-Ray API, TCP
// sampling proxy, health port), built on Boost.Beast's parser and Boost.Asio. It holds under slow,
// idle and hostile clients:
//
// - ServerLimits::handler_threads + 1 threads ("xrayd-<name>-N") run one io_context: accepting,
//   reading, parsing and writing are asynchronous, so a connection that trickles bytes or sits idle
//   costs a socket and a small buffer, never a thread. Each connection runs on its own strand.
// - A complete request runs its handler inline, on the thread that parsed it, which then writes
//   the answer: no hand-off to another thread and back (under CPU contention each hand-off is a
//   wake-up that can cost milliseconds; measured with bench/store_read_bench.py). At most
//   handler_threads handlers run at once, so handlers may block (libcurl upstream calls, SQLite
//   reads) and one thread is always left for I/O and deadlines; past that, up to handler_queue
//   requests wait for a handler slot (handed on by each finishing handler), and past that a
//   request gets 503 Retry-After. A slow reader never holds a slot: only complete requests do.
// - Memory: a listener holds at most ServerLimits::max_held_body_bytes of request bodies at once
//   (being read, waiting for a slot, or in a handler), reserved before a body is read (from its
//   Content-Length; chunked and decompressed bodies as they grow) and released when its handler
//   returns. A body that does not fit waits unread for budget_wait, oldest first, then gets 503
//   Retry-After (reason memory_budget); so does a chunked or decompressed body that outgrows it.
//   1024 slow clients announcing 8 MB each hold the budget, not 8 GB.
// - XRAYD_SERVER_TIMING=1 in the environment adds a "Server-Timing" header to every response
//   (queue, handler, reply in ms): a diagnostic for benchmarks.
// - Deadlines (ServerLimits): idle (no request in progress), header (first byte to end of header),
//   body (end of header to end of body), write (one response). A header or body deadline answers
//   408; an idle one just closes.
// - Limits: request line + headers (bytes and count), body under any framing and again after
//   Content-Encoding, inflation ratio, open connections (past the cap: 503 and close), request
//   bytes held (above).
// - Strict framing (RFC 9112 §6.3), see http/server_reader.h.
// Every refusal answers 400/408/413/415/431/501/503 with "Connection: close", closes the connection
// (after a short lingering drain so the client can read the answer; a body refused for the memory
// budget is drained whole, within body_timeout, as clients write it all before reading) and is counted in
// xrayd_http_refused_total{listener,reason}.
//
// Requests on one connection are served one at a time (no reading ahead while a handler runs).
//
// Threads and stop order: Start() binds on the caller's thread, then starts the threads. Stop()
// (idempotent, also from the destructor) closes the listening socket, drops the requests waiting
// for a handler slot, stops the io_context and joins every thread (running handlers finish first:
// a blocking handler must be unblocked by its owner first, as SamplingProxy aborts its upstream
// calls), then closes every connection. Start() and Stop() are called from one thread.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "http/server_message.h"
#include "http/server_reader.h"
#include "telemetry/metrics.h"

namespace xrayd::http {

struct ServerCore;  // server.cc: what the threads and the connections share

class Server {
 public:
  // `name` labels threads and logs ("API", "TCP", "health"); `listener` labels the refusal counters.
  Server(std::string name, HttpListener listener);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds "host:port" (port 0: any free port; empty host: all interfaces) with SO_REUSEADDR only,
  // and serves `handler`. Returns the bound port, or an error naming the listener and the address.
  // `handler` runs on the server's threads, several at once: it must be thread-safe.
  Result<int> Start(const std::string& address, RequestHandler handler, ServerLimits limits);
  void Stop();

  // Connections open now, and request bytes held of the memory budget (for tests and diagnostics).
  size_t open_connections() const;
  size_t held_body_bytes() const;

 private:
  const std::string name_;
  const HttpListener listener_;
  std::unique_ptr<ServerCore> core_;
  std::vector<std::thread> threads_;
};

}  // namespace xrayd::http
