#include "export/xray/xray_exporter.h"

#include "common/log.h"
#include "export/xray/put_trace_segments.h"
#include "telemetry/metrics.h"
#include "common/thread_name.h"

namespace xrayd::xray {
namespace {

// The trace id of the document whose "id" is `segment_id`, for logs; "unknown" if none matches.
std::string TraceIdOfSegment(const std::vector<std::string>& docs, const std::string& segment_id) {
  if (segment_id.empty()) return "unknown";
  const std::string needle = "\"" + segment_id + "\"";
  for (const auto& d : docs) {
    if (d.find(needle) == std::string::npos) continue;
    const size_t key = d.find("\"trace_id\"");
    if (key == std::string::npos) continue;
    const size_t open = d.find('"', d.find(':', key) + 1);
    const size_t close = open == std::string::npos ? open : d.find('"', open + 1);
    if (close != std::string::npos) return d.substr(open + 1, close - open - 1);
  }
  return "unknown";
}

void CountOutcome(const Error& e) {
  auto& m = GlobalMetrics();
  switch (e.kind) {
    case Error::Kind::kThrottled: m.export_requests_throttled.fetch_add(1, std::memory_order_relaxed); break;
    case Error::Kind::kRetryable: m.export_requests_retryable.fetch_add(1, std::memory_order_relaxed); break;
    default: m.export_requests_permanent.fetch_add(1, std::memory_order_relaxed); break;
  }
}

}  // namespace

XrayExporter::XrayExporter(ExporterOptions options, SegmentBuffer& buffer, aws::CredentialsProvider* credentials)
    : options_(std::move(options)), buffer_(buffer), credentials_(credentials) {}

XrayExporter::~XrayExporter() { Stop(std::chrono::milliseconds(0)); }

Status XrayExporter::Start() {
  auto xray = aws::SignedClient::Create(options_.xray, credentials_);
  if (!xray) return xray.error();
  xray_ = std::move(*xray);
  const int n = std::max(1, options_.concurrency);
  running_ = n;
  for (int i = 0; i < n; ++i) senders_.emplace_back([this, i] { SenderLoop(i); });
  return OkStatus();
}

void XrayExporter::Stop(std::chrono::milliseconds grace) {
  if (senders_.empty()) return;
  {
    MutexLock lock(done_mu_);
    if (stopped_) return;
    stopped_ = true;
    buffer_.Close();
    lock.WaitFor(done_cv_, grace, [this] { return running_.load() == 0; });
  }
  {
    // Set under the sleepers' lock, so a sender between its check and its wait cannot miss it.
    MutexLock lock(sleep_mu_);
    aborting_ = true;
  }
  buffer_.Abort();
  sleep_cv_.notify_all();
  for (auto& t : senders_) t.join();
  senders_.clear();
  // Whatever is still queued was never sent.
  while (auto batch = buffer_.TryPopBatch(std::chrono::steady_clock::now())) {
    GlobalMetrics().Fail(FailReason::kShutdown, batch->segments.size());
    buffer_.Release(*batch);
  }
}

bool XrayExporter::SleepUnlessAborted(std::chrono::milliseconds d) {
  MutexLock lock(sleep_mu_);
  return !lock.WaitFor(sleep_cv_, d, [this] { return aborting_.load(); });
}

void XrayExporter::SenderLoop(int index) {
  NameThisThread("xrayd-send-" + std::to_string(index));
  http::ClientOptions http_options = options_.http;
  http_options.abort = &aborting_;
  // Created at the first batch: an idle daemon never loads TLS and curl state it does not use.
  std::unique_ptr<http::Client> client;
  std::mt19937_64 rng(std::random_device{}() ^ (static_cast<uint64_t>(index) << 32));
  auto& m = GlobalMetrics();
  while (auto batch = buffer_.PopBatch()) {
    m.batches_in_flight.fetch_add(1, std::memory_order_relaxed);
    if (!client) client = std::make_unique<http::Client>(http_options);
    Deliver(*batch, *client, rng);
    buffer_.Release(*batch);
    m.batches_in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  if (running_.fetch_sub(1) == 1) {
    MutexLock lock(done_mu_);
    done_cv_.notify_all();
  }
}

void XrayExporter::Deliver(Batch& batch, http::Client& client, std::mt19937_64& rng) {
  auto& m = GlobalMetrics();
  const size_t n = batch.segments.size();
  const std::string body = BuildPutTraceSegmentsBody(batch.segments);

  std::chrono::milliseconds backoff = options_.retry.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    if (aborting_) {
      m.Fail(FailReason::kShutdown, n);
      return;
    }
    // Without credentials the signed client sends nothing (or unsigned, by policy: see
    // aws/signed_client.h); the error is retryable, so the batch waits while the provider recovers.
    const auto t0 = std::chrono::steady_clock::now();
    Result<http::Response> response = xray_->Post(client, "/TraceSegments", body);
    const bool sent = response || response.error().transport != TransportError::kNoCredentials;
    if (sent) m.export_latency.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    Error error;
    if (response && response->status >= 200 && response->status < 300) {
      auto unprocessed = ParsePutTraceSegmentsResponse(response->body);
      const size_t rejected = unprocessed ? unprocessed->size() : 0;
      m.export_requests_ok.fetch_add(1, std::memory_order_relaxed);
      m.segments_sent.fetch_add(n - std::min(rejected, n), std::memory_order_relaxed);
      if (rejected > 0) {
        m.Fail(FailReason::kUnprocessed, std::min(rejected, n));
        if (unprocessed_log_.Allow()) {  // at most one report per 10 s, however bad it gets
          XLOG_INFO("Sent batch of {} segments but had {} Unprocessed segments ({:.3f} seconds)", n, rejected,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          for (const auto& u : *unprocessed)
            XLOG_ERROR("Unprocessed trace {}, segment: {{ErrorCode: {}, Id: {}, Message: {}}}",
                       TraceIdOfSegment(batch.segments, u.id), u.error_code, u.id, u.message);
        }
        return;
      }
      XLOG_DEBUG("Successfully sent batch of {} segments ({:.3f} s)", n,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      return;
    }
    error = response ? ClassifyErrorResponse(*response) : response.error();
    CountOutcome(error);
    m.CountBackendError(response ? BackendErrorForStatus(response->status) : BackendErrorForTransport(error.transport));
    if (!error.IsRetryable()) {
      m.Fail(FailReason::kPermanentError, n);
      XLOG_ERROR("PutTraceSegments refused a batch of {} segments: {} {}", n, error.message,
                 response ? response->body.substr(0, 256) : std::string());
      return;
    }
    if (attempt >= options_.retry.max_attempts) {
      m.Fail(FailReason::kRetriesExhausted, n);
      XLOG_ERROR("Dropping a batch of {} segments after {} attempts: {}", n, attempt, error.message);
      return;
    }
    // Full jitter: sleep a uniform time in [0, backoff], at least what the server asked for.
    std::uniform_int_distribution<int64_t> jitter(0, backoff.count());
    std::chrono::milliseconds wait(jitter(rng));
    if (error.retry_after && *error.retry_after > wait) wait = std::min(*error.retry_after, options_.retry.max_backoff);
    if (failure_log_.Allow())
      XLOG_WARN("PutTraceSegments failed ({}); retrying a batch of {} in {} ms (attempt {}/{})", error.message, n,
                wait.count(), attempt, options_.retry.max_attempts);
    m.export_retries.fetch_add(1, std::memory_order_relaxed);
    if (!SleepUnlessAborted(wait)) {
      m.Fail(FailReason::kShutdown, n);
      return;
    }
    backoff = std::min(backoff * 2, options_.retry.max_backoff);
  }
}

}  // namespace xrayd::xray
