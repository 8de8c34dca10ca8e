// The process environment and the shared AWS config/credentials files, as AWS SDKs read them.
//
// EnvLookup is the seam: the daemon passes ProcessEnvironment(), tests pass a map. SharedProfiles
// parses ~/.aws/config and ~/.aws/credentials once into plain values. Everything here is a pure
// function or an immutable value; thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace xrayd::aws {

// Environment lookup seam: tests pass a map, the daemon passes getenv.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;
EnvLookup ProcessEnvironment();

// An environment value, or nullopt when unset *or empty* (AWS SDKs treat both alike).
std::optional<std::string> EnvValue(const EnvLookup& env, std::string_view name);
// "true" in any letter case (and "1"), as the SDKs read boolean settings.
bool IsTrue(std::string_view value);
bool EnvFlag(const EnvLookup& env, std::string_view name);

// ~ and $HOME handling for AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE-style paths.
std::string ExpandHome(const EnvLookup& env, const std::string& path);
std::optional<std::string> ReadWholeFile(const std::string& path);

// "2024-05-01T12:34:56Z", with optional fractional seconds and a Z / ±HH:MM / ±HHMM offset: the
// timestamps STS, IMDS, the container endpoint and credential_process give. nullopt if malformed.
std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view text);

// The profile the SDKs use: AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default".
std::string ActiveProfileName(const EnvLookup& env);
// True when the profile was named explicitly (AWS_PROFILE / AWS_DEFAULT_PROFILE).
bool ProfileNamedExplicitly(const EnvLookup& env);

// The shared config file (AWS_CONFIG_FILE or ~/.aws/config; sections "[default]" and
// "[profile NAME]") and credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials;
// sections "[NAME]"). Other config sections ([sso-session x], [services x]) and indented
// sub-properties are skipped. For a key present in both files the credentials file wins.
class SharedProfiles {
 public:
  static SharedProfiles Load(const EnvLookup& env);
  static SharedProfiles FromText(std::string_view config_text, std::string_view credentials_text);

  bool Has(std::string_view profile) const;
  std::optional<std::string> Get(std::string_view profile, std::string_view key) const;
  // Where the values come from, for error messages.
  std::string Paths() const { return config_path_ + " / " + credentials_path_; }

 private:
  using Sections = std::map<std::string, std::map<std::string, std::string, std::less<>>, std::less<>>;
  static void Parse(std::string_view text, bool config_file, Sections& out);

  Sections config_;
  Sections credentials_;
  std::string config_path_ = "config file";
  std::string credentials_path_ = "credentials file";
};

// A value of the active profile (e.g. "region"), if any.
std::optional<std::string> SharedConfigValue(const EnvLookup& env, std::string_view key);

// Parses INI text and returns `key` of `section` (exact section header text; exposed for tests).
std::optional<std::string> IniLookup(std::string_view text, std::string_view section, std::string_view key);

}  // namespace xrayd::aws
