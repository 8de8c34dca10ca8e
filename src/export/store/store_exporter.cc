#include "export/store/store_exporter.h"

#include <algorithm>

#include "common/log.h"
#include "common/thread_name.h"
#include "telemetry/metrics.h"

namespace xrayd {

void StoreExporter::Start() { thread_ = std::thread([this] { Run(); }); }

void StoreExporter::Stop(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return;
  buffer_.Close();
  {
    MutexLock lock(mu_);
    lock.WaitFor(cv_, grace, [this]() XRAYD_NO_THREAD_SAFETY_ANALYSIS { return done_; });
    aborting_ = true;
  }
  cv_.notify_all();
  buffer_.Abort();
  thread_.join();
  while (auto batch = buffer_.TryPopBatch(std::chrono::steady_clock::now())) {
    GlobalMetrics().Fail(FailReason::kShutdown, batch->segments.size());
    buffer_.Release(*batch);
  }
}

void StoreExporter::Run() {
  NameThisThread("xrayd-store");
  auto& m = GlobalMetrics();
  while (auto batch = NextBatch()) {
    m.batches_in_flight.fetch_add(1, std::memory_order_relaxed);
    Deliver(*batch);
    buffer_.Release(*batch);
    m.batches_in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  {
    MutexLock lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
}

std::optional<Batch> StoreExporter::NextBatch() {
  auto batch = buffer_.PopBatch();
  while (batch && batch->segments.size() < kMaxSegmentsPerAppend) {
    auto more = buffer_.TryPopBatch(std::chrono::steady_clock::now());
    if (!more) break;
    batch->bytes += more->bytes;
    for (auto& s : more->segments) batch->segments.push_back(std::move(s));
  }
  return batch;
}

void StoreExporter::Deliver(const Batch& batch) {
  auto& m = GlobalMetrics();
  const size_t n = batch.segments.size();
  auto backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    const auto t0 = std::chrono::steady_clock::now();
    auto result = store_.Append(batch.segments);
    m.export_latency.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (result) {
      m.segments_sent.fetch_add(n - result->size(), std::memory_order_relaxed);
      if (!result->empty()) {
        XLOG_WARN("Trace store refused {} of {} segments (first: {})", result->size(), n, result->front().second);
        m.Fail(FailReason::kPermanentError, result->size());
      }
      return;
    }
    const Error& e = result.error();
    if (!e.IsRetryable()) {
      XLOG_ERROR("Trace store refused {} segments for good: {}", n, e.message);
      m.Fail(FailReason::kPermanentError, n);
      return;
    }
    if (attempt >= options_.max_attempts) {
      XLOG_ERROR("Trace store write failed {} times, giving up {} segments: {}", attempt, n, e.message);
      m.Fail(FailReason::kRetriesExhausted, n);
      return;
    }
    XLOG_WARN("Trace store write failed ({}); retry {} in {} ms", e.message, attempt, backoff.count());
    m.export_retries.fetch_add(1, std::memory_order_relaxed);
    if (!WaitUnlessAborted(backoff)) {
      m.Fail(FailReason::kShutdown, n);
      return;
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool StoreExporter::WaitUnlessAborted(std::chrono::milliseconds d) {
  MutexLock lock(mu_);
  return !lock.WaitFor(cv_, d, [this]() XRAYD_NO_THREAD_SAFETY_ANALYSIS { return aborting_; });
}

}  // namespace xrayd
