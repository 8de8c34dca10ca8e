// StoreExporter: drains the SegmentBuffer into the embedded TraceStore (`xrayd serve`).
//
// Owns one thread (xrayd-store): PopBatch → merge ready batches up to kMaxSegmentsPerAppend →
// TraceStore::Append → Release. What happens to a batch, and how it is counted:
//   - stored: segments_sent; documents the store refuses (segment rules): failed{permanent_error}.
//   - a retryable store error (busy, locked, disk full, I/O): the batch is kept and retried after
//     a backoff (initial_backoff, doubling up to max_backoff) for up to max_attempts tries, then
//     given up as failed{retries_exhausted}. Meanwhile the buffer keeps bounding memory: new
//     segments that do not fit are spilled (counted) at ingest, never dropped unseen here.
//   - a permanent store error (read-only, corrupt): failed{permanent_error} at once.
// Every failure is logged with the store's message; store errors are also counted by the store's
// on_error hook (xrayd_store_errors_total).
//
// Shutdown order: the owner stops ingest, then Stop(grace) closes the buffer and lets the thread
// drain for up to `grace` (a retry backoff in progress keeps going); then it aborts: the backoff
// wait is interrupted at once (a condition variable, no polling), the batch in hand is counted as
// failed{shutdown}, and so is everything still queued. Stop() joins and is idempotent.
#pragma once

#include <chrono>
#include <condition_variable>
#include <optional>
#include <thread>

#include "buffer/segment_buffer.h"
#include "common/thread_annotations.h"
#include "store/trace_store.h"

namespace xrayd {

struct StoreExporterOptions {
  int max_attempts = 10;  // 9 waits: 0.1 + 0.2 + ... + 5 s ≈ 21 s with the default backoff
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

// One transaction per few thousand segments, not per batch of 50: SQLite's cost is per commit.
inline constexpr size_t kMaxSegmentsPerAppend = 2000;

class StoreExporter {
 public:
  StoreExporter(SegmentBuffer& buffer, store::TraceStore& store, StoreExporterOptions options = {})
      : options_(options), buffer_(buffer), store_(store) {}
  ~StoreExporter() { Stop(std::chrono::milliseconds(0)); }
  StoreExporter(const StoreExporter&) = delete;
  StoreExporter& operator=(const StoreExporter&) = delete;

  void Start();
  void Stop(std::chrono::milliseconds grace) XRAYD_EXCLUDES(mu_);

 private:
  void Run() XRAYD_EXCLUDES(mu_);
  std::optional<Batch> NextBatch();
  // Appends with retries; counts the outcome.
  void Deliver(const Batch& batch) XRAYD_EXCLUDES(mu_);
  // Sleeps `d` unless Stop() aborts first; false when aborted.
  bool WaitUnlessAborted(std::chrono::milliseconds d) XRAYD_EXCLUDES(mu_);

  // Constant after construction.
  const StoreExporterOptions options_;
  SegmentBuffer& buffer_;
  store::TraceStore& store_;
  std::thread thread_;  // started by Start(), joined by Stop()

  // State below is protected by mu_; cv_ signals changes to it.
  Mutex mu_;
  std::condition_variable cv_;
  bool aborting_ XRAYD_GUARDED_BY(mu_) = false;  // Stop(): give up what is left now
  bool done_ XRAYD_GUARDED_BY(mu_) = false;      // Run() has returned
};

}  // namespace xrayd
