// Result<T>: the value an I/O-path function returns instead of throwing.
//
// An Error carries its kind, so callers (the retry loop above all) decide by kind and never by
// message text. Cheap to move; not thread-safe (values, not shared objects).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace xrayd {

// Why an exchange with a peer failed before any HTTP status came back. Set by http::Client from
// libcurl's result code (and by aws::SignedClient for kNoCredentials); kNone on every other error.
// Telemetry counts BackendConnectionErrors by it; nobody matches error text.
enum class TransportError {
  kNone,
  kDns,                // the host (or proxy) name did not resolve
  kConnectRefused,     // no listener, or the connection could not be made
  kTimeout,            // connect or total timeout
  kTls,                // TLS handshake or certificate failure
  kReset,              // the peer closed or reset the connection mid-exchange
  kResponseTooLarge,   // the answer exceeded ClientOptions::max_response_bytes
  kAborted,            // the abort hook stopped the transfer (shutdown)
  kNoCredentials,      // not sent: the request could not be signed (aws/signed_client.h)
  kOther,              // any other libcurl failure
};
const char* ToString(TransportError t);

struct Error {
  enum class Kind {
    kInvalidArgument,  // caller's input is wrong; retrying the same input cannot help
    kRetryable,        // transient (connection reset, 5xx, timeout)
    kThrottled,        // the peer asked us to slow down; honour retry_after when set
    kPermanent,        // the peer refused this request for good (4xx validation)
    kIo,               // local I/O failure (socket, file)
  };

  Kind kind = Kind::kPermanent;
  std::string message;
  std::optional<std::chrono::milliseconds> retry_after;
  TransportError transport = TransportError::kNone;

  static Error InvalidArgument(std::string m) { return {Kind::kInvalidArgument, std::move(m), {}}; }
  static Error Retryable(std::string m) { return {Kind::kRetryable, std::move(m), {}}; }
  static Error Throttled(std::string m, std::optional<std::chrono::milliseconds> after = {}) {
    return {Kind::kThrottled, std::move(m), after};
  }
  static Error Permanent(std::string m) { return {Kind::kPermanent, std::move(m), {}}; }
  static Error Io(std::string m) { return {Kind::kIo, std::move(m), {}}; }
  // A transport failure: retryable, carrying its kind.
  static Error Transport(TransportError t, std::string m) { return {Kind::kRetryable, std::move(m), {}, t}; }

  // The same error with `context` put before its message (kind, retry_after, transport kept).
  Error Wrapped(std::string_view context) const {
    Error e = *this;
    e.message = std::string(context) + ": " + message;
    return e;
  }

  bool IsRetryable() const { return kind == Kind::kRetryable || kind == Kind::kThrottled; }
};

// E is the error type: Error on I/O paths; the X-Ray API's handlers use ApiError (api/api_error.h).
template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(E error) : v_(std::move(error)) {}      // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

// Result<void>: success carries nothing.
struct Ok {};
using Status = Result<Ok>;
inline Status OkStatus() { return Ok{}; }

inline const char* ToString(TransportError t) {
  switch (t) {
    case TransportError::kNone: return "none";
    case TransportError::kDns: return "dns";
    case TransportError::kConnectRefused: return "connect_refused";
    case TransportError::kTimeout: return "timeout";
    case TransportError::kTls: return "tls";
    case TransportError::kReset: return "reset";
    case TransportError::kResponseTooLarge: return "response_too_large";
    case TransportError::kAborted: return "aborted";
    case TransportError::kNoCredentials: return "no_credentials";
    case TransportError::kOther: return "other";
  }
  return "other";
}

}  // namespace xrayd
