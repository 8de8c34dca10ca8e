#include "export/xray/xray_sender.h"

#include "export/xray/put_trace_segments.h"
#include "telemetry/metrics.h"

namespace xrayd::xray {
namespace {

using pipeline::SendOutcome;

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

Result<std::unique_ptr<XraySender>> XraySender::Create(SenderOptions options, aws::CredentialsProvider* credentials) {
  auto xray = aws::SignedClient::Create(options.xray, credentials);
  if (!xray) return xray.error();
  return std::unique_ptr<XraySender>(new XraySender(std::move(options), std::move(*xray)));
}

XraySender::XraySender(SenderOptions options, std::shared_ptr<const aws::SignedClient> xray)
    : options_(std::move(options)), xray_(std::move(xray)), http_options_(options_.http) {
  http_options_.abort = &aborting_;
}

std::unique_ptr<XraySender::Slot> XraySender::TakeSlot() {
  {
    MutexLock lock(mu_);
    if (!idle_.empty()) {
      auto slot = std::move(idle_.back());
      idle_.pop_back();
      return slot;
    }
  }
  auto slot = std::make_unique<Slot>();
  slot->client = std::make_unique<http::Client>(http_options_);
  return slot;
}

void XraySender::ReturnSlot(std::unique_ptr<Slot> slot) {
  // A body far above the usual size (a batch of 64 KB documents) is not kept for the next request.
  constexpr size_t kKeepBodyBytes = 1 << 20;
  if (slot->body.capacity() > kKeepBodyBytes) std::string().swap(slot->body);
  MutexLock lock(mu_);
  idle_.push_back(std::move(slot));
}

SendOutcome XraySender::Send(const std::vector<std::string>& segments) {
  if (aborting_) return {SendOutcome::Kind::kRetryable, 0, std::nullopt, "shutting down"};
  auto& m = GlobalMetrics();
  const size_t n = segments.size();
  auto slot = TakeSlot();
  const auto t0 = std::chrono::steady_clock::now();
  BuildPutTraceSegmentsBody(segments, slot->body);
  Result<http::Response> response = xray_->PostLent(*slot->client, "/TraceSegments", slot->body);
  ReturnSlot(std::move(slot));
  const bool sent = response || response.error().transport != TransportError::kNoCredentials;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (sent) m.export_latency.Observe(seconds);

  if (response && response->status >= 200 && response->status < 300) {
    m.export_requests_ok.fetch_add(1, std::memory_order_relaxed);
    auto unprocessed = ParsePutTraceSegmentsResponse(response->body);
    const size_t rejected = unprocessed ? std::min(unprocessed->size(), n) : 0;
    if (rejected > 0 && unprocessed_log_.Allow()) {  // at most one report per 10 s, however bad it gets
      XLOG_INFO("Sent batch of {} segments but had {} Unprocessed segments ({:.3f} seconds)", n, rejected, seconds);
      for (const auto& u : *unprocessed)
        XLOG_ERROR("Unprocessed trace {}, segment: {{ErrorCode: {}, Id: {}, Message: {}}}",
                   TraceIdOfSegment(segments, u.id), u.error_code, u.id, u.message);
    } else if (rejected == 0) {
      XLOG_DEBUG("Successfully sent batch of {} segments ({:.3f} s)", n, seconds);
    }
    return {SendOutcome::Kind::kDelivered, rejected, std::nullopt, {}};
  }
  const Error error = response ? ClassifyErrorResponse(*response) : response.error();
  CountOutcome(error);
  m.CountBackendError(response ? BackendErrorForStatus(response->status) : BackendErrorForTransport(error.transport));
  std::string message = "PutTraceSegments: " + error.message;
  if (!error.IsRetryable()) {
    if (response) message += " " + response->body.substr(0, 256);
    return {SendOutcome::Kind::kPermanent, 0, std::nullopt, std::move(message)};
  }
  return {SendOutcome::Kind::kRetryable, 0, error.retry_after, std::move(message),
          error.kind == Error::Kind::kThrottled};
}

}  // namespace xrayd::xray
