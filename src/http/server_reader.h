// RequestReader: the bytes of one HTTP/1.x connection → complete requests, one at a time, or a
// refusal. No socket, no clock, no thread: http::Server feeds it what it reads, and the fuzz
// target (fuzz/fuzz_http_request.cc) feeds it arbitrary bytes.
//
// Parsing is Boost.Beast's request parser with header and body limits set, plus the checks Beast
// leaves to the caller. Framing follows RFC 9112 §6.3 strictly: Transfer-Encoding together with
// Content-Length, two different Content-Lengths, a transfer coding other than a lone "chunked" or
// Transfer-Encoding on HTTP/1.0 are refused, never guessed at. A request with neither header has no
// body (length zero), so bytes after its header are the next request, never a body read until
// the peer closes. A gzip/deflate body (Content-Encoding) is inflated into a buffer bounded by
// the body limit and by `max_inflation_ratio` × its compressed size; inflation stops at the bound.
//
// Memory held is at most max_header_bytes + max_body_bytes + one read's worth of bytes; a refusal
// frees the body read so far. After a refusal the connection must be closed: nothing after it is
// parsed. With `pause_after_header`, Next() stops once a header announcing a body is accepted
// (kHeader), before any body byte is parsed, so that http::Server can reserve memory for it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "http/server_message.h"
#include "telemetry/metrics.h"

namespace xrayd::http {

// What one listener accepts. Defaults suit the X-Ray API; each listener narrows what it needs.
struct ServerLimits {
  size_t max_header_bytes = 16 * 1024;   // request line + all header lines
  size_t max_header_count = 100;          // header fields
  size_t max_body_bytes = 8 * 1024 * 1024;  // body as received, and again once decompressed
  size_t max_inflation_ratio = 100;       // decompressed size ≤ ratio × compressed size
  // From a request's first byte to the end of its header; slow senders (slowloris) are cut here.
  std::chrono::milliseconds header_timeout{10000};
  // From the end of the header to the end of the body.
  std::chrono::milliseconds body_timeout{30000};
  // A connection with no request in progress (fresh, or kept alive after a response) is closed
  // after this long without a byte.
  std::chrono::milliseconds idle_timeout{5000};
  // Writing one response; a client that does not read its answer is cut here.
  std::chrono::milliseconds write_timeout{10000};
  size_t max_connections = 1024;  // open at once; past it a connection gets 503 and is closed
  int handler_threads = 4;        // threads running the RequestHandler (it may block)
  size_t handler_queue = 64;      // complete requests waiting for a thread; past it: 503
  // Request bytes the whole listener holds in memory at once: bodies being read (reserved from
  // Content-Length when the header is in; chunked bodies as they arrive; again once decompressed)
  // and complete requests waiting for or running their handler, until the handler returns. A body
  // whose Content-Length does not fit waits unread (TCP holds the client back), oldest first, for
  // up to budget_wait, then gets 503 Retry-After; a chunked or decompressed body that outgrows the
  // budget gets 503 at once. At least max_body_bytes is always allowed (one largest request fits).
  // 64 MB: eight bodies of the 8 MB maximum, or hundreds of the usual ones (AWS's daemon sends at
  // most 50 documents of 64 KB, 3.2 MB); a PutTraceSegments body costs about 3 times its size at its
  // peak (parsed documents, parser buffers), and the store takes documents no faster with more
  // bodies waiting in memory (bench/put_memory.py).
  size_t max_held_body_bytes = 64 * 1024 * 1024;
  std::chrono::milliseconds budget_wait{10000};

  // Every problem in one message, or OK.
  Status Validate() const;
};

struct Refusal {
  int status = 400;  // 400, 408, 413, 415, 431, 501 or 503
  HttpRefusal reason = HttpRefusal::kMalformed;
  std::string message;  // for the log and the response body; never echoes request bytes
};

class RequestReader {
 public:
  enum class Progress {
    kNeedMore,          // every buffered byte used; feed more
    kHeader,            // (pause_after_header only) header accepted, body not read yet: call Next()
    kContinueExpected,  // header accepted and the client waits for "100 Continue" before its body
    kRequest,           // a complete request: take it with TakeRequest()
    kRefused,           // see refusal(); close the connection after answering it
  };

  explicit RequestReader(const ServerLimits& limits, bool pause_after_header = false);
  ~RequestReader();
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;

  // Buffers bytes read from the peer. Call Next() after each Append().
  void Append(std::string_view bytes);
  // Parses as far as the buffered bytes allow.
  Progress Next();

  // After kRequest: the request, and whether the connection may carry another one. Starts the next
  // request (bytes already buffered belong to it).
  IncomingRequest TakeRequest(bool* keep_alive);
  const Refusal& refusal() const { return refusal_; }
  // Frees every byte buffered and refuses from now on (the connection was refused for a reason
  // of the server's own: it is answered and closed).
  void Abandon();

  // Bytes of a request seen but no complete header yet (the header deadline runs).
  bool InHeader() const;
  // Header complete, body not yet (the body deadline runs).
  bool InBody() const;
  // While InBody(): the body's Content-Length (0 when chunked), and its bytes parsed so far.
  size_t DeclaredBodyBytes() const;
  size_t BodyBytes() const;

 private:
  struct Parser;
  Progress Refuse(int status, HttpRefusal reason, std::string message);
  Progress CheckHeader();
  Progress Finish();
  void StartRequest();

  const ServerLimits limits_;
  const bool pause_after_header_;
  std::unique_ptr<Parser> parser_;
  std::string pending_;  // bytes not yet consumed by the parser
  bool header_checked_ = false;
  bool continue_checked_ = false;
  IncomingRequest ready_;
  bool ready_keep_alive_ = false;
  Refusal refusal_;
  bool refused_ = false;
};

// Undoes a Content-Encoding in place: "gzip", "x-gzip" or "deflate" (zlib-wrapped or raw);
// "identity" or "" leave the body as is. The result may hold at most `max_bytes` and at most
// `ratio` × the compressed size: inflation stops at the first byte past either bound (413).
// Corrupt or truncated data, or bytes after the compressed stream, answer 400.
std::optional<Refusal> Decode(std::string_view encoding, std::string& body, size_t max_bytes, size_t ratio);

}  // namespace xrayd::http
