#include "buffer/segment_buffer.h"

#include <algorithm>

#include "telemetry/metrics.h"

namespace xrayd {
namespace {

// A batch holds at least one segment, whatever the configuration says.
BufferOptions Normalized(BufferOptions o) {
  if (o.max_batch_segments == 0) o.max_batch_segments = 1;
  return o;
}

}  // namespace

SegmentBuffer::SegmentBuffer(BufferOptions options) : options_(Normalized(options)) {
  if (options_.global_gauges)
    GlobalMetrics().buffer_capacity_bytes.store(static_cast<int64_t>(options_.capacity_bytes));
}

size_t SegmentBuffer::Push(std::vector<std::string>& segments, SteadyTime now) {
  size_t accepted = 0, accepted_bytes = 0, refused = 0;
  int notify = 0;  // senders to wake
  {
    MutexLock lock(mu_);
    for (auto& s : segments) {
      const size_t cost = AccountedSize(s);
      if (closed_ || held_bytes_ + cost > options_.capacity_bytes) {
        if (&segments[refused] != &s) segments[refused] = std::move(s);
        ++refused;
        continue;
      }
      held_bytes_ += cost;
      accepted_bytes += cost;
      if (open_.segments.empty()) {
        open_since_ = now;
        // A waiter sleeping past the new batch's flush deadline must wake to wait for it instead;
        // one that wakes before it anyway (the exporter's waits are bounded) is left asleep.
        if (waiters_ > 0 && latest_wake_ > now + options_.flush_interval) notify = std::max(notify, 1);
      }
      open_.segments.push_back(std::move(s));
      open_.bytes += cost;
      ++accepted;
      if (open_.segments.size() >= options_.max_batch_segments) {
        SealOpenLocked();
        ++notify;
      }
    }
    queued_segments_ += accepted;
    notify = std::min(notify, waiters_);
  }
  if (options_.global_gauges) {
    auto& m = GlobalMetrics();
    m.buffer_bytes.fetch_add(static_cast<int64_t>(accepted_bytes), std::memory_order_relaxed);
    m.buffer_segments.fetch_add(static_cast<int64_t>(accepted), std::memory_order_relaxed);
  }
  segments.resize(refused);
  // One sender per sealed batch (each batch needs one taker, and against a distant endpoint the
  // senders' requests must overlap), and one for a newly opened batch to start the flush-interval
  // wait; never more than are waiting. Waking all of them costs a context switch per sender.
  for (int i = 0; i < notify; ++i) cv_.notify_one();
  return accepted;
}

void SegmentBuffer::SealOpenLocked() {
  ready_.push_back(std::move(open_));
  open_ = Batch{};
}

std::optional<Batch> SegmentBuffer::TakeReadyLocked(SteadyTime now) {
  if (ready_.empty() && !open_.segments.empty() && (closed_ || now - open_since_ >= options_.flush_interval))
    SealOpenLocked();
  if (ready_.empty()) return std::nullopt;
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  queued_segments_ -= b.segments.size();
  return b;
}

std::optional<Batch> SegmentBuffer::TryPopBatch(SteadyTime now) {
  MutexLock lock(mu_);
  return TakeReadyLocked(now);
}

std::optional<Batch> SegmentBuffer::PopBatch() {
  MutexLock lock(mu_);
  for (;;) {
    if (aborted_) return std::nullopt;
    if (auto b = TakeReadyLocked(std::chrono::steady_clock::now())) return b;
    if (closed_) return std::nullopt;  // closed and nothing left
    WaitLocked(lock, open_.segments.empty() ? SteadyTime::max() : open_since_ + options_.flush_interval);
  }
}

std::optional<Batch> SegmentBuffer::PopBatchUntil(SteadyTime deadline) {
  MutexLock lock(mu_);
  const uint64_t kicks = kicks_;
  for (;;) {
    if (aborted_ || kicks_ != kicks) return std::nullopt;
    const auto now = std::chrono::steady_clock::now();
    if (auto b = TakeReadyLocked(now)) return b;
    if (closed_ || now >= deadline) return std::nullopt;
    SteadyTime until = deadline;
    if (!open_.segments.empty()) until = std::min(until, open_since_ + options_.flush_interval);
    WaitLocked(lock, until);
  }
}

void SegmentBuffer::WaitLocked(MutexLock& lock, SteadyTime until) {
  ++waiters_;
  latest_wake_ = std::max(latest_wake_, until);
  if (until == SteadyTime::max()) {
    lock.WaitOnce(cv_);
  } else {
    lock.WaitOnceUntil(cv_, until);
  }
  if (--waiters_ == 0) latest_wake_ = SteadyTime::min();
}

void SegmentBuffer::Kick() {
  {
    MutexLock lock(mu_);
    ++kicks_;
  }
  cv_.notify_all();
}

std::optional<Batch> SegmentBuffer::TakeOldest() {
  MutexLock lock(mu_);
  if (ready_.empty() && !open_.segments.empty()) SealOpenLocked();
  if (ready_.empty()) return std::nullopt;
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  queued_segments_ -= b.segments.size();
  return b;
}

bool SegmentBuffer::Drained() const {
  MutexLock lock(mu_);
  return closed_ && ready_.empty() && open_.segments.empty();
}

void SegmentBuffer::Release(const Batch& batch) {
  {
    MutexLock lock(mu_);
    held_bytes_ -= batch.bytes;
  }
  if (!options_.global_gauges) return;
  auto& m = GlobalMetrics();
  m.buffer_bytes.fetch_sub(static_cast<int64_t>(batch.bytes), std::memory_order_relaxed);
  m.buffer_segments.fetch_sub(static_cast<int64_t>(batch.segments.size()), std::memory_order_relaxed);
}

void SegmentBuffer::Close() {
  {
    MutexLock lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void SegmentBuffer::Abort() {
  {
    MutexLock lock(mu_);
    closed_ = true;
    aborted_ = true;
  }
  cv_.notify_all();
}

size_t SegmentBuffer::held_bytes() const {
  MutexLock lock(mu_);
  return held_bytes_;
}

size_t SegmentBuffer::queued_segments() const {
  MutexLock lock(mu_);
  return queued_segments_;
}

}  // namespace xrayd
