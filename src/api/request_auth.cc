#include "api/request_auth.h"

#include <openssl/crypto.h>

#include <cctype>
#include <ctime>

#include "aws/sigv4.h"

namespace xrayd::api {
namespace {

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Field(const std::string& auth, const std::string& name) {
  const size_t at = auth.find(name + "=");
  if (at == std::string::npos) return {};
  const size_t start = at + name.size() + 1;
  const size_t end = auth.find_first_of(", ", start);
  return auth.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// 20150830T123600Z → epoch seconds; -1 if malformed.
double ParseAmzDate(const std::string& s) {
  std::tm tm{};
  if (s.size() != 16 || strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm) == nullptr) return -1;
  return static_cast<double>(timegm(&tm));
}

}  // namespace

Result<std::vector<AccessKey>> ParseAccessKeys(const std::string& text) {
  std::vector<AccessKey> keys;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    const std::string entry = text.substr(i, j - i);
    if (!entry.empty()) {
      const size_t colon = entry.find(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == entry.size())
        return Error::InvalidArgument("API key entry \"" + entry.substr(0, colon) + "...\" is not ACCESS_KEY_ID:SECRET");
      keys.push_back({entry.substr(0, colon), entry.substr(colon + 1)});
    }
    i = j + 1;
  }
  return keys;
}

std::optional<AuthFailure> RequestVerifier::Verify(const std::string& method, const std::string& path,
                                                   const std::string& query,
                                                   const std::vector<std::pair<std::string, std::string>>& headers,
                                                   const std::string& body, double now) const {
  auto header = [&](const std::string& lower_name) -> std::optional<std::string> {
    std::optional<std::string> v;
    for (const auto& [n, val] : headers)
      if (Lower(n) == lower_name) v = v ? *v + "," + val : val;
    return v;
  };
  const auto auth = header("authorization");
  if (!auth) return AuthFailure{403, "MissingAuthenticationTokenException", "Missing Authentication Token"};
  if (auth->rfind("AWS4-HMAC-SHA256 ", 0) != 0)
    return AuthFailure{400, "IncompleteSignatureException", "Authorization header is not AWS4-HMAC-SHA256"};
  const std::string credential = Field(*auth, "Credential");
  const std::string signed_headers = Field(*auth, "SignedHeaders");
  const std::string signature = Field(*auth, "Signature");
  // KEY/DATE/REGION/SERVICE/aws4_request
  std::vector<std::string> scope;
  for (size_t i = 0; i <= credential.size();) {
    size_t j = credential.find('/', i);
    if (j == std::string::npos) j = credential.size();
    scope.push_back(credential.substr(i, j - i));
    i = j + 1;
  }
  if (scope.size() != 5 || scope[4] != "aws4_request" || signed_headers.empty() || signature.empty())
    return AuthFailure{400, "IncompleteSignatureException", "Authorization header is incomplete"};
  const AccessKey* key = nullptr;
  for (const auto& k : keys_)
    if (k.id == scope[0]) key = &k;
  if (key == nullptr)
    return AuthFailure{403, "UnrecognizedClientException", "The security token included in the request is invalid."};
  if (scope[3] != "xray") return AuthFailure{403, "InvalidSignatureException", "Credential should be scoped to service xray"};
  const auto date = header("x-amz-date");
  const double t = date ? ParseAmzDate(*date) : -1;
  if (t < 0) return AuthFailure{400, "IncompleteSignatureException", "X-Amz-Date is missing or malformed"};
  if (std::abs(now - t) > 15 * 60) return AuthFailure{403, "InvalidSignatureException", "Signature expired (X-Amz-Date is more than 15 minutes from now)"};
  if (date->substr(0, 8) != scope[1]) return AuthFailure{403, "InvalidSignatureException", "Credential date does not match X-Amz-Date"};

  aws::SignableRequest req{method, path, query, {}};
  for (size_t i = 0; i <= signed_headers.size();) {
    size_t j = signed_headers.find(';', i);
    if (j == std::string::npos) j = signed_headers.size();
    const std::string name = signed_headers.substr(i, j - i);
    const auto v = header(name);
    if (!v) return AuthFailure{403, "InvalidSignatureException", "signed header " + name + " is missing"};
    req.headers.emplace_back(name, *v);
    i = j + 1;
  }
  std::string payload_hash = aws::Sha256Hex(body);
  if (auto declared = header("x-amz-content-sha256"); declared && *declared != payload_hash)
    return AuthFailure{400, "InvalidSignatureException", "x-amz-content-sha256 does not match the body"};
  const aws::SigningScope signing{scope[2], scope[3], std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<int64_t>(t)))};
  const std::string expected =
      aws::SignatureHex(aws::StringToSign(aws::CanonicalRequest(req, payload_hash), signing), {key->id, key->secret, ""}, signing);
  if (expected.size() != signature.size() || CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) != 0)
    return AuthFailure{403, "InvalidSignatureException",
                       "The request signature we calculated does not match the signature you provided."};
  return std::nullopt;
}

}  // namespace xrayd::api
