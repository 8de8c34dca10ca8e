// The HTTP-endpoint and process links of the credential chain:
//   * container credentials (ECS task roles, EKS Pod Identity): GET AWS_CONTAINER_CREDENTIALS_
//     RELATIVE_URI on http://169.254.170.2, or AWS_CONTAINER_CREDENTIALS_FULL_URI, with the
//     Authorization header from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read on every fetch)
//     or AWS_CONTAINER_AUTHORIZATION_TOKEN;
//   * credential_process (shared config): run through /bin/sh -c as AWS's Go SDKs do; JSON on
//     stdout with Version 1.
// Each Fetch* does one round trip and returns what it got; the New*Provider functions wrap them in
// a RefreshingCredentialsProvider (caching, refresh before expiry, backoff). Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/refreshing_credentials.h"
#include "http/http_client.h"

namespace xrayd::aws {

// {"AccessKeyId","SecretAccessKey",<token_key>,"Expiration"} as IMDS and the container endpoint
// ("Token") and credential_process ("SessionToken"; "Version" must be 1) answer. An IMDS-style
// "Code" other than "Success", or a container-style {"code","message"} error, is an error.
Result<TemporaryCredentials> ParseJsonCredentials(std::string_view json, std::string_view token_key,
                                                  bool require_version_1 = false);

// The container credentials URL the environment configures: nullopt when neither variable is set;
// an error when the full URI is neither https nor http to a loopback, ECS (169.254.170.2) or EKS
// Pod Identity (169.254.170.23, fd00:ec2::23) address.
Result<std::optional<std::string>> ContainerCredentialsUrl(const EnvLookup& env);
Result<TemporaryCredentials> FetchContainerCredentials(const std::string& url, const EnvLookup& env,
                                                       const http::ClientOptions& http);
std::unique_ptr<CredentialsProvider> NewContainerProvider(std::string url, EnvLookup env,
                                                          http::ClientOptions http = {}, RefreshOptions refresh = {});

// Runs `command` with /bin/sh -c, collects stdout (at most 64 KB), kills it after `timeout`.
// A non-zero exit is an error carrying the end of its stderr.
Result<TemporaryCredentials> FetchProcessCredentials(const std::string& command, std::chrono::milliseconds timeout);
std::unique_ptr<CredentialsProvider> NewProcessProvider(std::string command, std::string profile,
                                                        RefreshOptions refresh = {},
                                                        std::chrono::milliseconds timeout = std::chrono::minutes(1));

}  // namespace xrayd::aws
