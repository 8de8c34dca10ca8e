// The process-wide metrics registry: the one piece of global mutable state xrayd allows.
//
// Every place a segment can leave the pipeline has a counter, and they add up:
//   received = sent + buffered + rejected(all reasons) + spilled + failed(all reasons)
// (`received` counts datagrams read from the socket.) All members are atomics; any thread may
// update them without locks. RenderPrometheus() produces the text exposition format.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/reasons.h"
#include "common/result.h"
#include "common/thread_annotations.h"

namespace xrayd {

enum class FailReason { kUnprocessed, kPermanentError, kRetriesExhausted, kShutdown, kExpired, kSpoolCorrupt, kCount };
// Failed requests to the X-Ray API by kind, as AWS's daemon reports them in telemetry
// (BackendConnectionErrors). Counted per failed HTTP request, retries included.
enum class BackendError { kTimeout, kConnectionRefused, kHttp4xx, kHttp5xx, kUnknownHost, kOther, kCount };
// Requests and connections an HTTP listener (http/server.h) refused before any handler ran.
enum class HttpListener { kApi, kProxy, kHealth, kUi, kOtlp, kCount };
enum class HttpRefusal {
  kHeaderTooLarge,      // 431: request line + headers over the byte limit
  kTooManyHeaders,      // 431: over the header count limit
  kBodyTooLarge,        // 413: body (any framing) over the limit
  kInflatedTooLarge,    // 413: body over the limit, or over the inflation ratio, once decompressed
  kBadFraming,          // 400: Content-Length with Transfer-Encoding, conflicting lengths, bad chunks
  kMalformed,           // 400: not HTTP/1.x, bad request line or header, corrupt compressed body
  kTransferCoding,      // 501: a transfer coding other than "chunked"
  kContentEncoding,     // 415: a content coding other than gzip, deflate, identity
  kHeaderTimeout,       // 408: request line + headers not complete within the header deadline
  kBodyTimeout,         // 408: body not complete within the body deadline
  kConnectionLimit,     // 503: connection refused, the listener holds its maximum
  kOverloaded,          // 503: every handler thread busy and the handler queue full
  kMemoryBudget,        // 503: the listener holds its budget of request bytes (ServerLimits::max_held_body_bytes)
  kCount
};
const char* ToString(HttpListener l);
const char* ToString(HttpRefusal r);
const char* ToString(FailReason r);
const char* ToString(BackendError e);

// Why an exporter dropped segments (xrayd_exporter_dropped_total{reason}); see pipeline/exporter.h.
enum class DropReason {
  kQueueFull,         // no spool (or it is unusable) and the memory queue is full
  kSpoolFull,         // the spool dropped its oldest data for its size bound, or a spool write failed (disk full)
  kExpired,           // spooled longer than the spool's max age
  kRefused,           // the destination judged the document (e.g. UnprocessedTraceSegments)
  kPermanent,         // the destination refused the batch for good (4xx, a read-only store)
  kRetriesExhausted,  // retried for the maximum elapsed time (or attempts), no spool to keep it
  kShutdown,          // the shutdown grace ran out and there is no spool
  kSpoolCorrupt,      // cut from the spool: a record that failed its checksum
  kSpoolBusy,         // the spool writer fell behind (its hand-off from the memory queue was full)
  kCount
};
// Spool problems (xrayd_spool_errors_total{kind}).
enum class SpoolErrorKind { kOpen, kNewerVersion, kWrite, kRead, kAck, kTornTail, kCorruptCut, kFsync, kCount };
const char* ToString(DropReason r);
const char* ToString(SpoolErrorKind k);

// One exporter's accounting, kept under one mutex so that a scrape always sees
//   received = delivered + queued + spooled + sum(dropped)
// exactly. The pipeline's Exporter is the only writer; RenderPrometheus() reads it.
class ExporterMetrics {
 public:
  explicit ExporterMetrics(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  struct Snapshot {
    uint64_t received = 0, delivered = 0, retries = 0;
    int64_t queued = 0, spooled = 0;
    std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> dropped{};
    std::array<uint64_t, static_cast<size_t>(SpoolErrorKind::kCount)> spool_errors{};
    std::string spool_problem;  // non-empty: the spool is unusable and /readyz says so
    uint64_t DroppedTotal() const {
      uint64_t t = 0;
      for (auto d : dropped) t += d;
      return t;
    }
  };
  Snapshot Get() const XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return s_;
  }
  // Applies `change` to the counters atomically (with respect to Get()).
  template <typename F>
  void Update(F&& change) XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    change(s_);
  }
  void Reset() XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    s_ = Snapshot{};
  }

 private:
  const std::string name_;
  mutable Mutex mu_;
  Snapshot s_ XRAYD_GUARDED_BY(mu_);
};

// The kind of a failed request: by HTTP status, or by the transport error's kind (http::Client
// sets it from libcurl's result code). kNoCredentials is Other, as AWS's daemon counts a request
// its SDK could not sign.
BackendError BackendErrorForStatus(long status);
BackendError BackendErrorForTransport(TransportError transport);

// Fixed-bucket latency histogram (seconds), lock-free.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
  void Observe(double seconds);
  void Render(std::string& out, const char* name, const char* help) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // last = +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

// Counters a component keeps itself (the OTLP receiver and sender, the load-balancer log sources),
// shown on /metrics while the component lives. The component registers itself (Metrics::AddSource)
// and removes itself before its counters go away. RenderMetrics appends whole families (HELP, TYPE,
// samples; AppendCounterFamily helps) and runs under the registry's lock on the scraping thread,
// so RemoveSource waits for a scrape in progress and no scrape reads a destroyed source.
class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  virtual void RenderMetrics(std::string& out) const = 0;
};

// One counter family with one label: `name{label="value"} count` for each (value, count).
void AppendCounterFamily(std::string& out, std::string_view name, std::string_view help, std::string_view label,
                         std::initializer_list<std::pair<std::string_view, uint64_t>> samples);

struct Metrics {
  std::atomic<uint64_t> segments_received{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(RejectReason::kCount)> segments_rejected{};
  std::atomic<uint64_t> segments_spilled{0};
  std::atomic<uint64_t> segments_sent{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(FailReason::kCount)> segments_failed{};
  std::atomic<uint64_t> udp_kernel_drops{0};

  std::atomic<uint64_t> export_requests_ok{0};
  std::atomic<uint64_t> export_requests_retryable{0};
  std::atomic<uint64_t> export_requests_throttled{0};
  std::atomic<uint64_t> export_requests_permanent{0};
  std::atomic<uint64_t> export_retries{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(BackendError::kCount)> backend_errors{};
  // Failed trace-store operations (`xrayd serve`), by the Error kind TraceStore returned.
  std::atomic<uint64_t> store_errors_retryable{0};
  std::atomic<uint64_t> store_errors_permanent{0};

  std::atomic<int64_t> batches_in_flight{0};
  std::atomic<int64_t> buffer_bytes{0};
  std::atomic<int64_t> buffer_segments{0};
  std::atomic<int64_t> buffer_capacity_bytes{0};

  LatencyHistogram export_latency;

  // xrayd serve: graph answers (GetServiceGraph, GetTimeSeriesServiceStatistics) built from part of
  // their window because it held more traces than the per-call limit.
  std::atomic<uint64_t> api_graph_truncated{0};
  std::array<std::array<std::atomic<uint64_t>, static_cast<size_t>(HttpRefusal::kCount)>,
             static_cast<size_t>(HttpListener::kCount)>
      http_refused{};

  void Reject(RejectReason r, uint64_t n = 1) {
    segments_rejected[static_cast<size_t>(r)].fetch_add(n, std::memory_order_relaxed);
  }
  void Fail(FailReason r, uint64_t n) {
    segments_failed[static_cast<size_t>(r)].fetch_add(n, std::memory_order_relaxed);
  }
  void CountStoreError(bool retryable) {
    (retryable ? store_errors_retryable : store_errors_permanent).fetch_add(1, std::memory_order_relaxed);
  }
  void CountBackendError(BackendError e) {
    backend_errors[static_cast<size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }
  void CountHttpRefusal(HttpListener l, HttpRefusal r) {
    http_refused[static_cast<size_t>(l)][static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t HttpRefused(HttpListener l, HttpRefusal r) const {
    return http_refused[static_cast<size_t>(l)][static_cast<size_t>(r)].load(std::memory_order_relaxed);
  }
  uint64_t BackendErrors(BackendError e) const {
    return backend_errors[static_cast<size_t>(e)].load(std::memory_order_relaxed);
  }
  uint64_t Rejected(RejectReason r) const {
    return segments_rejected[static_cast<size_t>(r)].load(std::memory_order_relaxed);
  }
  uint64_t Failed(FailReason r) const {
    return segments_failed[static_cast<size_t>(r)].load(std::memory_order_relaxed);
  }

  // The accounting of the exporter named `name` ("xray", "store", "otlp"), created at first use
  // and kept for the life of the process (a restarted exporter of the same name continues it).
  ExporterMetrics& ForExporter(std::string_view name) XRAYD_EXCLUDES(exporters_mu_);
  std::vector<ExporterMetrics*> Exporters() const XRAYD_EXCLUDES(exporters_mu_);
  // One line per exporter whose spool is unusable ("exporter xray: spool ...: why"); empty: none.
  std::vector<std::string> ReadinessProblems() const;

  void AddSource(const MetricsSource* source) XRAYD_EXCLUDES(sources_mu_);
  void RemoveSource(const MetricsSource* source) XRAYD_EXCLUDES(sources_mu_);

  std::string RenderPrometheus() const;
  // Zeroes everything (tests only).
  void ResetForTest();

 private:
  mutable Mutex sources_mu_;
  std::vector<const MetricsSource*> sources_ XRAYD_GUARDED_BY(sources_mu_);
  mutable Mutex exporters_mu_;
  std::deque<std::unique_ptr<ExporterMetrics>> exporters_ XRAYD_GUARDED_BY(exporters_mu_);
};

// The process-wide registry.
Metrics& GlobalMetrics();

}  // namespace xrayd
