// StoreExporter: drains the SegmentBuffer into the embedded TraceStore (`xrayd serve`).
//
// Owns one thread: PopBatch → TraceStore::Append → Release. A store error (disk full, I/O) is
// retried with backoff while the buffer keeps bounding memory; documents the store refuses are
// counted as failed{permanent_error}.
//
// Shutdown order: the owner closes the buffer, then Stop(grace) drains for up to `grace`, then
// abandons what is left (counted as failed{shutdown}) and joins. Stop() is idempotent.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

#include "buffer/segment_buffer.h"
#include "store/trace_store.h"

namespace xrayd {

class StoreExporter {
 public:
  StoreExporter(SegmentBuffer& buffer, store::TraceStore& store) : buffer_(buffer), store_(store) {}
  ~StoreExporter() { Stop(std::chrono::milliseconds(0)); }

  void Start();
  void Stop(std::chrono::milliseconds grace);

 private:
  void Run();

  SegmentBuffer& buffer_;
  store::TraceStore& store_;
  std::thread thread_;
  std::atomic<bool> aborting_{false};
  std::atomic<bool> done_{false};
};

}  // namespace xrayd
