#include "export/xray/put_trace_segments.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "common/json_escape.h"

namespace xrayd::xray {
namespace {

// "aws.protocoltests#ThrottlingException:http://..." → "ThrottlingException"
std::string StripErrorCode(std::string_view code) {
  if (const size_t colon = code.find(':'); colon != std::string_view::npos) code = code.substr(0, colon);
  if (const size_t hash = code.rfind('#'); hash != std::string_view::npos) code = code.substr(hash + 1);
  return std::string(code);
}

// Asks for a document's cache lines (its first 4 KB) two documents before it is escaped. The
// receiving thread wrote each document, often on the other core and a while ago (under a flood the
// queue grows to tens of MB, so from memory), and each starts at its own heap address, so the
// hardware's stream prefetcher only catches up some lines into it: the escaping was memory-bound
// (8 % of the daemon's CPU for ~1.4 KB a document; ~5 % with this, one ahead was not enough).
void PrefetchDocument(const std::string& s) {
  constexpr size_t kLine = 64, kMaxBytes = 4096;
  const char* p = s.data();
  const size_t n = std::min(s.size(), kMaxBytes);
  for (size_t off = 0; off < n; off += kLine) __builtin_prefetch(p + off, 0, 3);
}

bool Contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

}  // namespace

std::string BuildPutTraceSegmentsBody(const std::vector<std::string>& segments) {
  std::string body;
  BuildPutTraceSegmentsBody(segments, body);
  return body;
}

void BuildPutTraceSegmentsBody(const std::vector<std::string>& segments, std::string& body) {
  size_t total = 32;
  for (const auto& s : segments) total += s.size() + s.size() / 4 + 3;  // JSON escapes ~10-20% quotes
  body.clear();
  body.reserve(total);
  body += "{\"TraceSegmentDocuments\":[";
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i) body.push_back(',');
    if (i == 0 && segments.size() > 1) PrefetchDocument(segments[1]);
    if (i + 2 < segments.size()) PrefetchDocument(segments[i + 2]);
    AppendJsonString(body, segments[i]);
  }
  body += "]}";
}

Result<std::vector<UnprocessedSegment>> ParsePutTraceSegmentsResponse(std::string_view body) {
  std::vector<UnprocessedSegment> out;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return out;
  // X-Ray's answer when it took every document: no parse needed.
  if (body == R"({"UnprocessedTraceSegments":[]})") return out;
  thread_local simdjson::dom::parser parser;  // keeps its buffers between calls
  simdjson::dom::element root;
  if (parser.parse(body.data(), body.size(), true).get(root) != simdjson::SUCCESS || !root.is_object())
    return Error::Retryable("PutTraceSegments answer is not a JSON object");
  simdjson::dom::array items;
  auto field = root["UnprocessedTraceSegments"];
  if (field.error() == simdjson::NO_SUCH_FIELD || field.is_null()) return out;
  if (field.get(items) != simdjson::SUCCESS) return Error::Retryable("UnprocessedTraceSegments is not a list");
  for (simdjson::dom::element item : items) {
    UnprocessedSegment u;
    std::string_view v;
    if (item["Id"].get(v) == simdjson::SUCCESS) u.id = v;
    if (item["ErrorCode"].get(v) == simdjson::SUCCESS) u.error_code = v;
    if (item["Message"].get(v) == simdjson::SUCCESS) u.message = v;
    out.push_back(std::move(u));
  }
  return out;
}

std::string ErrorCode(const http::Response& response) {
  if (std::string h = response.Header("x-amzn-errortype"); !h.empty()) return StripErrorCode(h);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(response.body.data(), response.body.size(), true).get(root) == simdjson::SUCCESS &&
      root.is_object()) {
    std::string_view v;
    for (const char* key : {"__type", "code", "Code"})
      if (root[key].get(v) == simdjson::SUCCESS) return StripErrorCode(v);
  }
  return {};
}

Error ClassifyErrorResponse(const http::Response& response) {
  const std::string code = ErrorCode(response);
  std::string what = "HTTP " + std::to_string(response.status);
  if (!code.empty()) what += " " + code;
  std::optional<std::chrono::milliseconds> retry_after;
  if (std::string ra = response.Header("retry-after"); !ra.empty()) {
    int seconds = 0;
    if (std::from_chars(ra.data(), ra.data() + ra.size(), seconds).ec == std::errc() && seconds >= 0)
      retry_after = std::chrono::milliseconds(static_cast<int64_t>(seconds) * 1000);
  }
  if (response.status == 429 || Contains(code, "Throttl") || code == "TooManyRequestsException" ||
      code == "RequestLimitExceeded" || code == "SlowDown" || code == "ProvisionedThroughputExceededException")
    return Error::Throttled(what, retry_after);
  if (response.status >= 500 || response.status == 408) {
    Error e = Error::Retryable(what);
    e.retry_after = retry_after;
    return e;
  }
  static constexpr std::array<std::string_view, 6> kTransient4xx = {
      "ExpiredToken", "ExpiredTokenException", "RequestExpired", "RequestTimeout", "RequestTimeoutException",
      "PriorRequestNotComplete"};
  for (auto t : kTransient4xx)
    if (code == t) return Error::Retryable(what);
  return Error::Permanent(what);
}

}  // namespace xrayd::xray
