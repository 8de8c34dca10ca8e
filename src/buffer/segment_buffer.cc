#include "buffer/segment_buffer.h"

#include <algorithm>

#include "telemetry/metrics.h"

namespace xrayd {
namespace {

constexpr size_t kReserveSegments = 256;

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

size_t SegmentBuffer::Push(std::vector<std::string>& segments, SteadyTime now, Seal seal) {
  size_t accepted = 0, accepted_bytes = 0;
  bool notify = false;
  {
    MutexLock lock(mu_);
    accepted = PushLocked(segments, now, seal, &accepted_bytes, &notify);
  }
  AfterPush(accepted, accepted_bytes, notify);
  return accepted;
}

bool SegmentBuffer::PushAllOrNone(std::vector<std::string>& segments, SteadyTime deadline, Seal seal) {
  size_t need = 0;
  for (const auto& s : segments) need += AccountedSize(s);
  if (need > options_.capacity_bytes) return false;
  size_t accepted = 0, accepted_bytes = 0;
  bool notify = false;
  {
    MutexLock lock(mu_);
    ++room_waiters_;
    while (!closed_ && held_bytes_ + need > options_.capacity_bytes && std::chrono::steady_clock::now() < deadline)
      lock.WaitOnceUntil(room_cv_, deadline);
    --room_waiters_;
    if (closed_ || held_bytes_ + need > options_.capacity_bytes) return false;
    accepted = PushLocked(segments, std::chrono::steady_clock::now(), seal, &accepted_bytes, &notify);
  }
  AfterPush(accepted, accepted_bytes, notify);
  return true;
}

size_t SegmentBuffer::PushLocked(std::vector<std::string>& segments, SteadyTime now, Seal seal,
                                 size_t* accepted_bytes, bool* notify) {
  size_t accepted = 0, refused = 0;
  for (auto& s : segments) {
    const size_t cost = AccountedSize(s);
    if (closed_ || held_bytes_ + cost > options_.capacity_bytes) {
      if (&segments[refused] != &s) segments[refused] = std::move(s);
      ++refused;
      continue;
    }
    held_bytes_ += cost;
    *accepted_bytes += cost;
    if (open_.segments.empty()) {
      open_since_ = now;
      // One allocation per batch instead of one per doubling (a batch is usually filled).
      open_.segments.reserve(std::min<size_t>(options_.max_batch_segments, kReserveSegments));
      // A waiter sleeping past the new batch's flush deadline must wake to wait for it instead;
      // one that wakes before it anyway (the exporter's waits are bounded) is left asleep.
      if (waiters_ > 0 && latest_wake_ > now + options_.flush_interval) *notify = true;
    }
    open_.segments.push_back(std::move(s));
    open_.bytes += cost;
    ++accepted;
    if (open_.segments.size() >= options_.max_batch_segments) {
      SealOpenLocked(now);
      *notify = true;
    }
  }
  if (seal == Seal::kNow && accepted > 0 && !open_.segments.empty()) {
    SealOpenLocked(now);
    *notify = true;
  }
  queued_segments_ += accepted;
  segments.resize(refused);
  return accepted;
}

void SegmentBuffer::AfterPush(size_t accepted, size_t accepted_bytes, bool notify) {
  if (options_.global_gauges) {
    auto& m = GlobalMetrics();
    m.buffer_bytes.fetch_add(static_cast<int64_t>(accepted_bytes), std::memory_order_relaxed);
    m.buffer_segments.fetch_add(static_cast<int64_t>(accepted), std::memory_order_relaxed);
  }
  // One sender per event: a sealed batch needs one taker (which wakes the next while more are ready,
  // see PopBatchUntil), and a newly opened batch needs one sender to start the flush-interval wait.
  // Waking one per batch at once would have them all contend for mu_ (a futex each).
  if (notify) cv_.notify_one();
}

void SegmentBuffer::SealOpenLocked(SteadyTime now) {
  open_.sealed = now;
  ready_.push_back(std::move(open_));
  open_ = Batch{};
}

std::optional<Batch> SegmentBuffer::TakeReadyLocked(SteadyTime now) {
  if (ready_.empty() && !open_.segments.empty() && (closed_ || now - open_since_ >= options_.flush_interval))
    SealOpenLocked(now);
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

std::optional<Batch> SegmentBuffer::PopBatch() { return PopBatchUntil(SteadyTime::max()); }

std::optional<Batch> SegmentBuffer::PopBatchUntil(SteadyTime deadline) {
  std::optional<Batch> batch;
  bool wake_next = false;
  {
    MutexLock lock(mu_);
    const uint64_t kicks = kicks_;
    SteadyTime now;
    for (;;) {
      if (aborted_ || (deadline != SteadyTime::max() && kicks_ != kicks)) return std::nullopt;
      now = std::chrono::steady_clock::now();
      if ((batch = TakeReadyLocked(now))) break;
      if (closed_ || now >= deadline) return std::nullopt;  // closed: nothing left
      SteadyTime until = deadline;
      if (!open_.segments.empty()) until = std::min(until, open_since_ + options_.flush_interval);
      WaitLocked(lock, until);
    }
    // The next batch has waited, and someone is asleep: pass the wakeup on (see the header).
    wake_next = !ready_.empty() && waiters_ > 0 && now - ready_.front().sealed >= kHandOnAfter;
  }
  if (wake_next) cv_.notify_one();
  return batch;
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
  if (ready_.empty() && !open_.segments.empty()) SealOpenLocked(std::chrono::steady_clock::now());
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
  bool room_waited = false;
  {
    MutexLock lock(mu_);
    held_bytes_ -= batch.bytes;
    room_waited = room_waiters_ > 0;
  }
  if (room_waited) room_cv_.notify_all();
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
  room_cv_.notify_all();
}

void SegmentBuffer::Abort() {
  {
    MutexLock lock(mu_);
    closed_ = true;
    aborted_ = true;
  }
  cv_.notify_all();
  room_cv_.notify_all();
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
