#include "aws/sts.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "aws/endpoint.h"
#include "aws/signed_client.h"
#include "common/log.h"

namespace xrayd::aws {
namespace {

constexpr std::string_view kApiVersion = "2011-06-15";

// Regions that used https://sts.amazonaws.com under AWS_STS_REGIONAL_ENDPOINTS=legacy.
constexpr std::array<std::string_view, 16> kLegacyGlobalRegions = {
    "aws-global",     "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ca-central-1",
    "eu-central-1",   "eu-north-1",     "eu-west-1",  "eu-west-2",      "eu-west-3",      "sa-east-1",
    "us-east-1",      "us-east-2",      "us-west-1",  "us-west-2"};

std::string DefaultSessionName() {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return "xrayd-" + std::to_string(ns);
}

// Finds the element named `name` in xml[from, to): returns the range of its content.
bool FindElement(std::string_view xml, std::string_view name, size_t& begin, size_t& end) {
  size_t pos = 0;
  while ((pos = xml.find('<', pos)) != std::string_view::npos) {
    const size_t name_at = pos + 1;
    if (xml.substr(name_at, name.size()) == name && name_at + name.size() < xml.size()) {
      const char after = xml[name_at + name.size()];
      if (after == '>' || after == ' ' || after == '\t' || after == '\r' || after == '\n' || after == '/') {
        const size_t close = xml.find('>', name_at);
        if (close == std::string_view::npos) return false;
        if (xml[close - 1] == '/') {  // <Name/>
          begin = end = close + 1;
          return true;
        }
        const std::string end_tag = "</" + std::string(name) + ">";
        const size_t stop = xml.find(end_tag, close + 1);
        if (stop == std::string_view::npos) return false;
        begin = close + 1;
        end = stop;
        return true;
      }
    }
    pos = name_at;
  }
  return false;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x110000) {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string DecodeEntities(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back('&');
      continue;
    }
    const std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out.push_back('&');
    else if (ent == "lt") out.push_back('<');
    else if (ent == "gt") out.push_back('>');
    else if (ent == "quot") out.push_back('"');
    else if (ent == "apos") out.push_back('\'');
    else if (!ent.empty() && ent[0] == '#') {
      uint32_t cp = 0;
      const bool hex = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X');
      bool ok = ent.size() > (hex ? 2u : 1u);
      for (size_t k = hex ? 2 : 1; ok && k < ent.size(); ++k) {
        const char c = ent[k];
        int d = -1;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        if (d < 0 || cp > 0x10FFFF) ok = false;
        else cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
      }
      if (!ok) {
        out.append(s.substr(i, semi - i + 1));
      } else {
        AppendUtf8(out, cp);
      }
    } else {
      out.append(s.substr(i, semi - i + 1));  // unknown entity: keep as is
    }
    i = semi;
  }
  return out;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

}  // namespace

std::string FormEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> XmlText(std::string_view xml, std::initializer_list<std::string_view> path) {
  std::string_view scope = xml;
  for (std::string_view name : path) {
    size_t begin = 0, end = 0;
    if (!FindElement(scope, name, begin, end)) return std::nullopt;
    scope = scope.substr(begin, end - begin);
  }
  return DecodeEntities(scope);
}

Result<TemporaryCredentials> ParseStsCredentials(std::string_view xml) {
  size_t b = 0, e = 0;
  if (!FindElement(xml, "Credentials", b, e))
    return Error::Retryable("STS answer has no <Credentials>: " + std::string(xml.substr(0, 200)));
  const std::string_view raw = xml.substr(b, e - b);
  TemporaryCredentials t;
  t.credentials.access_key_id = Trimmed(XmlText(raw, {"AccessKeyId"}).value_or(""));
  t.credentials.secret_access_key = Trimmed(XmlText(raw, {"SecretAccessKey"}).value_or(""));
  t.credentials.session_token = Trimmed(XmlText(raw, {"SessionToken"}).value_or(""));
  const std::string expiration = Trimmed(XmlText(raw, {"Expiration"}).value_or(""));
  if (t.credentials.empty()) return Error::Retryable("STS answer lacks AccessKeyId or SecretAccessKey");
  if (!expiration.empty()) {
    t.expiration = ParseIso8601(expiration);
    if (!t.expiration) return Error::Retryable("STS answer has a malformed Expiration \"" + expiration + "\"");
  }
  return t;
}

Error StsError(long status, std::string_view body, std::string* code_out) {
  const std::string code = Trimmed(XmlText(body, {"Error", "Code"}).value_or(""));
  const std::string message = Trimmed(XmlText(body, {"Error", "Message"}).value_or(""));
  if (code_out != nullptr) *code_out = code;
  std::string what = "HTTP " + std::to_string(status);
  if (!code.empty()) what += " " + code;
  if (!message.empty()) what += ": " + message;
  if (code.empty() && message.empty() && !body.empty()) what += ": " + std::string(body.substr(0, 200));
  if (status == 429 || code == "Throttling" || code == "ThrottlingException" || code == "RequestLimitExceeded")
    return Error::Throttled(what);
  if (status >= 500 || code == "IDPCommunicationError" || code == "InternalFailure" || code == "ServiceUnavailable")
    return Error::Retryable(what);
  return Error::Permanent(what);
}

Result<StsEndpoint> ResolveStsEndpoint(const EnvLookup& env, std::string_view region, bool always_regional) {
  if (auto url = ConfiguredEndpointUrl(env, "STS")) {
    if (auto u = ParseUrl(*url); !u) return u.error();
    std::string signing(region);
    if (signing.empty() || signing == "aws-global") signing = "us-east-1";
    return StsEndpoint{*url, signing, true};
  }
  std::string mode = EnvValue(env, "AWS_STS_REGIONAL_ENDPOINTS").value_or("");
  if (mode.empty()) mode = SharedConfigValue(env, "sts_regional_endpoints").value_or("regional");
  const bool legacy = !always_regional && mode == "legacy" &&
                      std::find(kLegacyGlobalRegions.begin(), kLegacyGlobalRegions.end(), region) !=
                          kLegacyGlobalRegions.end();
  if (region.empty() || region == "aws-global" || legacy) return StsEndpoint{"https://sts.amazonaws.com", "us-east-1", false};
  EndpointVariant variant{EnvFlag(env, "AWS_USE_FIPS_ENDPOINT"), EnvFlag(env, "AWS_USE_DUALSTACK_ENDPOINT")};
  auto url = ServiceEndpoint("sts", std::string(region), variant);
  if (!url) return url.error();
  std::string signing(region);
  if (signing.rfind("fips-", 0) == 0) signing = signing.substr(5);
  if (signing.size() > 5 && signing.compare(signing.size() - 5, 5, "-fips") == 0) signing.resize(signing.size() - 5);
  return StsEndpoint{*url, signing, false};
}

StsClient::StsClient(StsEndpoint endpoint, http::ClientOptions http)
    : http_(std::move(http)), endpoint_(std::move(endpoint)) {}

StsEndpoint StsClient::endpoint() const {
  MutexLock lock(mu_);
  return endpoint_;
}

StsClient::Answer StsClient::Call(const std::string& action,
                                  const std::vector<std::pair<std::string, std::string>>& params,
                                  const Credentials* signer) {
  std::string body = "Action=" + action + "&Version=" + std::string(kApiVersion);
  for (const auto& [k, v] : params) body += "&" + k + "=" + FormEncode(v);

  SignedClientOptions options;
  options.endpoint = endpoint_.url;
  options.region = endpoint_.signing_region;
  options.service = "sts";
  options.content_type = "application/x-www-form-urlencoded; charset=utf-8";
  auto sts = SignedClient::Create(std::move(options), nullptr);
  if (!sts) return {sts.error(), ""};
  // AssumeRole is signed with the caller's keys; AssumeRoleWithWebIdentity (signer null) is not.
  http::Client client(http_);
  auto response = (*sts)->PostWith(client, signer, "/", std::move(body), {{"Accept", "text/xml"}});
  if (!response) return {response.error().Wrapped("STS " + action + " at " + endpoint_.url), ""};
  if (response->status < 200 || response->status >= 300) {
    std::string code;
    Error e = StsError(response->status, response->body, &code);
    e.message = "STS " + action + " at " + endpoint_.url + ": " + e.message;
    return {e, code};
  }
  auto creds = ParseStsCredentials(response->body);
  if (!creds) return {creds.error().Wrapped("STS " + action), ""};
  return {std::move(creds), ""};
}

Result<TemporaryCredentials> StsClient::AssumeRole(const AssumeRoleParams& p, const Credentials& caller) {
  std::vector<std::pair<std::string, std::string>> params = {
      {"RoleArn", p.role_arn}, {"RoleSessionName", p.session_name.empty() ? DefaultSessionName() : p.session_name}};
  if (!p.external_id.empty()) params.emplace_back("ExternalId", p.external_id);
  if (p.duration_seconds > 0) params.emplace_back("DurationSeconds", std::to_string(p.duration_seconds));
  MutexLock lock(mu_);
  Answer a = Call("AssumeRole", params, &caller);
  if (!a.credentials && a.error_code == "RegionDisabledException" && !endpoint_.configured) {
    // As AWS's daemon: STS is not activated in this region; use the partition's primary region.
    const std::string primary = PartitionPrimaryRegion(endpoint_.signing_region);
    if (primary != endpoint_.signing_region) {
      auto fallback = ServiceEndpoint("sts", primary, {});
      if (fallback) {
        XLOG_ERROR("Region {}: {}", endpoint_.signing_region, a.credentials.error().message);
        XLOG_INFO("Credentials for the role will be fetched from the STS endpoint of {} instead: {}", primary,
                  *fallback);
        endpoint_ = StsEndpoint{*fallback, primary, false};
        a = Call("AssumeRole", params, &caller);
      }
    }
  }
  return std::move(a.credentials);
}

Result<TemporaryCredentials> StsClient::AssumeRoleWithWebIdentity(const WebIdentityParams& p) {
  auto token = ReadWholeFile(p.token_file);
  if (!token) return Error::Io("cannot read the web identity token file " + p.token_file);
  std::string jwt = Trimmed(std::move(*token));
  if (jwt.empty()) return Error::Retryable("the web identity token file " + p.token_file + " is empty");
  std::vector<std::pair<std::string, std::string>> params = {
      {"RoleArn", p.role_arn},
      {"RoleSessionName", p.session_name.empty() ? DefaultSessionName() : p.session_name},
      {"WebIdentityToken", jwt}};
  MutexLock lock(mu_);
  return std::move(Call("AssumeRoleWithWebIdentity", params, nullptr).credentials);
}

std::unique_ptr<CredentialsProvider> NewAssumeRoleProvider(std::shared_ptr<CredentialsProvider> source,
                                                           AssumeRoleParams params, std::shared_ptr<StsClient> sts,
                                                           RefreshOptions refresh) {
  if (params.session_name.empty()) params.session_name = DefaultSessionName();  // one name for the process
  std::string description = "STS AssumeRole " + params.role_arn + " (session " + params.session_name + ", via " +
                            sts->endpoint().url + ") with credentials from " + source->Describe();
  auto fetch = [source = std::move(source), params = std::move(params), sts]() -> Result<TemporaryCredentials> {
    auto caller = source->Get();
    if (!caller) return caller.error();
    return sts->AssumeRole(params, *caller);
  };
  return std::make_unique<RefreshingCredentialsProvider>(std::move(description), std::move(fetch), std::move(refresh));
}

std::unique_ptr<CredentialsProvider> NewWebIdentityProvider(WebIdentityParams params, std::shared_ptr<StsClient> sts,
                                                            RefreshOptions refresh) {
  if (params.session_name.empty()) params.session_name = DefaultSessionName();
  std::string description = "web identity token " + params.token_file + " (role " + params.role_arn + ", via " +
                            sts->endpoint().url + ")";
  auto fetch = [params = std::move(params), sts]() { return sts->AssumeRoleWithWebIdentity(params); };
  return std::make_unique<RefreshingCredentialsProvider>(std::move(description), std::move(fetch), std::move(refresh));
}

}  // namespace xrayd::aws
