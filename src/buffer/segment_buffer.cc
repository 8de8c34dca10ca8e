#include "buffer/segment_buffer.h"

#include "telemetry/metrics.h"

namespace xrayd {

SegmentBuffer::SegmentBuffer(BufferOptions options) : options_(options) {
  if (options_.max_batch_segments == 0) const_cast<BufferOptions&>(options_).max_batch_segments = 1;
  GlobalMetrics().buffer_capacity_bytes.store(static_cast<int64_t>(options_.capacity_bytes));
}

size_t SegmentBuffer::Push(std::vector<std::string>& segments, SteadyTime now) {
  size_t accepted = 0, accepted_bytes = 0;
  bool notify = false;
  {
    std::lock_guard lock(mu_);
    for (auto& s : segments) {
      const size_t cost = AccountedSize(s);
      if (closed_ || held_bytes_ + cost > options_.capacity_bytes) continue;
      held_bytes_ += cost;
      accepted_bytes += cost;
      if (open_.segments.empty()) {
        open_since_ = now;
        notify = true;  // waiters sleeping untimed must now wait for the flush deadline
      }
      open_.segments.push_back(std::move(s));
      open_.bytes += cost;
      ++accepted;
      if (open_.segments.size() >= options_.max_batch_segments) {
        SealOpenLocked();
        notify = true;
      }
    }
    queued_segments_ += accepted;
  }
  auto& m = GlobalMetrics();
  m.buffer_bytes.fetch_add(static_cast<int64_t>(accepted_bytes), std::memory_order_relaxed);
  m.buffer_segments.fetch_add(static_cast<int64_t>(accepted), std::memory_order_relaxed);
  if (accepted < segments.size()) m.segments_spilled.fetch_add(segments.size() - accepted, std::memory_order_relaxed);
  segments.clear();
  // One sender per event is enough: a sealed batch needs one taker, and a newly opened batch
  // needs one sender to start the flush-interval wait. Waking all of them costs a context
  // switch per sender per batch.
  if (notify) cv_.notify_one();
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
  std::lock_guard lock(mu_);
  return TakeReadyLocked(now);
}

std::optional<Batch> SegmentBuffer::PopBatch() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (aborted_) return std::nullopt;
    if (auto b = TakeReadyLocked(std::chrono::steady_clock::now())) return b;
    if (closed_) return std::nullopt;  // closed and nothing left
    if (open_.segments.empty()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, open_since_ + options_.flush_interval);
    }
  }
}

void SegmentBuffer::Release(const Batch& batch) {
  {
    std::lock_guard lock(mu_);
    held_bytes_ -= batch.bytes;
  }
  auto& m = GlobalMetrics();
  m.buffer_bytes.fetch_sub(static_cast<int64_t>(batch.bytes), std::memory_order_relaxed);
  m.buffer_segments.fetch_sub(static_cast<int64_t>(batch.segments.size()), std::memory_order_relaxed);
}

void SegmentBuffer::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void SegmentBuffer::Abort() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    aborted_ = true;
  }
  cv_.notify_all();
}

size_t SegmentBuffer::held_bytes() const {
  std::lock_guard lock(mu_);
  return held_bytes_;
}

size_t SegmentBuffer::queued_segments() const {
  std::lock_guard lock(mu_);
  return queued_segments_;
}

}  // namespace xrayd
