#include "http/server_reader.h"

#include <zlib.h>

#include <algorithm>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <limits>

namespace xrayd::http {

namespace beast_http = boost::beast::http;

constexpr size_t kMinChunkedInput = 5;  // "0\r\n\r\n"

struct RequestReader::Parser {
  beast_http::request_parser<beast_http::string_body> p;
};

Status ServerLimits::Validate() const {
  std::string problems;
  auto need = [&](bool ok, const char* what) {
    if (!ok) problems += std::string(problems.empty() ? "" : "; ") + what;
  };
  need(max_header_bytes >= 1024 && max_header_bytes <= std::numeric_limits<uint32_t>::max(),
       "max header bytes must be at least 1024");
  need(max_header_count >= 8, "max header count must be at least 8");
  need(max_body_bytes >= 1, "max body bytes must be at least 1");
  need(max_inflation_ratio >= 1, "max inflation ratio must be at least 1");
  need(max_held_body_bytes >= 1, "max held body bytes must be at least 1");
  need(header_timeout.count() > 0 && body_timeout.count() > 0 && idle_timeout.count() > 0 &&
           write_timeout.count() > 0 && budget_wait.count() > 0,
       "timeouts must be positive");
  need(max_connections >= 1, "max connections must be at least 1");
  need(handler_threads >= 1, "handler threads must be at least 1");
  need(handler_queue >= 1, "handler queue must be at least 1");
  if (problems.empty()) return OkStatus();
  return Error::InvalidArgument("HTTP server limits: " + problems);
}

RequestReader::RequestReader(const ServerLimits& limits, bool pause_after_header)
    : limits_(limits), pause_after_header_(pause_after_header) {
  StartRequest();
}

RequestReader::~RequestReader() = default;

void RequestReader::StartRequest() {
  parser_ = std::make_unique<Parser>();
  parser_->p.header_limit(static_cast<uint32_t>(limits_.max_header_bytes));
  parser_->p.body_limit(static_cast<uint64_t>(limits_.max_body_bytes));
  parser_->p.eager(false);  // stop after the header so CheckHeader() runs before any body byte
  header_checked_ = false;
  continue_checked_ = false;
}

void RequestReader::Append(std::string_view bytes) { pending_.append(bytes); }

bool RequestReader::InHeader() const {
  return !refused_ && !parser_->p.is_header_done() && !pending_.empty();
}

bool RequestReader::InBody() const { return !refused_ && parser_->p.is_header_done() && !parser_->p.is_done(); }

size_t RequestReader::DeclaredBodyBytes() const {
  if (!InBody()) return 0;
  const auto length = parser_->p.content_length();
  return length ? static_cast<size_t>(*length) : 0;
}

size_t RequestReader::BodyBytes() const { return InBody() ? parser_->p.get().body().size() : 0; }

RequestReader::Progress RequestReader::Refuse(int status, HttpRefusal reason, std::string message) {
  refused_ = true;
  refusal_ = Refusal{status, reason, std::move(message)};
  pending_.clear();
  pending_.shrink_to_fit();
  parser_ = std::make_unique<Parser>();  // frees the body read so far
  return Progress::kRefused;
}

void RequestReader::Abandon() {
  if (!refused_) Refuse(503, HttpRefusal::kOverloaded, "abandoned");
}

namespace {

// Beast's parse errors as the answer the client gets.
Refusal RefusalFor(const boost::system::error_code& ec) {
  using E = beast_http::error;
  if (ec == E::header_limit) return {431, HttpRefusal::kHeaderTooLarge, "request line and headers too large"};
  if (ec == E::body_limit) return {413, HttpRefusal::kBodyTooLarge, "request body too large"};
  if (ec == E::bad_content_length || ec == E::bad_transfer_encoding || ec == E::bad_chunk ||
      ec == E::bad_chunk_extension)
    return {400, HttpRefusal::kBadFraming, "ambiguous or invalid message framing: " + ec.message()};
  return {400, HttpRefusal::kMalformed, "malformed request: " + ec.message()};
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view SV(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (IncomingRequest::Lower(a[i]) != IncomingRequest::Lower(b[i])) return false;
  return true;
}

}  // namespace

RequestReader::Progress RequestReader::Next() {
  if (refused_) return Progress::kRefused;
  auto& p = parser_->p;
  while (true) {
    if (p.is_header_done() && !header_checked_) {
      if (CheckHeader() == Progress::kRefused) return Progress::kRefused;
      header_checked_ = true;
      p.eager(true);
      if (pause_after_header_ && !p.is_done()) return Progress::kHeader;
    }
    if (header_checked_ && p.is_done()) return Finish();
    if (header_checked_ && !continue_checked_) {
      continue_checked_ = true;
      const bool expects = EqualsIgnoreCase(Trim(SV(p.get()[beast_http::field::expect])), "100-continue");
      if (expects && !p.is_done() && pending_.empty()) return Progress::kContinueExpected;
    }
    if (pending_.empty()) return Progress::kNeedMore;
    // Beast 1.74 asserts (and without assertions re-parses unchecked) when the last chunk is
    // presented again with fewer than 5 bytes ("0\r\n\r" then "\n"; found by fuzz_http_request).
    // Waiting for 5 bytes never stalls a complete message: until it ends, at least the last chunk
    // "0\r\n\r\n" is still to come, and Beast consumes none of it before it is whole.
    if (p.is_header_done() && p.chunked() && pending_.size() < kMinChunkedInput) return Progress::kNeedMore;
    boost::system::error_code ec;
    const size_t used = p.put(boost::asio::buffer(pending_.data(), pending_.size()), ec);
    pending_.erase(0, used);
    if (ec == beast_http::error::need_more) {
      // In the body, Beast keeps only an incomplete chunk-size line unconsumed; bound it too.
      if (p.is_header_done() && pending_.size() > limits_.max_header_bytes)
        return Refuse(400, HttpRefusal::kBadFraming, "chunk header too long");
      return Progress::kNeedMore;
    }
    if (ec) {
      Refusal r = RefusalFor(ec);
      return Refuse(r.status, r.reason, std::move(r.message));
    }
  }
}

RequestReader::Progress RequestReader::CheckHeader() {
  const auto& msg = parser_->p.get();
  if (msg.version() != 10 && msg.version() != 11)
    return Refuse(400, HttpRefusal::kMalformed, "only HTTP/1.0 and HTTP/1.1 are served");
  size_t count = 0;
  std::string transfer_encoding;
  size_t content_encodings = 0;
  for (const auto& f : msg) {
    ++count;
    if (f.name() == beast_http::field::transfer_encoding)
      transfer_encoding += (transfer_encoding.empty() ? "" : ",") + std::string(SV(f.value()));
    if (f.name() == beast_http::field::content_encoding) ++content_encodings;
  }
  if (count > limits_.max_header_count)
    return Refuse(431, HttpRefusal::kTooManyHeaders,
                  "more than " + std::to_string(limits_.max_header_count) + " header fields");
  if (msg.find(beast_http::field::transfer_encoding) != msg.end()) {
    // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; §6.3: only a final "chunked" frames a
    // request, and we implement no other coding, so anything else is 501.
    if (msg.version() == 10) return Refuse(400, HttpRefusal::kBadFraming, "Transfer-Encoding in an HTTP/1.0 request");
    if (!EqualsIgnoreCase(Trim(transfer_encoding), "chunked"))
      return Refuse(501, HttpRefusal::kTransferCoding, "only the chunked transfer coding is implemented");
  }
  if (content_encodings > 1)
    return Refuse(415, HttpRefusal::kContentEncoding, "more than one Content-Encoding header");
  const std::string_view ce = Trim(SV(msg[beast_http::field::content_encoding]));
  if (!ce.empty() && !EqualsIgnoreCase(ce, "identity") && !EqualsIgnoreCase(ce, "gzip") &&
      !EqualsIgnoreCase(ce, "x-gzip") && !EqualsIgnoreCase(ce, "deflate"))
    return Refuse(415, HttpRefusal::kContentEncoding, "Content-Encoding must be gzip, deflate or identity");
  return Progress::kNeedMore;
}

RequestReader::Progress RequestReader::Finish() {
  auto msg = parser_->p.release();
  IncomingRequest req;
  req.method = std::string(SV(msg.method_string()));
  req.target = std::string(SV(msg.target()));
  const size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) req.query = req.target.substr(q + 1);
  req.headers.reserve(16);
  for (const auto& f : msg) req.headers.emplace_back(std::string(SV(f.name_string())), std::string(SV(f.value())));
  if (req.headers.size() > limits_.max_header_count)  // a chunked body's trailer fields join the header
    return Refuse(431, HttpRefusal::kTooManyHeaders,
                  "more than " + std::to_string(limits_.max_header_count) + " header and trailer fields");
  req.body = std::move(msg.body());
  const std::string encoding(Trim(SV(msg[beast_http::field::content_encoding])));
  if (auto refused = Decode(encoding, req.body, limits_.max_body_bytes, limits_.max_inflation_ratio))
    return Refuse(refused->status, refused->reason, std::move(refused->message));
  ready_ = std::move(req);
  ready_keep_alive_ = msg.keep_alive();
  StartRequest();
  return Progress::kRequest;
}

IncomingRequest RequestReader::TakeRequest(bool* keep_alive) {
  if (keep_alive != nullptr) *keep_alive = ready_keep_alive_;
  return std::move(ready_);
}

namespace {

// zlib's windowBits for the body: gzip (auto-detected with a zlib header), zlib-wrapped deflate, or
// raw deflate (some clients send RFC 1951 data as "deflate").
int WindowBits(std::string_view encoding, const std::string& body) {
  if (!EqualsIgnoreCase(encoding, "deflate")) return 15 + 32;
  if (body.size() >= 2) {
    const unsigned b0 = static_cast<unsigned char>(body[0]), b1 = static_cast<unsigned char>(body[1]);
    if ((b0 & 0x0f) == 8 && ((b0 << 8) | b1) % 31 == 0) return 15;
  }
  return -15;
}

}  // namespace

std::optional<Refusal> Decode(std::string_view encoding, std::string& body, size_t max_bytes, size_t ratio) {
  if (encoding.empty() || EqualsIgnoreCase(encoding, "identity")) return std::nullopt;
  const size_t by_ratio = body.size() > std::numeric_limits<size_t>::max() / std::max<size_t>(ratio, 1)
                              ? std::numeric_limits<size_t>::max()
                              : body.size() * ratio;
  const size_t limit = std::min(max_bytes, by_ratio);
  z_stream zs{};
  if (inflateInit2(&zs, WindowBits(encoding, body)) != Z_OK) return Refusal{500, HttpRefusal::kMalformed, "zlib"};
  zs.next_in = reinterpret_cast<Bytef*>(body.data());
  zs.avail_in = static_cast<uInt>(body.size());
  std::string out;
  std::optional<Refusal> refused;
  while (true) {
    // Room for one byte past the limit, so crossing it is seen without inflating further.
    const size_t room = std::min<size_t>(limit + 1 - out.size(), 64 * 1024);
    const size_t before = out.size();
    out.resize(before + room);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    zs.avail_out = static_cast<uInt>(room);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(before + (room - zs.avail_out));
    if (out.size() > limit) {
      refused = Refusal{413, HttpRefusal::kInflatedTooLarge,
                        out.size() > max_bytes ? "request body too large once decompressed"
                                               : "request body inflates more than " + std::to_string(ratio) + " times"};
      break;
    }
    if (rc == Z_STREAM_END) {
      if (zs.avail_in != 0) refused = Refusal{400, HttpRefusal::kMalformed, "data after the compressed body"};
      break;
    }
    if (rc == Z_OK) continue;
    refused = Refusal{400, HttpRefusal::kMalformed,
                      rc == Z_BUF_ERROR ? "truncated compressed body" : "corrupt compressed body"};
    break;
  }
  inflateEnd(&zs);
  if (!refused) body = std::move(out);
  return refused;
}

}  // namespace xrayd::http
