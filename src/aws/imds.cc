#include "aws/imds.h"

#include <charconv>

#include "aws/credential_sources.h"
#include "aws/endpoint.h"
#include "common/log.h"

namespace xrayd::aws {
namespace {

constexpr std::string_view kTokenPath = "/latest/api/token";
constexpr std::string_view kCredentialsPath = "/latest/meta-data/iam/security-credentials/";

Result<double> ParseNumber(std::string_view name, const std::string& s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0)
    return Error::InvalidArgument(std::string(name) + " must be a positive number, got \"" + s + "\"");
  return v;
}

}  // namespace

Result<ImdsOptions> ImdsOptions::FromEnvironment(const EnvLookup& env) {
  ImdsOptions o;
  const SharedProfiles files = SharedProfiles::Load(env);
  const std::string profile = ActiveProfileName(env);
  auto setting = [&](std::string_view var, std::string_view key) -> std::optional<std::string> {
    if (auto v = EnvValue(env, var)) return v;
    return files.Get(profile, key);
  };
  o.disabled = EnvFlag(env, "AWS_EC2_METADATA_DISABLED");
  if (auto v = setting("AWS_EC2_METADATA_V1_DISABLED", "ec2_metadata_v1_disabled")) o.v1_disabled = IsTrue(*v);
  if (auto url = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint")) {
    if (auto u = ParseUrl(*url); !u) return Error::InvalidArgument("AWS_EC2_METADATA_SERVICE_ENDPOINT: " + u.error().message);
    o.endpoint = *url;
  } else if (auto mode = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ec2_metadata_service_endpoint_mode")) {
    std::string m = *mode;
    for (auto& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (m == "ipv6") {
      o.endpoint = "http://[fd00:ec2::254]";
    } else if (m != "ipv4") {
      return Error::InvalidArgument("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE must be IPv4 or IPv6, got \"" + *mode + "\"");
    }
  }
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  if (auto t = setting("AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout")) {
    auto v = ParseNumber("AWS_METADATA_SERVICE_TIMEOUT", *t);
    if (!v) return v.error();
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(*v * 1000));
  }
  if (auto n = setting("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts")) {
    auto v = ParseNumber("AWS_METADATA_SERVICE_NUM_ATTEMPTS", *n);
    if (!v) return v.error();
    o.attempts = std::max(1, static_cast<int>(*v));
  }
  return o;
}

ImdsClient::ImdsClient(ImdsOptions options) : options_(std::move(options)) {}
ImdsClient::~ImdsClient() = default;

Result<std::optional<std::string>> ImdsClient::TokenLocked(bool& transport_failure) {
  const auto now = std::chrono::steady_clock::now();
  if (token_ && now < token_expiry_) return token_;
  token_.reset();
  http::Request put{"PUT", options_.endpoint + std::string(kTokenPath),
                    {{"X-aws-ec2-metadata-token-ttl-seconds", std::to_string(options_.token_ttl.count())}}, ""};
  auto r = client_->Send(put);
  if (r && r->status == 200 && !r->body.empty()) {
    token_ = r->body;
    // Renew a minute before the service would stop accepting it.
    token_expiry_ = now + std::max(options_.token_ttl - std::chrono::seconds(60), options_.token_ttl / 2);
    return token_;
  }
  const bool fallback = !r || r->status == 403 || r->status == 404 || r->status == 405;
  const std::string why = r ? "HTTP " + std::to_string(r->status) : r.error().message;
  if (!r) transport_failure = true;
  if (fallback && !options_.v1_disabled) {
    XLOG_DEBUG("IMDSv2 token request to {} failed ({}); falling back to IMDSv1", options_.endpoint, why);
    return std::optional<std::string>();
  }
  if (fallback) return Error::Permanent("IMDSv2 session token unavailable (" + why + ") and IMDSv1 is disabled");
  if (r->status >= 500) return Error::Retryable("IMDSv2 session token request: " + why);
  return Error::Permanent("IMDSv2 session token request refused: " + why);
}

Result<std::string> ImdsClient::GetOnceLocked(std::string_view path, bool& transport_failure) {
  auto token = TokenLocked(transport_failure);
  if (!token) return token.error();
  for (int round = 0;; ++round) {
    http::Request get{"GET", options_.endpoint + std::string(path), {}, ""};
    if (*token) get.headers.emplace_back("X-aws-ec2-metadata-token", **token);
    auto r = client_->Send(get);
    if (!r) {
      transport_failure = true;
      return Error::Retryable("instance metadata " + std::string(path) + ": " + r.error().message);
    }
    transport_failure = false;  // the service answered
    if (r->status == 200) return std::move(r->body);
    if (r->status == 401 && round == 0) {
      if (!*token) return Error::Permanent("instance metadata requires IMDSv2 session tokens (401) and none was issued");
      token_.reset();  // expired or revoked: get a new one, once
      token = TokenLocked(transport_failure);
      if (!token) return token.error();
      continue;
    }
    const std::string what = "instance metadata " + std::string(path) + ": HTTP " + std::to_string(r->status);
    if (r->status == 404) return Error::Permanent(what + " (not found)");
    if (r->status == 401) return Error::Permanent(what + " (unauthorized)");
    return Error::Retryable(what);
  }
}

Result<std::string> ImdsClient::Get(std::string_view path) {
  if (options_.disabled) return Error::InvalidArgument("instance metadata is disabled (AWS_EC2_METADATA_DISABLED)");
  MutexLock lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (unreachable_error_ && now < unreachable_until_) return *unreachable_error_;
  if (!client_) {
    http::ClientOptions http;
    http.timeout = options_.timeout;
    http.connect_timeout = options_.timeout;
    http.max_response_bytes = 256 * 1024;
    client_ = std::make_unique<http::Client>(http);
  }
  Error last = Error::Retryable("no attempt");
  bool transport_failure = false;
  for (int attempt = 0; attempt < std::max(1, options_.attempts); ++attempt) {
    transport_failure = false;
    auto r = GetOnceLocked(path, transport_failure);
    if (r) {
      unreachable_error_.reset();
      return r;
    }
    last = r.error();
    if (!last.IsRetryable()) break;
  }
  if (transport_failure) {
    unreachable_until_ = std::chrono::steady_clock::now() + options_.unreachable_cooldown;
    unreachable_error_ = Error::Retryable("instance metadata service at " + options_.endpoint + " unreachable: " + last.message);
    return *unreachable_error_;
  }
  return last;
}

Result<TemporaryCredentials> FetchInstanceProfileCredentials(ImdsClient& imds) {
  auto roles = imds.Get(kCredentialsPath);
  if (!roles) return Error{roles.error().kind, "no instance profile: " + roles.error().message, {}};
  std::string_view role = *roles;
  role = role.substr(0, role.find('\n'));
  while (!role.empty() && std::isspace(static_cast<unsigned char>(role.back()))) role.remove_suffix(1);
  if (role.empty()) return Error::Permanent("no IAM role is attached to this instance");
  auto doc = imds.Get(std::string(kCredentialsPath) + std::string(role));
  if (!doc) return doc.error();
  auto creds = ParseJsonCredentials(*doc, "Token");
  if (!creds) return Error{creds.error().kind, "instance profile role " + std::string(role) + ": " + creds.error().message, {}};
  return creds;
}

std::unique_ptr<CredentialsProvider> NewInstanceProfileProvider(std::shared_ptr<ImdsClient> imds,
                                                                RefreshOptions refresh) {
  std::string description = "EC2 instance metadata (instance profile, " + imds->options().endpoint + ")";
  auto fetch = [imds]() { return FetchInstanceProfileCredentials(*imds); };
  return std::make_unique<RefreshingCredentialsProvider>(std::move(description), std::move(fetch), std::move(refresh));
}

}  // namespace xrayd::aws
