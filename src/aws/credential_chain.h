// The standard AWS credential chain, as xrayd resolves it: the first link that is configured
// supplies the daemon's credentials.
//
//   1. environment variables      AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]
//   2. web identity               AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE [+ AWS_ROLE_SESSION_NAME]
//                                 → STS AssumeRoleWithWebIdentity (EKS IAM roles for service accounts)
//   3. container credentials      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI (ECS task roles,
//                                 EKS Pod Identity)
//   4. shared config/credentials  the active profile: role_arn with source_profile,
//                                 credential_source or web_identity_token_file → STS; static keys;
//                                 credential_process
//   5. EC2 instance metadata      the instance profile's role (IMDSv2, IMDSv1 fallback), unless
//                                 AWS_EC2_METADATA_DISABLED=true
//
// Links 1-4 are chosen by configuration alone (no network at construction). Link 5 is the last
// resort and is only known to work at the first Get(). Choosing is done once; the chosen
// provider caches and refreshes on its own. The result is thread-safe.
#pragma once

#include <memory>
#include <string>

#include "aws/credentials.h"
#include "aws/refreshing_credentials.h"
#include "http/http_client.h"

namespace xrayd::aws {

class ImdsClient;

struct ChainOptions {
  EnvLookup env;
  std::string region;                  // for STS calls; empty: STS's global endpoint
  http::ClientOptions http;            // proxy and TLS for STS and the container endpoint
  std::shared_ptr<ImdsClient> imds;    // link 5; null or disabled: no instance metadata link
  RefreshOptions refresh;              // for every refreshing link (tests shorten it)
};

// Error when no link is configured (listing what was looked at), or when a configured link is
// malformed (e.g. a role_arn profile without a source, a forbidden container URL).
Result<std::unique_ptr<CredentialsProvider>> DefaultCredentialsChain(const ChainOptions& options);

// Links 1-4 only, with no instance metadata and STS's global endpoint.
Result<std::unique_ptr<CredentialsProvider>> DefaultCredentialsChain(const EnvLookup& env);

}  // namespace xrayd::aws
