// SegmentBuffer: the bounded hand-off between ingest and the exporters.
//
// Thread-safe. A segment is *held* from the moment Push() accepts it until the exporter calls
// Release() for the batch that carried it (delivered, spooled or given up on). The bytes held never
// exceed the capacity: what a Push() cannot fit is handed back to the caller (pipeline::Exporter
// then makes room with TakeOldest(): spools or drops the oldest batch, counted), so memory stays
// bounded whatever the receivers offer and however slow the destination is.
//
// Segments are grouped into batches of at most max_batch_segments. A full batch is ready at once;
// a partial one becomes ready when its oldest segment has waited flush_interval, so a trickle of
// traffic still reaches X-Ray within that delay.
//
// Close() ends intake; PopBatch() then hands out what is left and returns nullopt when empty.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "common/thread_annotations.h"

namespace xrayd {

using SteadyTime = std::chrono::steady_clock::time_point;

struct Batch {
  std::vector<std::string> segments;
  size_t bytes = 0;  // accounted size (see SegmentBuffer::AccountedSize)
  SteadyTime sealed{};  // when it became ready (set by the buffer)
};

struct BufferOptions {
  size_t capacity_bytes = 16 * 1024 * 1024;
  size_t max_batch_segments = 50;  // PutTraceSegments' documented maximum per call
  std::chrono::milliseconds flush_interval{1000};
  // Update the process-wide buffer gauges (xrayd_buffer_*); one buffer in the process does.
  bool global_gauges = true;
};

class SegmentBuffer {
 public:
  // How long a ready batch waits before a popper taking another wakes one more popper for it.
  static constexpr std::chrono::milliseconds kHandOnAfter{2};

  explicit SegmentBuffer(BufferOptions options);
  SegmentBuffer(const SegmentBuffer&) = delete;
  SegmentBuffer& operator=(const SegmentBuffer&) = delete;

  // When the documents a Push() leaves in a partial batch become ready.
  enum class Seal {
    kWhenFull,  // full, or after flush_interval (the usual batching)
    kNow,       // at once: a caller waits for these documents (pipeline::WaitingSink), so the
                // partial batch must not sit out the flush interval (50 ms for the store: a
                // PutTraceSegments request of fewer than 50 documents took 50 ms)
  };

  // Takes ownership of the documents that fit, in order; those that do not are left in
  // `segments` (in order), for the caller to account. Returns the number accepted. After Close(),
  // nothing is accepted.
  size_t Push(std::vector<std::string>& segments, SteadyTime now = std::chrono::steady_clock::now(),
              Seal seal = Seal::kWhenFull);
  // All or none, for a caller that can tell its client "later" (PutTraceSegments in `xrayd serve`)
  // instead of making room by dropping what is queued: waits until every document of `segments`
  // fits at once (Release() frees room) or `deadline`, then takes them all as Push() does and
  // returns true; else takes none (`segments` untouched) and returns false — at once when they
  // could never fit, or after Close().
  bool PushAllOrNone(std::vector<std::string>& segments, SteadyTime deadline, Seal seal);

  // Blocks until a batch is ready or the buffer is closed and empty (nullopt).
  std::optional<Batch> PopBatch();
  // As PopBatch(), but also returns nullopt at `deadline` or when Kick() is called meanwhile
  // (PopBatchUntil(SteadyTime::max()) is PopBatch(), which Kick() does not end).
  // Push() wakes one popper however many batches it sealed. A popper that takes a batch while the
  // next one has been ready for kHandOnAfter wakes one more (which does the same), so batches that
  // wait are taken by as many senders as needed, one wakeup at a time; batches taken sooner than
  // that are left to the senders already awake. Against a fast destination one sender then sends a
  // burst of batches back to back instead of one wakeup (two context switches) per batch; against
  // a slow one the senders fan out once batches start to wait.
  std::optional<Batch> PopBatchUntil(SteadyTime deadline);
  // Wakes PopBatchUntil() callers (they return nullopt): there is other work for them.
  void Kick();
  // The oldest batch still queued, ready or not (the open one is sealed if nothing else is queued);
  // nullopt when nothing is queued. The caller owns it like a popped batch (Release it).
  std::optional<Batch> TakeOldest();
  // Closed, and nothing queued (batches popped but not released may still be in flight).
  bool Drained() const;
  // Non-blocking: a batch ready at `now`, if any (after Close(), any partial batch is ready).
  std::optional<Batch> TryPopBatch(SteadyTime now);

  // Frees the batch's bytes. Every popped batch must be released exactly once.
  void Release(const Batch& batch);

  void Close();
  // Wakes PopBatch() waiters so they return nullopt even if data remains (abandoning it).
  void Abort();

  size_t capacity_bytes() const { return options_.capacity_bytes; }
  size_t held_bytes() const;
  size_t queued_segments() const;

  // What one document costs against the bound: its bytes plus bookkeeping.
  static size_t AccountedSize(const std::string& s) { return s.capacity() + sizeof(std::string) + 16; }

 private:
  std::optional<Batch> TakeReadyLocked(SteadyTime now) XRAYD_REQUIRES(mu_);
  // Push()'s work under mu_: returns the number accepted, adds their bytes to *accepted_bytes and
  // sets *notify when a popper must wake; what does not fit is left in `segments`.
  size_t PushLocked(std::vector<std::string>& segments, SteadyTime now, Seal seal, size_t* accepted_bytes,
                    bool* notify) XRAYD_REQUIRES(mu_);
  // Publishes a push's effect: the process-wide gauges and one popper's wakeup.
  void AfterPush(size_t accepted, size_t accepted_bytes, bool notify);
  void SealOpenLocked(SteadyTime now) XRAYD_REQUIRES(mu_);
  // Waits on cv_ until `until` (max: untimed) or a notify, keeping waiters_ and latest_wake_.
  void WaitLocked(MutexLock& lock, SteadyTime until) XRAYD_REQUIRES(mu_);

  // Constant after construction (max_batch_segments is at least 1).
  const BufferOptions options_;

  mutable Mutex mu_;
  std::condition_variable cv_;  // waits on mu_: a batch became ready, or the flush deadline moved
  std::condition_variable room_cv_;  // waits on mu_: Release() freed bytes, or Close()/Abort()
  int room_waiters_ XRAYD_GUARDED_BY(mu_) = 0;
  std::deque<Batch> ready_ XRAYD_GUARDED_BY(mu_);
  Batch open_ XRAYD_GUARDED_BY(mu_);
  SteadyTime open_since_ XRAYD_GUARDED_BY(mu_){};
  size_t held_bytes_ XRAYD_GUARDED_BY(mu_) = 0;
  size_t queued_segments_ XRAYD_GUARDED_BY(mu_) = 0;
  bool closed_ XRAYD_GUARDED_BY(mu_) = false;
  uint64_t kicks_ XRAYD_GUARDED_BY(mu_) = 0;
  bool aborted_ XRAYD_GUARDED_BY(mu_) = false;
  // Poppers waiting now, and the latest time any of them will wake on its own (kept while any waits;
  // max for an untimed wait). Push() opening a batch wakes one only if it would sleep past the new
  // batch's flush deadline: at 20k segments/s that saves a futile wakeup per batch.
  int waiters_ XRAYD_GUARDED_BY(mu_) = 0;
  SteadyTime latest_wake_ XRAYD_GUARDED_BY(mu_) = SteadyTime::min();
};

}  // namespace xrayd
