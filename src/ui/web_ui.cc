#include "ui/web_ui.h"

#include <algorithm>
#include <array>
#include <utility>

#include <zlib.h>

#include "ui/embedded_assets.h"

namespace xrayd::ui {
namespace {

// Scripts, styles, fonts and images from this origin only; data only from this origin's API.
// No 'unsafe-inline', no 'unsafe-eval': an injected <script> or on*= attribute never runs.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

constexpr std::array<std::string_view, 4> kPages = {"/map", "/analytics", "/sampling", "/groups"};

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// A non-empty path segment without further slashes (a trace id, as the app gets it).
bool IsSegment(std::string_view s) { return !s.empty() && s.find('/') == std::string_view::npos; }

bool IsAppRoute(std::string_view path) {
  if (path == "/" || path == "/index.html") return true;
  if (std::find(kPages.begin(), kPages.end(), path) != kPages.end()) return true;
  if (StartsWith(path, "/traces/")) return IsSegment(path.substr(8));
  if (StartsWith(path, "/compare/")) {
    std::string_view rest = path.substr(9);
    const size_t slash = rest.find('/');
    return slash != std::string_view::npos && IsSegment(rest.substr(0, slash)) && IsSegment(rest.substr(slash + 1));
  }
  return false;
}

const EmbeddedAsset* Find(std::string_view path) {
  for (const EmbeddedAsset& a : EmbeddedAssets())
    if (a.path == path) return &a;
  return nullptr;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (http::IncomingRequest::Lower(a[i]) != http::IncomingRequest::Lower(b[i])) return false;
  return true;
}

// RFC 9110 §12.5.3: gzip (or *) listed without q=0.
bool AcceptsGzip(std::string_view accept_encoding) {
  while (!accept_encoding.empty()) {
    const size_t comma = accept_encoding.find(',');
    std::string_view item = accept_encoding.substr(0, comma);
    accept_encoding = comma == std::string_view::npos ? std::string_view{} : accept_encoding.substr(comma + 1);
    const size_t semi = item.find(';');
    const std::string_view coding = Trim(item.substr(0, semi));
    if (!EqualsIgnoreCase(coding, "gzip") && coding != "*") continue;
    std::string_view params = semi == std::string_view::npos ? "" : Trim(item.substr(semi + 1));
    const bool refused = StartsWith(params, "q=0") && params.find_first_of("123456789") == std::string_view::npos;
    if (!refused) return true;
  }
  return false;
}

// True when If-None-Match lists `etag` (or is "*").
bool NotModified(std::string_view if_none_match, std::string_view etag) {
  if (Trim(if_none_match) == "*") return true;
  while (!if_none_match.empty()) {
    const size_t comma = if_none_match.find(',');
    std::string_view tag = Trim(if_none_match.substr(0, comma));
    if (StartsWith(tag, "W/")) tag.remove_prefix(2);  // weak comparison, as GET allows
    if (tag == etag) return true;
    if_none_match = comma == std::string_view::npos ? std::string_view{} : if_none_match.substr(comma + 1);
  }
  return false;
}

http::OutgoingResponse WithSecurityHeaders(http::OutgoingResponse r) {
  r.headers.emplace_back("Content-Security-Policy", std::string(kContentSecurityPolicy));
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
  return r;
}

http::OutgoingResponse Text(int status, std::string body) {
  http::OutgoingResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return WithSecurityHeaders(std::move(r));
}

http::OutgoingResponse ServeAsset(const http::IncomingRequest& request, const EmbeddedAsset& asset, bool immutable) {
  http::OutgoingResponse r;
  r.content_type = std::string(asset.content_type);
  r.headers.emplace_back("ETag", std::string(asset.etag));
  r.headers.emplace_back("Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
  r.headers.emplace_back("Vary", "Accept-Encoding");
  if (NotModified(request.Header("If-None-Match"), asset.etag)) {
    r.status = 304;
  } else if (AcceptsGzip(request.Header("Accept-Encoding"))) {
    r.headers.emplace_back("Content-Encoding", "gzip");
    r.body = std::string(asset.gzip);
  } else {
    r.body = RawBytes(asset);
  }
  return WithSecurityHeaders(std::move(r));
}

}  // namespace

std::string RawBytes(const EmbeddedAsset& asset) {
  std::string out(asset.raw_size, '\0');
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return {};  // 16+: a gzip wrapper, not zlib's
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(asset.gzip.data()));
  zs.avail_in = static_cast<uInt>(asset.gzip.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  const bool whole = rc == Z_STREAM_END && zs.total_out == out.size();
  inflateEnd(&zs);
  return whole ? out : std::string();
}

bool IsUiPath(std::string_view path) {
  return IsAppRoute(path) || (StartsWith(path, "/assets/") && Find(path)) || path == "/favicon.svg";
}

http::OutgoingResponse ServeWebUi(const http::IncomingRequest& request) {
  if (request.method != "GET" && request.method != "HEAD") return Text(405, "the web UI answers GET and HEAD only\n");
  if (EmbeddedAssets().empty())
    return Text(404, "this xrayd was built without its web UI (-DXRAYD_UI=OFF); the X-Ray API answers POST here\n");
  if (IsAppRoute(request.path)) {
    if (const EmbeddedAsset* index = Find("/index.html")) return ServeAsset(request, *index, false);
  }
  if (const EmbeddedAsset* asset = Find(request.path))
    return ServeAsset(request, *asset, StartsWith(request.path, "/assets/"));
  return Text(404, "no such page: the web UI's pages are /, /traces/{id}, /map, /analytics, /sampling, /groups, /compare/{a}/{b}\n");
}

}  // namespace xrayd::ui
