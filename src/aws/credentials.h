// Where the daemon's AWS credentials come from.
//
// For now, the first two links of the standard chain: environment variables, then the shared
// credentials/config files with profiles. A CredentialsProvider is thread-safe: every sender calls
// Get() before signing, so providers that refresh (web identity, instance metadata; issue #4)
// slot in behind the same interface.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "aws/sigv4.h"
#include "common/result.h"

namespace xrayd::aws {

// Environment lookup seam: tests pass a map, the daemon passes getenv.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;
EnvLookup ProcessEnvironment();

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  virtual Result<Credentials> Get() = 0;
  virtual std::string Describe() const = 0;  // for logs: where these credentials come from
};

// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (and the legacy AWS_ACCESS_KEY /
// AWS_SECRET_KEY). Error when absent.
Result<Credentials> CredentialsFromEnvironment(const EnvLookup& env);

// The profile (AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default") from the shared credentials
// file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), then the config file (AWS_CONFIG_FILE
// or ~/.aws/config, "[profile NAME]" sections).
Result<Credentials> CredentialsFromSharedFiles(const EnvLookup& env);

// A value from the active profile of the shared config file (e.g. "region"), if any.
std::optional<std::string> SharedConfigValue(const EnvLookup& env, std::string_view key);

// Resolves once at construction and returns the same credentials forever.
class StaticCredentialsProvider final : public CredentialsProvider {
 public:
  StaticCredentialsProvider(Credentials c, std::string source) : creds_(std::move(c)), source_(std::move(source)) {}
  Result<Credentials> Get() override { return creds_; }
  std::string Describe() const override { return source_; }

 private:
  const Credentials creds_;
  const std::string source_;
};

// The chain above; error lists what was tried.
Result<std::unique_ptr<CredentialsProvider>> DefaultCredentialsChain(const EnvLookup& env);

// Parses INI text into section → key → value (exposed for tests).
std::optional<std::string> IniLookup(std::string_view text, std::string_view section, std::string_view key);

}  // namespace xrayd::aws
