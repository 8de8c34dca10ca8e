#include "otlp/otlp_sender.h"

#include <fstream>

#include <zlib.h>

#include <ctime>
#include <utility>

#include "common/log.h"
#include "otlp/otlp_json.h"
#include "otlp/xray_to_otlp.h"

namespace xrayd::otlp {
namespace {

using pipeline::SendOutcome;

SendOutcome Outcome(SendOutcome::Kind kind, std::string message) {
  SendOutcome o;
  o.kind = kind;
  o.message = std::move(message);
  return o;
}

// Retry-After: delay-seconds or an IMF-fixdate (RFC 9110 §10.2.3); nullopt when absent or unreadable.
std::optional<std::chrono::milliseconds> RetryAfter(const std::string& value) {
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string::npos && value.size() < 9)
    return std::chrono::seconds(std::stol(value));
  std::tm tm{};
  if (!strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return std::nullopt;
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(at - std::chrono::system_clock::now());
  return std::max(wait, std::chrono::milliseconds(0));
}

bool IsJson(const std::string& content_type) { return content_type.find("json") != std::string::npos; }

}  // namespace

std::string Gzip(std::string_view data) {
  z_stream z{};
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);  // 16: gzip
  std::string out(deflateBound(&z, data.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

Status OtlpExporterConfig::Validate() const {
  std::string problems;
  if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0)
    problems += "otlp endpoint must be an http:// or https:// URL (got \"" + endpoint + "\"); ";
  if (timeout.count() <= 0) problems += "otlp timeout must be positive; ";
  for (const auto& [k, v] : headers)
    if (k.empty() || k.find_first_of(":\r\n ") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
      problems += "otlp header \"" + k + "\" is not a valid header; ";
  if (cert_file.empty() != key_file.empty())
    problems += "otlp client certificate and key go together (CertFile and KeyFile); ";
  for (const std::string* f : {&ca_file, &cert_file, &key_file})
    if (!f->empty() && !std::ifstream(*f).good()) problems += "otlp TLS file " + *f + " cannot be read; ";
  if (problems.empty()) return OkStatus();
  problems.resize(problems.size() - 2);
  return Error::InvalidArgument(problems);
}

std::string OtlpExporterConfig::TracesUrl() const {
  size_t scheme = endpoint.find("://");
  size_t path = scheme == std::string::npos ? std::string::npos : endpoint.find('/', scheme + 3);
  if (path == std::string::npos) return endpoint + "/v1/traces";
  if (endpoint.size() == path + 1) return endpoint.substr(0, path) + "/v1/traces";
  return endpoint;
}

Result<OtlpExporterConfig::Encoding> ParseEncoding(std::string_view name) {
  if (name == "protobuf" || name == "proto" || name == "http/protobuf") return OtlpExporterConfig::Encoding::kProtobuf;
  if (name == "json" || name == "http/json") return OtlpExporterConfig::Encoding::kJson;
  return Error::InvalidArgument("otlp encoding must be protobuf or json (got \"" + std::string(name) + "\")");
}

OtlpSender::OtlpSender(OtlpExporterConfig config) : config_(std::move(config)), url_(config_.TracesUrl()) {
  GlobalMetrics().AddSource(this);
}

OtlpSender::~OtlpSender() { GlobalMetrics().RemoveSource(this); }

void OtlpSender::RenderMetrics(std::string& out) const {
  const auto& c = counters_;
  AppendCounterFamily(out, "xrayd_otlp_exporter_requests_total", "OTLP export requests, by result.", "result",
                      {{"ok", c.requests_ok.load()},
                       {"retryable", c.requests_retryable.load()},
                       {"throttled", c.requests_throttled.load()},
                       {"permanent", c.requests_permanent.load()}});
  AppendCounterFamily(out, "xrayd_otlp_exporter_spans_total",
                      "Spans in requests the back-end answered 200, and those it rejected (partial success).",
                      "result", {{"sent", c.spans_sent.load()}, {"rejected", c.spans_rejected.load()}});
  AppendCounterFamily(out, "xrayd_otlp_exporter_documents_skipped_total",
                      "Segment documents not exported over OTLP, by reason.", "reason",
                      {{"in_progress", c.documents_in_progress.load()}, {"invalid", c.documents_invalid.load()}});
  AppendCounterFamily(out, "xrayd_otlp_exporter_sent_bytes_total", "Request bodies sent, as sent (after compression).",
                      "exporter", {{"otlp", c.bytes_sent.load()}});
}

void OtlpSender::Abort() { aborted_.store(true); }

std::unique_ptr<http::Client> OtlpSender::TakeClient() {
  {
    MutexLock lock(mu_);
    if (!idle_clients_.empty()) {
      auto c = std::move(idle_clients_.back());
      idle_clients_.pop_back();
      return c;
    }
  }
  http::ClientOptions opt;
  opt.proxy = config_.proxy;
  opt.verify_tls = !config_.insecure_skip_verify;
  opt.ca_file = config_.ca_file;
  opt.cert_file = config_.cert_file;
  opt.key_file = config_.key_file;
  opt.timeout = config_.timeout;
  opt.connect_timeout = std::min(config_.timeout, std::chrono::milliseconds(5000));
  opt.max_response_bytes = 1024 * 1024;
  opt.abort = &aborted_;
  return std::make_unique<http::Client>(opt);
}

void OtlpSender::ReturnClient(std::unique_ptr<http::Client> client) {
  MutexLock lock(mu_);
  if (idle_clients_.size() < 8) idle_clients_.push_back(std::move(client));
}

std::string OtlpSender::EncodeBody(const std::vector<std::string>& segments, size_t* spans) const {
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest request = SegmentsToRequest(segments, &stats);
  if (spans) *spans = stats.spans;
  return config_.encoding == OtlpExporterConfig::Encoding::kJson ? EncodeJson(request)
                                                                  : request.SerializeAsString();
}

SendOutcome OtlpSender::Send(const std::vector<std::string>& segments) {
  if (aborted_.load()) return Outcome(SendOutcome::Kind::kRetryable, "otlp exporter shutting down");
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest request = SegmentsToRequest(segments, &stats);
  counters_.documents_in_progress += stats.in_progress;
  counters_.documents_invalid += stats.invalid;
  if (stats.spans == 0) {
    SendOutcome o;
    o.refused = stats.invalid;
    if (stats.invalid) o.message = "not X-Ray segment documents";
    return o;
  }
  bool json = config_.encoding == OtlpExporterConfig::Encoding::kJson;
  http::Request req;
  req.url = url_;
  req.body = json ? EncodeJson(request) : request.SerializeAsString();
  req.headers.emplace_back("Content-Type", json ? "application/json" : "application/x-protobuf");
  req.headers.emplace_back("User-Agent", "xrayd/" XRAYD_VERSION);
  if (config_.gzip) {
    req.body = Gzip(req.body);
    req.headers.emplace_back("Content-Encoding", "gzip");
  }
  for (const auto& h : config_.headers) req.headers.push_back(h);
  counters_.bytes_sent += req.body.size();

  std::unique_ptr<http::Client> client = TakeClient();
  Result<http::Response> resp = client->Send(req);
  ReturnClient(std::move(client));
  if (!resp.ok()) {
    ++counters_.requests_retryable;
    return Outcome(SendOutcome::Kind::kRetryable, "otlp " + url_ + ": " + resp.error().message);
  }
  SendOutcome o = Classify(*resp, segments.size() - stats.in_progress, stats.spans);
  o.refused += stats.invalid;
  return o;
}

SendOutcome OtlpSender::Classify(const http::Response& response, size_t documents, size_t spans) {
  long status = response.status;
  if (status >= 200 && status < 300) {
    ++counters_.requests_ok;
    counters_.spans_sent += spans;
    int64_t rejected = 0;
    std::string why;
    if (IsJson(response.Header("content-type"))) {
      if (auto r = DecodeJsonResponse(response.body); r.ok() && r->has_partial_success()) {
        rejected = r->partial_success().rejected_spans();
        why = r->partial_success().error_message();
      }
    } else {
      pb::ExportTraceServiceResponse r;
      if (r.ParseFromString(response.body) && r.has_partial_success()) {
        rejected = r.partial_success().rejected_spans();
        why = r.partial_success().error_message();
      }
    }
    SendOutcome o;
    if (rejected > 0) {
      counters_.spans_rejected += static_cast<uint64_t>(rejected);
      o.refused = std::min(static_cast<size_t>(rejected), documents);
      o.message = "otlp partial success: " + std::to_string(rejected) + " spans rejected: " + why;
    }
    return o;
  }
  std::string message = "otlp " + url_ + " answered HTTP " + std::to_string(status);
  if (status == 429 || status == 502 || status == 503 || status == 504) {
    ++counters_.requests_retryable;
    if (status == 429) ++counters_.requests_throttled;
    SendOutcome o = Outcome(SendOutcome::Kind::kRetryable, message);
    o.retry_after = RetryAfter(response.Header("retry-after"));
    o.throttled = status == 429;
    return o;
  }
  ++counters_.requests_permanent;
  return Outcome(SendOutcome::Kind::kPermanent, message + ": " + response.body.substr(0, 200));
}

Result<std::unique_ptr<pipeline::BatchSender>> MakeOtlpSender(const OtlpExporterConfig& config) {
  if (Status s = config.Validate(); !s.ok()) return s.error();
  return std::unique_ptr<pipeline::BatchSender>(std::make_unique<OtlpSender>(config));
}

}  // namespace xrayd::otlp
