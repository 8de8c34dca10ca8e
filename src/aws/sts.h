// AWS STS, the two calls the credential chain needs:
//   AssumeRole                 (SigV4-signed with the caller's credentials; --role-arn, role_arn profiles)
//   AssumeRoleWithWebIdentity  (unsigned; EKS IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)
// Query API: POST / with a form-encoded body (Action=...&Version=2011-06-15&...), XML answer
// (<...Result><Credentials>...</Credentials>) or an XML <ErrorResponse>.
//
// StsClient is thread-safe (a mutex serialises calls; each call uses a fresh HTTP connection:
// credentials are fetched about once an hour). The providers built here are
// RefreshingCredentialsProviders, so they inherit its caching and backoff.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "aws/refreshing_credentials.h"
#include "common/thread_annotations.h"
#include "http/http_client.h"

namespace xrayd::aws {

struct StsEndpoint {
  std::string url;             // e.g. https://sts.eu-west-1.amazonaws.com
  std::string signing_region;  // region for SigV4 scope
  bool configured = false;     // from AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL / endpoint_url
};

// The STS endpoint for `region`, as AWS SDKs choose it: a configured endpoint
// (ConfiguredEndpointUrl(env, "STS")) wins; else the regional endpoint
// https://sts.<region>.<partition suffix> with AWS_USE_FIPS_ENDPOINT / AWS_USE_DUALSTACK_ENDPOINT
// variants; the global https://sts.amazonaws.com when the region is empty or "aws-global", or
// when AWS_STS_REGIONAL_ENDPOINTS (or the profile's sts_regional_endpoints) is "legacy" and the
// region is one of those that used the global endpoint before. `always_regional` ignores "legacy" (the
// --role-arn path: AWS's daemon always uses the regional endpoint).
Result<StsEndpoint> ResolveStsEndpoint(const EnvLookup& env, std::string_view region, bool always_regional = false);

struct AssumeRoleParams {
  std::string role_arn;
  std::string session_name;  // empty: "xrayd-<unix nanoseconds>"
  std::string external_id;   // optional
  int duration_seconds = 0;  // 0: STS's default (1 hour)
};

struct WebIdentityParams {
  std::string role_arn;
  std::string session_name;  // empty: "xrayd-<unix nanoseconds>"
  std::string token_file;    // re-read on every call (the kubelet rotates it)
};

class StsClient {
 public:
  StsClient(StsEndpoint endpoint, http::ClientOptions http);

  Result<TemporaryCredentials> AssumeRole(const AssumeRoleParams& params, const Credentials& caller);
  Result<TemporaryCredentials> AssumeRoleWithWebIdentity(const WebIdentityParams& params);

  // The endpoint in use (it moves to the partition's primary region after a
  // RegionDisabledException from an unconfigured regional endpoint, as AWS's daemon does).
  StsEndpoint endpoint() const;

 private:
  struct Answer {
    Result<TemporaryCredentials> credentials;
    std::string error_code;  // STS error code when the call failed with an XML ErrorResponse
  };
  Answer Call(const std::string& action, const std::vector<std::pair<std::string, std::string>>& params,
              const Credentials* signer) XRAYD_REQUIRES(mu_);

  const http::ClientOptions http_;
  mutable Mutex mu_;  // one call at a time; held across the HTTP exchange
  StsEndpoint endpoint_ XRAYD_GUARDED_BY(mu_);
};

// Refreshing providers over STS. `source` supplies the caller's credentials for AssumeRole.
std::unique_ptr<CredentialsProvider> NewAssumeRoleProvider(std::shared_ptr<CredentialsProvider> source,
                                                           AssumeRoleParams params, std::shared_ptr<StsClient> sts,
                                                           RefreshOptions refresh = {});
std::unique_ptr<CredentialsProvider> NewWebIdentityProvider(WebIdentityParams params, std::shared_ptr<StsClient> sts,
                                                            RefreshOptions refresh = {});

// --- wire format (exposed for tests) ---

// Application/x-www-form-urlencoded value encoding as AWS's Query API expects (RFC 3986
// unreserved characters kept, everything else %XX, space as %20).
std::string FormEncode(std::string_view s);

// The text of the element at `path` (each step the first matching child element, searched
// anywhere below the previous one), entities decoded; nullopt when absent. Enough XML for STS's
// answers: no CDATA, comments or namespace prefixes are expected there.
std::optional<std::string> XmlText(std::string_view xml, std::initializer_list<std::string_view> path);

// <Credentials><AccessKeyId/><SecretAccessKey/><SessionToken/><Expiration/></Credentials>
Result<TemporaryCredentials> ParseStsCredentials(std::string_view xml);

// An STS error answer as an Error (Throttled for Throttling, Retryable for 5xx and
// IDPCommunicationError, else Permanent), with its code in `code` when the body has one.
Error StsError(long status, std::string_view body, std::string* code = nullptr);

}  // namespace xrayd::aws
