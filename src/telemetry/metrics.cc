#include "telemetry/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace xrayd {

const char* ToString(HttpListener l) {
  switch (l) {
    case HttpListener::kApi: return "api";
    case HttpListener::kProxy: return "tcp_proxy";
    case HttpListener::kHealth: return "health";
    case HttpListener::kUi: return "ui";
    case HttpListener::kOtlp: return "otlp";
    case HttpListener::kCount: break;
  }
  return "unknown";
}

const char* ToString(HttpRefusal r) {
  switch (r) {
    case HttpRefusal::kHeaderTooLarge: return "header_too_large";
    case HttpRefusal::kTooManyHeaders: return "too_many_headers";
    case HttpRefusal::kBodyTooLarge: return "body_too_large";
    case HttpRefusal::kInflatedTooLarge: return "inflated_too_large";
    case HttpRefusal::kBadFraming: return "bad_framing";
    case HttpRefusal::kMalformed: return "malformed";
    case HttpRefusal::kTransferCoding: return "transfer_coding";
    case HttpRefusal::kContentEncoding: return "content_encoding";
    case HttpRefusal::kHeaderTimeout: return "header_timeout";
    case HttpRefusal::kBodyTimeout: return "body_timeout";
    case HttpRefusal::kConnectionLimit: return "connection_limit";
    case HttpRefusal::kOverloaded: return "overloaded";
    case HttpRefusal::kMemoryBudget: return "memory_budget";
    case HttpRefusal::kCount: break;
  }
  return "unknown";
}

const char* ToString(FailReason r) {
  switch (r) {
    case FailReason::kUnprocessed: return "unprocessed";
    case FailReason::kPermanentError: return "permanent_error";
    case FailReason::kRetriesExhausted: return "retries_exhausted";
    case FailReason::kShutdown: return "shutdown";
    case FailReason::kExpired: return "expired";
    case FailReason::kSpoolCorrupt: return "spool_corrupt";
    case FailReason::kCount: break;
  }
  return "unknown";
}

const char* ToString(BackendError e) {
  switch (e) {
    case BackendError::kTimeout: return "timeout";
    case BackendError::kConnectionRefused: return "connection_refused";
    case BackendError::kHttp4xx: return "http_4xx";
    case BackendError::kHttp5xx: return "http_5xx";
    case BackendError::kUnknownHost: return "unknown_host";
    case BackendError::kOther: return "other";
    case BackendError::kCount: break;
  }
  return "unknown";
}

BackendError BackendErrorForStatus(long status) {
  if (status >= 500 && status < 600) return BackendError::kHttp5xx;
  if (status >= 400 && status < 500) return BackendError::kHttp4xx;
  return BackendError::kOther;
}

BackendError BackendErrorForTransport(TransportError transport) {
  switch (transport) {
    case TransportError::kTimeout: return BackendError::kTimeout;
    case TransportError::kConnectRefused: return BackendError::kConnectionRefused;
    case TransportError::kDns: return BackendError::kUnknownHost;
    default: return BackendError::kOther;
  }
}

void LatencyHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void LatencyHistogram::Render(std::string& out, const char* name, const char* help) const {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], cumulative);
  }
  cumulative += buckets_[kBounds.size()].load(std::memory_order_relaxed);
  fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  fmt::format_to(std::back_inserter(out), "{}_sum {}\n{}_count {}\n", name,
                 static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6, name,
                 count_.load(std::memory_order_relaxed));
}

const char* ToString(DropReason r) {
  switch (r) {
    case DropReason::kQueueFull: return "queue_full";
    case DropReason::kSpoolFull: return "spool_full";
    case DropReason::kExpired: return "expired";
    case DropReason::kRefused: return "refused";
    case DropReason::kPermanent: return "permanent";
    case DropReason::kRetriesExhausted: return "retries_exhausted";
    case DropReason::kShutdown: return "shutdown";
    case DropReason::kSpoolCorrupt: return "spool_corrupt";
    case DropReason::kSpoolBusy: return "spool_busy";
    case DropReason::kCount: break;
  }
  return "unknown";
}

const char* ToString(SpoolErrorKind k) {
  switch (k) {
    case SpoolErrorKind::kOpen: return "open";
    case SpoolErrorKind::kNewerVersion: return "newer_version";
    case SpoolErrorKind::kWrite: return "write";
    case SpoolErrorKind::kRead: return "read";
    case SpoolErrorKind::kAck: return "ack";
    case SpoolErrorKind::kTornTail: return "torn_tail";
    case SpoolErrorKind::kCorruptCut: return "corrupt_cut";
    case SpoolErrorKind::kFsync: return "fsync";
    case SpoolErrorKind::kCount: break;
  }
  return "unknown";
}

namespace {

void Counter(std::string& out, const char* name, const char* help, uint64_t v) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
}
void Gauge(std::string& out, const char* name, const char* help, int64_t v) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
}

// The per-exporter families; each exporter's snapshot is taken once, so its lines add up.
void RenderExporters(std::string& out, const std::vector<ExporterMetrics*>& exporters) {
  std::vector<std::pair<std::string, ExporterMetrics::Snapshot>> snaps;
  for (const auto* e : exporters) snaps.emplace_back(e->name(), e->Get());
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& [n, s] : snaps) fmt::format_to(std::back_inserter(out), "{}{{exporter=\"{}\"}} {}\n", name, n, value(s));
  };
  using S = ExporterMetrics::Snapshot;
  family("xrayd_exporter_received_total", "counter", "Segments handed to the exporter (and recovered from its spool at start).",
         [](const S& s) { return s.received; });
  family("xrayd_exporter_delivered_total", "counter", "Segments the destination accepted.",
         [](const S& s) { return s.delivered; });
  family("xrayd_exporter_queued_segments", "gauge", "Segments in the exporter's memory queue, in flight included.",
         [](const S& s) { return s.queued; });
  family("xrayd_exporter_spooled_segments", "gauge", "Segments in the exporter's disk spool, not yet delivered.",
         [](const S& s) { return s.spooled; });
  family("xrayd_exporter_retries_total", "counter", "Batch sends retried.", [](const S& s) { return s.retries; });
  out += "# HELP xrayd_exporter_dropped_total Segments the exporter dropped, by reason.\n"
         "# TYPE xrayd_exporter_dropped_total counter\n";
  for (const auto& [n, s] : snaps)
    for (size_t i = 0; i < s.dropped.size(); ++i)
      fmt::format_to(std::back_inserter(out), "xrayd_exporter_dropped_total{{exporter=\"{}\",reason=\"{}\"}} {}\n", n,
                     ToString(static_cast<DropReason>(i)), s.dropped[i]);
  out += "# HELP xrayd_spool_errors_total Spool problems, by exporter and kind.\n"
         "# TYPE xrayd_spool_errors_total counter\n";
  for (const auto& [n, s] : snaps)
    for (size_t i = 0; i < s.spool_errors.size(); ++i)
      fmt::format_to(std::back_inserter(out), "xrayd_spool_errors_total{{exporter=\"{}\",kind=\"{}\"}} {}\n", n,
                     ToString(static_cast<SpoolErrorKind>(i)), s.spool_errors[i]);
  out += "# HELP xrayd_spool_usable Whether the exporter's spool is usable (0: running from memory).\n"
         "# TYPE xrayd_spool_usable gauge\n";
  for (const auto& [n, s] : snaps)
    fmt::format_to(std::back_inserter(out), "xrayd_spool_usable{{exporter=\"{}\"}} {}\n", n, s.spool_problem.empty() ? 1 : 0);
}

}  // namespace

std::string Metrics::RenderPrometheus() const {
  std::string out;
  out.reserve(4096);
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  Counter(out, "xrayd_segments_received_total", "Datagrams read from the UDP socket.", load(segments_received));
  out += "# HELP xrayd_segments_rejected_total Datagrams rejected at ingest, by reason.\n"
         "# TYPE xrayd_segments_rejected_total counter\n";
  for (size_t i = 0; i < segments_rejected.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "xrayd_segments_rejected_total{{reason=\"{}\"}} {}\n",
                   ToString(static_cast<RejectReason>(i)), load(segments_rejected[i]));
  }
  Counter(out, "xrayd_segments_spilled_total", "Valid segments dropped because the buffer was full.",
          load(segments_spilled));
  Counter(out, "xrayd_segments_sent_total", "Segments accepted by the X-Ray API.", load(segments_sent));
  out += "# HELP xrayd_segments_failed_total Buffered segments that could not be delivered, by reason.\n"
         "# TYPE xrayd_segments_failed_total counter\n";
  for (size_t i = 0; i < segments_failed.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "xrayd_segments_failed_total{{reason=\"{}\"}} {}\n",
                   ToString(static_cast<FailReason>(i)), load(segments_failed[i]));
  }
  out += "# HELP xrayd_store_errors_total Failed trace store operations (serve mode), by kind.\n"
         "# TYPE xrayd_store_errors_total counter\n";
  fmt::format_to(std::back_inserter(out), "xrayd_store_errors_total{{kind=\"retryable\"}} {}\n",
                 load(store_errors_retryable));
  fmt::format_to(std::back_inserter(out), "xrayd_store_errors_total{{kind=\"permanent\"}} {}\n",
                 load(store_errors_permanent));
  Counter(out, "xrayd_udp_kernel_drops_total",
          "Datagrams the kernel dropped because the socket receive queue was full.", load(udp_kernel_drops));
  out += "# HELP xrayd_export_requests_total PutTraceSegments requests by outcome.\n"
         "# TYPE xrayd_export_requests_total counter\n";
  fmt::format_to(std::back_inserter(out),
                 "xrayd_export_requests_total{{result=\"ok\"}} {}\n"
                 "xrayd_export_requests_total{{result=\"retryable\"}} {}\n"
                 "xrayd_export_requests_total{{result=\"throttled\"}} {}\n"
                 "xrayd_export_requests_total{{result=\"permanent\"}} {}\n",
                 load(export_requests_ok), load(export_requests_retryable), load(export_requests_throttled),
                 load(export_requests_permanent));
  Counter(out, "xrayd_export_retries_total", "PutTraceSegments requests retried.", load(export_retries));
  out += "# HELP xrayd_export_connection_errors_total Failed requests to the X-Ray API, by kind.\n"
         "# TYPE xrayd_export_connection_errors_total counter\n";
  for (size_t i = 0; i < backend_errors.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "xrayd_export_connection_errors_total{{kind=\"{}\"}} {}\n",
                   ToString(static_cast<BackendError>(i)), load(backend_errors[i]));
  }
  Gauge(out, "xrayd_batches_in_flight", "PutTraceSegments requests being sent or waiting to retry.",
        load(batches_in_flight));
  Gauge(out, "xrayd_buffer_bytes", "Bytes of segment documents held (queued or in flight).", load(buffer_bytes));
  Gauge(out, "xrayd_buffer_segments", "Segments held (queued or in flight).", load(buffer_segments));
  Gauge(out, "xrayd_buffer_capacity_bytes", "The buffer's bound (buffer memory setting).",
        load(buffer_capacity_bytes));
  export_latency.Render(out, "xrayd_export_latency_seconds", "PutTraceSegments request latency.");
  Counter(out, "xrayd_api_graph_truncated_total",
          "Graph answers built from part of their window (more traces than the per-call limit).",
          load(api_graph_truncated));
  out += "# HELP xrayd_http_refused_total HTTP requests or connections refused before a handler ran, by listener "
         "and reason.\n# TYPE xrayd_http_refused_total counter\n";
  for (size_t l = 0; l < http_refused.size(); ++l)
    for (size_t r = 0; r < http_refused[l].size(); ++r)
      fmt::format_to(std::back_inserter(out), "xrayd_http_refused_total{{listener=\"{}\",reason=\"{}\"}} {}\n",
                     ToString(static_cast<HttpListener>(l)), ToString(static_cast<HttpRefusal>(r)),
                     load(http_refused[l][r]));
  RenderExporters(out, Exporters());
  MutexLock lock(sources_mu_);
  for (const MetricsSource* source : sources_) source->RenderMetrics(out);
  return out;
}

void AppendCounterFamily(std::string& out, std::string_view name, std::string_view help, std::string_view label,
                         std::initializer_list<std::pair<std::string_view, uint64_t>> samples) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n", name, help, name);
  for (const auto& [value, count] : samples)
    fmt::format_to(std::back_inserter(out), "{}{{{}=\"{}\"}} {}\n", name, label, value, count);
}

void Metrics::AddSource(const MetricsSource* source) {
  MutexLock lock(sources_mu_);
  sources_.push_back(source);
}

void Metrics::RemoveSource(const MetricsSource* source) {
  MutexLock lock(sources_mu_);
  std::erase(sources_, source);
}

ExporterMetrics& Metrics::ForExporter(std::string_view name) {
  MutexLock lock(exporters_mu_);
  for (auto& e : exporters_)
    if (e->name() == name) return *e;
  exporters_.push_back(std::make_unique<ExporterMetrics>(std::string(name)));
  return *exporters_.back();
}

std::vector<ExporterMetrics*> Metrics::Exporters() const {
  MutexLock lock(exporters_mu_);
  std::vector<ExporterMetrics*> out;
  for (const auto& e : exporters_) out.push_back(e.get());
  return out;
}

std::vector<std::string> Metrics::ReadinessProblems() const {
  std::vector<std::string> out;
  for (const auto* e : Exporters()) {
    auto s = e->Get();
    if (!s.spool_problem.empty()) out.push_back("exporter " + e->name() + ": " + s.spool_problem);
  }
  return out;
}

void Metrics::ResetForTest() {
  segments_received = 0;
  for (auto& c : segments_rejected) c = 0;
  segments_spilled = 0;
  segments_sent = 0;
  for (auto& c : segments_failed) c = 0;
  udp_kernel_drops = 0;
  export_requests_ok = export_requests_retryable = export_requests_throttled = export_requests_permanent = 0;
  export_retries = 0;
  for (auto& c : backend_errors) c = 0;
  store_errors_retryable = store_errors_permanent = 0;
  for (auto& per_listener : http_refused)
    for (auto& c : per_listener) c = 0;
  batches_in_flight = buffer_bytes = buffer_segments = buffer_capacity_bytes = 0;
  api_graph_truncated = 0;
  for (auto* e : Exporters()) e->Reset();
}

Metrics& GlobalMetrics() {
  static Metrics metrics;
  return metrics;
}

}  // namespace xrayd
