// SignedClient: "sign this body and POST it to that AWS endpoint", the one place it is written.
//
// Used by the X-Ray exporter (PutTraceSegments), the telemetry reporter (PutTelemetryRecords),
// STS (AssumeRole) and the sampling proxy (GetSamplingRules / GetSamplingTargets, forwarded).
// It adds Host, Content-Type and User-Agent, signs with SigV4 and sends through the caller's
// http::Client; it never interprets the answer: any HTTP status is a Response, a transport
// failure is an Error carrying its TransportError kind (common/result.h).
//
// The missing-credentials policy, stated once:
//   - No provider at all (null): the destination takes unsigned requests by configuration (local
//     mode, tests, an `xrayd serve` on loopback). Requests go unsigned, silently.
//   - The provider has no credentials now (Get() fails), per `on_missing_credentials`:
//       kDoNotSend (default): nothing is sent; Post returns Error::Retryable with transport
//         kNoCredentials. An AWS endpoint would only answer 403 and the data would be lost, so the
//         caller keeps it and tries again later, as after a transport failure.
//       kSendUnsigned: send it unsigned and warn (at most once per 10 s): for an explicitly
//         configured endpoint (`--endpoint`), which may be another xrayd that checks no signature.
//     The daemon picks the policy for the exporter and telemetry together (daemon.cc); the sampling
//     proxy always forwards unsigned rather than fail an SDK's sampling call (proxy/sampling_proxy.cc).
//
// Thread-safety: const after construction; Post may be called from any number of threads at
// once, each with its own http::Client (one keep-alive connection per thread). The credentials
// provider must outlive the SignedClient.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "common/log.h"
#include "common/result.h"
#include "http/http_client.h"

namespace xrayd::aws {

enum class MissingCredentials { kDoNotSend, kSendUnsigned };

struct SignedClientOptions {
  std::string endpoint;  // base URL; a path in it is kept as a prefix ("https://host/prefix")
  std::string region;    // signing region
  std::string service = "xray";
  std::string content_type = "application/json";
  std::string user_agent = "xrayd/" XRAYD_VERSION;
  MissingCredentials on_missing_credentials = MissingCredentials::kDoNotSend;
};

class SignedClient {
 public:
  // Validates the endpoint URL; `credentials` may be null (unsigned by configuration).
  static Result<std::shared_ptr<const SignedClient>> Create(SignedClientOptions options,
                                                            CredentialsProvider* credentials);

  // POSTs `body` to endpoint + `path` ("/TraceSegments"), signed with the provider's credentials
  // under the policy above. `extra` headers (e.g. Accept) are sent and signed too.
  Result<http::Response> Post(http::Client& client, std::string_view path, std::string body,
                              const http::Headers& extra = {}) const;

  // As Post, but `body` is lent, not given: it is left as it was (same bytes, same capacity) once the
  // call returns, so a caller that sends often reuses one buffer instead of allocating each time.
  Result<http::Response> PostLent(http::Client& client, std::string_view path, std::string& body,
                                  const http::Headers& extra = {}) const;

  // The same, signed with `credentials` given by the caller (null: unsigned). For STS, which
  // signs AssumeRole with a source provider's keys and sends AssumeRoleWithWebIdentity unsigned.
  Result<http::Response> PostWith(http::Client& client, const Credentials* credentials, std::string_view path,
                                  std::string body, const http::Headers& extra = {}) const;

  // scheme://authority + prefix + path: where Post sends `path` (for logs).
  std::string UrlFor(std::string_view path) const;
  const SignedClientOptions& options() const { return options_; }

 private:
  SignedClient(SignedClientOptions options, CredentialsProvider* credentials, std::string origin,
               std::string authority, std::string prefix);
  // Signs (unless `credentials` is null) and sends; `body` is moved into the request and back.
  Result<http::Response> Send(http::Client& client, const Credentials* credentials, std::string_view path,
                              std::string& body, const http::Headers& extra) const;

  // Constant after construction.
  const SignedClientOptions options_;
  CredentialsProvider* const credentials_;
  const std::string origin_;     // "https://xray.us-east-1.amazonaws.com"
  const std::string authority_;  // the Host header
  const std::string prefix_;     // the endpoint URL's path, "" or "/prefix"
  // Owned, not a global: the warning for kSendUnsigned is rate-limited per client.
  mutable log::RateLimiter unsigned_log_;
};

}  // namespace xrayd::aws
