#include "export/store/store_exporter.h"

#include "common/log.h"
#include "telemetry/metrics.h"
#include "common/thread_name.h"

namespace xrayd {

void StoreExporter::Start() { thread_ = std::thread([this] { Run(); }); }

void StoreExporter::Stop(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return;
  buffer_.Close();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!done_ && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  aborting_ = true;
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
  while (auto batch = buffer_.PopBatch()) {
    // One transaction per few thousand segments, not per batch of 50: SQLite's cost is per commit.
    while (batch->segments.size() < 2000) {
      auto more = buffer_.TryPopBatch(std::chrono::steady_clock::now());
      if (!more) break;
      batch->bytes += more->bytes;
      for (auto& s : more->segments) batch->segments.push_back(std::move(s));
    }
    m.batches_in_flight.fetch_add(1, std::memory_order_relaxed);
    auto backoff = std::chrono::milliseconds(100);
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      auto result = store_.Append(batch->segments);
      m.export_latency.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (result) {
        m.segments_sent.fetch_add(batch->segments.size() - result->size(), std::memory_order_relaxed);
        if (!result->empty()) m.Fail(FailReason::kPermanentError, result->size());
        break;
      }
      XLOG_ERROR("Trace store write failed ({}); retrying in {} ms", result.error().message, backoff.count());
      if (aborting_) {
        m.Fail(FailReason::kShutdown, batch->segments.size());
        break;
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
    buffer_.Release(*batch);
    m.batches_in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  done_ = true;
}

}  // namespace xrayd
