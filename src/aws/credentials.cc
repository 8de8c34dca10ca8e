#include "aws/credentials.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace xrayd::aws {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string HomeFile(const EnvLookup& env, std::string_view override_var, std::string_view rel) {
  if (auto v = env(override_var); v && !v->empty()) {
    if (v->rfind("~/", 0) == 0) {
      if (auto home = env("HOME")) return *home + v->substr(1);
    }
    return *v;
  }
  std::string home = env("HOME").value_or("");
  return home + "/" + std::string(rel);
}

std::string ProfileName(const EnvLookup& env) {
  if (auto p = env("AWS_PROFILE"); p && !p->empty()) return *p;
  if (auto p = env("AWS_DEFAULT_PROFILE"); p && !p->empty()) return *p;
  return "default";
}

std::optional<std::string> ConfigFileLookup(const EnvLookup& env, std::string_view key) {
  auto text = ReadFile(HomeFile(env, "AWS_CONFIG_FILE", ".aws/config"));
  if (!text) return std::nullopt;
  const std::string profile = ProfileName(env);
  if (auto v = IniLookup(*text, "profile " + profile, key)) return v;
  if (profile == "default") return IniLookup(*text, "default", key);
  return std::nullopt;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::optional<std::string> IniLookup(std::string_view text, std::string_view section, std::string_view key) {
  std::string_view current;
  bool in_section = false;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      const size_t close = line.find(']');
      if (close == std::string_view::npos) continue;
      current = Trim(line.substr(1, close - 1));
      in_section = current == section;
      continue;
    }
    if (!in_section) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(line.substr(0, eq)) == key) return std::string(Trim(line.substr(eq + 1)));
  }
  return std::nullopt;
}

Result<Credentials> CredentialsFromEnvironment(const EnvLookup& env) {
  Credentials c;
  c.access_key_id = env("AWS_ACCESS_KEY_ID").value_or(env("AWS_ACCESS_KEY").value_or(""));
  c.secret_access_key = env("AWS_SECRET_ACCESS_KEY").value_or(env("AWS_SECRET_KEY").value_or(""));
  c.session_token = env("AWS_SESSION_TOKEN").value_or("");
  if (c.empty()) return Error::InvalidArgument("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set");
  return c;
}

Result<Credentials> CredentialsFromSharedFiles(const EnvLookup& env) {
  const std::string profile = ProfileName(env);
  const std::string cred_path = HomeFile(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  if (auto text = ReadFile(cred_path)) {
    Credentials c;
    c.access_key_id = IniLookup(*text, profile, "aws_access_key_id").value_or("");
    c.secret_access_key = IniLookup(*text, profile, "aws_secret_access_key").value_or("");
    c.session_token = IniLookup(*text, profile, "aws_session_token").value_or("");
    if (!c.empty()) return c;
  }
  Credentials c;
  c.access_key_id = ConfigFileLookup(env, "aws_access_key_id").value_or("");
  c.secret_access_key = ConfigFileLookup(env, "aws_secret_access_key").value_or("");
  c.session_token = ConfigFileLookup(env, "aws_session_token").value_or("");
  if (!c.empty()) return c;
  return Error::InvalidArgument("no keys for profile \"" + profile + "\" in " + cred_path + " or the config file");
}

std::optional<std::string> SharedConfigValue(const EnvLookup& env, std::string_view key) {
  return ConfigFileLookup(env, key);
}

Result<std::unique_ptr<CredentialsProvider>> DefaultCredentialsChain(const EnvLookup& env) {
  auto from_env = CredentialsFromEnvironment(env);
  if (from_env) {
    return std::unique_ptr<CredentialsProvider>(
        std::make_unique<StaticCredentialsProvider>(*from_env, "environment variables"));
  }
  auto from_files = CredentialsFromSharedFiles(env);
  if (from_files) {
    return std::unique_ptr<CredentialsProvider>(
        std::make_unique<StaticCredentialsProvider>(*from_files, "shared credentials file, profile " + ProfileName(env)));
  }
  return Error::InvalidArgument("no AWS credentials found: " + from_env.error().message + "; " +
                                from_files.error().message);
}

}  // namespace xrayd::aws
