// ImdsClient: the EC2 instance metadata service, as AWS SDKs use it.
//
// IMDSv2 first: PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds) → a session token,
// cached until shortly before its TTL ends, sent as X-aws-ec2-metadata-token on every GET. If the
// token request is refused with 403/404/405 or gets no answer, the GET is made without a token
// (IMDSv1), unless AWS_EC2_METADATA_V1_DISABLED / ec2_metadata_v1_disabled forbids it. A 401 on a
// GET drops the token and tries once more with a new one. AWS_EC2_METADATA_DISABLED=true turns the
// client off (every call fails at once). After the service proved unreachable (transport errors),
// calls fail fast for `unreachable_cooldown`, so a daemon off EC2 does not wait on it repeatedly.
//
// Thread-safe: a mutex serialises calls (they are rare: startup lookups, and credentials about
// once an hour). Each call is bounded by `timeout` per HTTP request.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/refreshing_credentials.h"
#include "common/thread_annotations.h"
#include "http/http_client.h"

namespace xrayd::aws {

struct ImdsOptions {
  std::string endpoint = "http://169.254.169.254";  // no trailing slash
  bool disabled = false;                            // AWS_EC2_METADATA_DISABLED
  bool v1_disabled = false;                         // AWS_EC2_METADATA_V1_DISABLED
  std::chrono::milliseconds timeout{1000};          // per request; AWS_METADATA_SERVICE_TIMEOUT (s)
  int attempts = 1;                                 // AWS_METADATA_SERVICE_NUM_ATTEMPTS
  std::chrono::seconds token_ttl{21600};
  std::chrono::milliseconds unreachable_cooldown{10000};

  // The SDKs' settings: AWS_EC2_METADATA_SERVICE_ENDPOINT (or the profile's
  // ec2_metadata_service_endpoint), else AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 →
  // http://[fd00:ec2::254]; the flags and limits above. Error for a malformed value.
  static Result<ImdsOptions> FromEnvironment(const EnvLookup& env);
};

class ImdsClient {
 public:
  explicit ImdsClient(ImdsOptions options);
  ~ImdsClient();

  // The body of GET <endpoint><path> (path like "/latest/meta-data/placement/region").
  // Error kinds: kInvalidArgument when disabled, kPermanent for 404 or a refused IMDSv1 fallback,
  // kRetryable for transport errors and other statuses.
  Result<std::string> Get(std::string_view path);

  bool disabled() const { return options_.disabled; }
  const ImdsOptions& options() const { return options_; }

 private:
  // A session token, nullopt meaning "use IMDSv1", or an error.
  Result<std::optional<std::string>> TokenLocked(bool& transport_failure) XRAYD_REQUIRES(mu_);
  Result<std::string> GetOnceLocked(std::string_view path, bool& transport_failure) XRAYD_REQUIRES(mu_);

  // Constant after construction.
  const ImdsOptions options_;

  // One request at a time: the lock is held across the HTTP exchange.
  Mutex mu_;
  std::unique_ptr<http::Client> client_ XRAYD_GUARDED_BY(mu_);
  std::optional<std::string> token_ XRAYD_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point token_expiry_ XRAYD_GUARDED_BY(mu_){};
  std::chrono::steady_clock::time_point unreachable_until_ XRAYD_GUARDED_BY(mu_){};
  std::optional<Error> unreachable_error_ XRAYD_GUARDED_BY(mu_);
};

// The instance profile's role credentials: GET iam/security-credentials/ for the role name, then
// iam/security-credentials/<role> (JSON: Code, AccessKeyId, SecretAccessKey, Token, Expiration).
Result<TemporaryCredentials> FetchInstanceProfileCredentials(ImdsClient& imds);
std::unique_ptr<CredentialsProvider> NewInstanceProfileProvider(std::shared_ptr<ImdsClient> imds,
                                                                RefreshOptions refresh = {});

}  // namespace xrayd::aws
