#include "aws/s3_client.h"

#include <chrono>

#include "aws/endpoint.h"
#include "aws/sigv4.h"

namespace xrayd::aws {
namespace {

// SHA-256 of the empty payload: every GET's x-amz-content-sha256.
constexpr std::string_view kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// AWS's URI encoding: unreserved characters kept, everything else %XX (upper-case hex).
std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string DecodeEntities(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out.push_back('&');
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out.push_back('&');
    else if (ent == "lt") out.push_back('<');
    else if (ent == "gt") out.push_back('>');
    else if (ent == "quot") out.push_back('"');
    else if (ent == "apos") out.push_back('\'');
    else if (ent.size() > 1 && ent[0] == '#') {
      unsigned long cp = 0;
      try {
        cp = ent[1] == 'x' ? std::stoul(std::string(ent.substr(2)), nullptr, 16) : std::stoul(std::string(ent.substr(1)));
      } catch (...) {
        cp = '?';
      }
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xE0 | ((cp >> 12) & 0x0F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

Error StatusError(const http::Response& r, const std::string& what) {
  std::string code = XmlText(r.body, "Code");
  std::string msg = what + ": HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code);
  // 401/403 too: a missing permission or key is fixed by an operator, after which the objects must
  // still be read, not skipped for good.
  if (r.status >= 500 || r.status == 429 || r.status == 401 || r.status == 403 || code == "SlowDown" ||
      code == "RequestTimeout")
    return Error::Retryable(msg);
  return Error::Permanent(msg);
}

}  // namespace

std::string XmlText(std::string_view xml, std::string_view tag, size_t from, size_t* end) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const size_t a = xml.find(open, from);
  const size_t b = a == std::string_view::npos ? a : xml.find(close, a + open.size());
  if (b == std::string_view::npos) {
    if (end) *end = std::string_view::npos;
    return {};
  }
  if (end) *end = b + close.size();
  return DecodeEntities(xml.substr(a + open.size(), b - a - open.size()));
}

Result<S3Location> ParseS3Url(std::string_view url) {
  if (url.substr(0, 5) != "s3://") return Error::InvalidArgument("not an s3:// URL: " + std::string(url));
  std::string_view rest = url.substr(5);
  const size_t slash = std::min(rest.find('/'), rest.size());
  S3Location loc{std::string(rest.substr(0, slash)), std::string(rest.substr(std::min(slash + 1, rest.size())))};
  if (loc.bucket.empty()) return Error::InvalidArgument("no bucket in " + std::string(url));
  return loc;
}

Result<S3Client> S3Client::Create(S3ClientOptions options, CredentialsProvider* credentials) {
  std::string endpoint = options.endpoint;
  if (endpoint.empty()) {
    endpoint = "https://s3." + options.region + "." + std::string(PartitionDnsSuffix(options.region));
  }
  auto url = ParseUrl(endpoint);
  if (!url) return url.error();
  return S3Client(std::move(options), credentials, url->scheme + "://" + url->authority, url->authority, url->path);
}

S3Client::S3Client(S3ClientOptions options, CredentialsProvider* credentials, std::string origin,
                   std::string authority, std::string base_path)
    : options_(std::move(options)),
      credentials_(credentials),
      origin_(std::move(origin)),
      authority_(std::move(authority)),
      base_path_(std::move(base_path)) {}

Result<http::Response> S3Client::Get(http::Client& client, const std::string& path, const std::string& query) const {
  SignableRequest signable{"GET", base_path_ + path, query, {{"host", authority_}, {"x-amz-content-sha256", std::string(kEmptySha256)}}};
  if (credentials_ != nullptr) {
    auto creds = credentials_->Get();
    if (!creds) return Error::Transport(TransportError::kNoCredentials, "no AWS credentials for S3: " + creds.error().message);
    Sign(signable, "", *creds, {options_.region, "s3", std::chrono::system_clock::now()});
  }
  http::Request req;
  req.method = "GET";
  req.url = origin_ + UriEncode(base_path_ + path, true) + (query.empty() ? "" : "?" + query);
  for (auto& [k, v] : signable.headers)
    if (k != "host") req.headers.emplace_back(k, v);
  return client.Send(req);
}

Result<S3ListPage> S3Client::ListObjectsV2(http::Client& client, const std::string& bucket, const std::string& prefix,
                                           const std::string& token) const {
  // Every reserved character encoded, '/' too, as botocore does and AWS's canonical query wants.
  // (moto 5's signature check decodes %2F and so refuses such a request: its tests use prefixes
  // without '/'.)
  std::string query = "list-type=2";
  if (!token.empty()) query += "&continuation-token=" + UriEncode(token, false);
  if (!prefix.empty()) query += "&prefix=" + UriEncode(prefix, false);
  auto r = Get(client, "/" + bucket, query);
  if (!r) return r.error();
  if (r->status != 200) return StatusError(*r, "ListObjectsV2 s3://" + bucket + "/" + prefix);
  S3ListPage page;
  size_t pos = 0;
  for (;;) {
    size_t end = 0;
    std::string contents = XmlText(r->body, "Contents", pos, &end);
    if (end == std::string::npos) break;
    S3ObjectInfo o{XmlText(contents, "Key"), XmlText(contents, "ETag"), 0};
    try {
      o.size = std::stoull(XmlText(contents, "Size"));
    } catch (...) {
    }
    if (!o.key.empty()) page.objects.push_back(std::move(o));
    pos = end;
  }
  if (XmlText(r->body, "IsTruncated") == "true") {
    page.next_token = XmlText(r->body, "NextContinuationToken");
    if (page.next_token.empty()) return Error::Permanent("ListObjectsV2: truncated listing without a continuation token");
  }
  return page;
}

Result<std::string> S3Client::GetObject(http::Client& client, const std::string& bucket, const std::string& key) const {
  auto r = Get(client, "/" + bucket + "/" + key, "");
  if (!r) return r.error();
  if (r->status != 200) return StatusError(*r, "GetObject s3://" + bucket + "/" + key);
  return std::move(r->body);
}

}  // namespace xrayd::aws
