// StoreSender: the embedded TraceStore's BatchSender (`xrayd serve`) — one Append() per Send().
//
// Classification: stored → kDelivered, with the documents the store's segment rules refuse as
// `refused`; a retryable store error (busy, locked, disk full, I/O) → kRetryable (the pipeline
// backs off and retries; new segments meanwhile wait in the queue or the spool); a permanent one
// (read-only, corrupt) → kPermanent. Store errors are also counted by the store's on_error hook
// (xrayd_store_errors_total) and logged here.
//
// Thread-safe (the store serializes its writers); owns no thread. Abort() is a no-op: one Append
// is bounded by SQLite's busy timeout.
//
// Priority: the first Send() on a thread raises that thread's nice value by kSenderNiceIncrement
// (Linux: per thread). On a busy machine the receivers then get the CPU first and a backlog
// waits in the exporter's queue (bounded by -m, overflow dropped and counted), rather than the
// store's work starving the UDP receive thread into kernel drops of datagrams the store would
// have caught up with.
#pragma once

#include "common/log.h"
#include "pipeline/batch_sender.h"
#include "store/trace_store.h"

namespace xrayd {

// Up to this many segments per transaction, not one per batch of 50 (the store exporter's
// merge_max_segments; a sender merges only what is already queued, so a store that keeps up
// commits small batches at once). SQLite pays per commit and per distinct page a commit dirties:
// 8000-segment transactions took 1.6x the segments per CPU-second of 2000-segment ones with
// trace start times spread over hours (bench/store_ingest_bench.cc, issue 14).
inline constexpr size_t kMaxSegmentsPerAppend = 10000;

// Senders (threads) the store exporter runs: two Appends overlap (one prepares its batch while
// the other writes), more would only queue on the store's write lock.
inline constexpr int kStoreSenders = 2;
inline constexpr int kSenderNiceIncrement = 5;

class StoreSender : public pipeline::BatchSender {
 public:
  explicit StoreSender(store::TraceStore& store) : store_(store) {}
  std::string_view name() const override { return "store"; }
  pipeline::SendOutcome Send(const std::vector<std::string>& segments) override;

 private:
  store::TraceStore& store_;
  log::RateLimiter refused_log_{std::chrono::seconds(10)};
};

}  // namespace xrayd
