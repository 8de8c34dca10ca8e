#include "aws/sigv4.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace xrayd::aws {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string ToHex(const unsigned char* p, size_t n) {
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

// OpenSSL 3 looks an algorithm up by name on every implicit use (EVP_sha256() in EVP_Digest, the
// one-shot HMAC()): a lock and a table search per call, which cost more than hashing a signature's
// few hundred bytes. So SHA-256 is fetched once for the process, and each thread keeps one HMAC
// context (fetched and set to SHA-256 once) that EVP_MAC_init re-keys for every use.
const EVP_MD* Sha256() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

struct HmacContext {
  HmacContext() {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac == nullptr) return;
    ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);  // the context holds its own reference
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (ctx != nullptr && EVP_MAC_CTX_set_params(ctx, params) != 1) {
      EVP_MAC_CTX_free(ctx);
      ctx = nullptr;
    }
  }
  ~HmacContext() { EVP_MAC_CTX_free(ctx); }
  HmacContext(const HmacContext&) = delete;
  HmacContext& operator=(const HmacContext&) = delete;
  EVP_MAC_CTX* ctx = nullptr;
};

std::string Hmac(std::string_view key, std::string_view data) {
  thread_local HmacContext hmac;
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* d = reinterpret_cast<const unsigned char*>(data.data());
  if (hmac.ctx == nullptr || EVP_MAC_init(hmac.ctx, k, key.size(), nullptr) != 1 ||
      EVP_MAC_update(hmac.ctx, d, data.size()) != 1 || EVP_MAC_final(hmac.ctx, out, &len, sizeof out) != 1) {
    // Not expected with any OpenSSL 3 build; the one-shot call computes the same MAC, slower.
    EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, k, key.size(), d, data.size(), out, sizeof out,
              &len);
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

// The signing key depends only on the secret, the day, the region and the service, so each thread
// keeps the last one it derived (four HMACs saved on every request of the day).
std::string SigningKey(const Credentials& creds, std::string_view date_stamp, const SigningScope& scope) {
  struct Cached {
    std::string secret, date, region, service, key;
  };
  thread_local Cached cached;
  if (cached.key.empty() || cached.secret != creds.secret_access_key || cached.date != date_stamp ||
      cached.region != scope.region || cached.service != scope.service) {
    std::string key = Hmac("AWS4" + creds.secret_access_key, date_stamp);
    key = Hmac(key, scope.region);
    key = Hmac(key, scope.service);
    cached.key = Hmac(key, "aws4_request");
    cached.secret = creds.secret_access_key;
    cached.date = date_stamp;
    cached.region = scope.region;
    cached.service = scope.service;
  }
  return cached.key;
}

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

void PercentEncode(std::string& out, std::string_view s, bool keep_slash) {
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kUpperHex[] = "0123456789ABCDEF";
      out.push_back('%');
      out.push_back(kUpperHex[c >> 4]);
      out.push_back(kUpperHex[c & 15]);
    }
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Removes "." and ".." segments and empty segments (RFC 3986 5.2.4, as AWS normalises).
std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segs;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
    i = j + 1;
  }
  std::string out = "/";
  for (size_t k = 0; k < segs.size(); ++k) {
    if (k) out.push_back('/');
    out.append(segs[k]);
  }
  const bool trailing = path.size() > 1 && path.back() == '/' && !segs.empty();
  if (trailing) out.push_back('/');
  return out;
}

std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t i = 0;
  while (i < query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    std::string_view kv = query.substr(i, j - i);
    if (!kv.empty()) {
      const size_t eq = kv.find('=');
      std::string k, v;
      PercentEncode(k, PercentDecode(kv.substr(0, eq)), false);
      if (eq != std::string_view::npos) PercentEncode(v, PercentDecode(kv.substr(eq + 1)), false);
      params.emplace_back(std::move(k), std::move(v));
    }
    i = j + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (size_t k = 0; k < params.size(); ++k) {
    if (k) out.push_back('&');
    out += params[k].first;
    out.push_back('=');
    out += params[k].second;
  }
  return out;
}

std::string TrimAll(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      pending_space = !out.empty();
    } else {
      if (pending_space) out.push_back(' ');
      pending_space = false;
      out.push_back(c);
    }
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Sorted (name, joined values) pairs, plus the signed-headers list.
std::vector<std::pair<std::string, std::string>> CanonicalHeaderList(const SignableRequest& r) {
  std::vector<std::pair<std::string, std::string>> hs;
  for (const auto& [name, value] : r.headers) {
    std::string lname = Lower(name);
    std::string v = TrimAll(value);
    auto it = std::find_if(hs.begin(), hs.end(), [&](const auto& h) { return h.first == lname; });
    if (it == hs.end()) {
      hs.emplace_back(std::move(lname), std::move(v));
    } else {
      it->second += ',';
      it->second += v;
    }
  }
  std::stable_sort(hs.begin(), hs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return hs;
}

std::string SignedHeaders(const std::vector<std::pair<std::string, std::string>>& hs) {
  std::string out;
  for (size_t i = 0; i < hs.size(); ++i) {
    if (i) out.push_back(';');
    out += hs[i].first;
  }
  return out;
}

std::string DateStamp(std::chrono::system_clock::time_point t) { return FormatAmzDate(t).substr(0, 8); }

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, Sha256(), nullptr);
  return ToHex(md, len);
}

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  // Each signature formats the time: a sender signing many requests a second formats it once.
  thread_local std::time_t formatted_secs = -1;
  thread_local char formatted[32];
  if (secs != formatted_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::strftime(formatted, sizeof formatted, "%Y%m%dT%H%M%SZ", &tm);
    formatted_secs = secs;
  }
  return formatted;
}

std::string CanonicalRequest(const SignableRequest& r, std::string_view payload_hash) {
  std::string out;
  out.reserve(512);
  out += r.method;
  out += '\n';
  PercentEncode(out, NormalizePath(r.path.empty() ? "/" : r.path), true);
  out += '\n';
  out += CanonicalQuery(r.query);
  out += '\n';
  const auto hs = CanonicalHeaderList(r);
  for (const auto& [n, v] : hs) {
    out += n;
    out += ':';
    out += v;
    out += '\n';
  }
  out += '\n';
  out += SignedHeaders(hs);
  out += '\n';
  out += payload_hash;
  return out;
}

std::string StringToSign(std::string_view canonical_request, const SigningScope& scope) {
  std::string out = "AWS4-HMAC-SHA256\n";
  out += FormatAmzDate(scope.time);
  out += '\n';
  out += DateStamp(scope.time) + "/" + scope.region + "/" + scope.service + "/aws4_request\n";
  out += Sha256Hex(canonical_request);
  return out;
}

std::string SignatureHex(std::string_view string_to_sign, const Credentials& creds, const SigningScope& scope) {
  const std::string sig = Hmac(SigningKey(creds, DateStamp(scope.time), scope), string_to_sign);
  return ToHex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

std::string AuthorizationHeader(const SignableRequest& request, std::string_view payload_hash,
                                const Credentials& creds, const SigningScope& scope) {
  const std::string creq = CanonicalRequest(request, payload_hash);
  const std::string sts = StringToSign(creq, scope);
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + DateStamp(scope.time) + "/" + scope.region +
         "/" + scope.service + "/aws4_request, SignedHeaders=" + SignedHeaders(CanonicalHeaderList(request)) +
         ", Signature=" + SignatureHex(sts, creds, scope);
}

void Sign(SignableRequest& request, std::string_view body, const Credentials& creds, const SigningScope& scope) {
  request.headers.emplace_back("X-Amz-Date", FormatAmzDate(scope.time));
  if (!creds.session_token.empty()) request.headers.emplace_back("X-Amz-Security-Token", creds.session_token);
  std::string auth = AuthorizationHeader(request, Sha256Hex(body), creds, scope);
  request.headers.emplace_back("Authorization", std::move(auth));
}

}  // namespace xrayd::aws
