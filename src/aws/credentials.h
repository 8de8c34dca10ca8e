// AWS credentials: the provider interface every signer calls, and the static sources.
//
// A CredentialsProvider is thread-safe: every sender calls Get() before signing. Static providers
// return the same value forever; refreshing ones (STS, container, instance metadata,
// credential_process; refreshing_credentials.h) cache and renew temporary credentials behind the
// same interface. The chain that picks one is in credential_chain.h.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "aws/env.h"
#include "aws/sigv4.h"
#include "common/result.h"

namespace xrayd::aws {

// Credentials and the time they stop working (none: long-term keys).
struct TemporaryCredentials {
  Credentials credentials;
  std::optional<std::chrono::system_clock::time_point> expiration;
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Credentials valid now, or why there are none. Thread-safe.
  virtual Result<Credentials> Get() = 0;
  virtual std::string Describe() const = 0;  // for logs: where these credentials come from
};

// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (and the legacy AWS_ACCESS_KEY /
// AWS_SECRET_KEY). Error when absent.
Result<Credentials> CredentialsFromEnvironment(const EnvLookup& env);

// The static keys of the active profile (AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default"):
// credentials file first, then the config file. Profiles that assume roles or run processes are
// resolved by the chain (credential_chain.h).
Result<Credentials> CredentialsFromSharedFiles(const EnvLookup& env);

// Returns the same credentials forever.
class StaticCredentialsProvider final : public CredentialsProvider {
 public:
  StaticCredentialsProvider(Credentials c, std::string source) : creds_(std::move(c)), source_(std::move(source)) {}
  Result<Credentials> Get() override { return creds_; }
  std::string Describe() const override { return source_; }

 private:
  const Credentials creds_;
  const std::string source_;
};

}  // namespace xrayd::aws
