#include "pipeline/exporter.h"

#include <algorithm>
#include <deque>
#include <filesystem>

#include "buffer/string_pool.h"
#include "common/log.h"
#include "common/thread_name.h"
#include "pipeline/spool_metrics.h"

namespace xrayd::pipeline {
namespace {

using std::chrono::milliseconds;

// The hand-off's bound (see ExporterOptions::spool_handoff_bytes).
size_t HandoffBound(const ExporterOptions& o) {
  if (o.spool_dir.empty()) return 0;
  return o.spool_handoff_bytes > 0 ? o.spool_handoff_bytes : std::max<size_t>(1, o.queue_bytes / 8);
}

// By default the hand-off's bound is taken from the memory queue's (`-m` stays a total).
BufferOptions BufferOf(const ExporterOptions& o) {
  BufferOptions b;
  b.capacity_bytes = o.queue_bytes - (o.spool_handoff_bytes > 0 ? 0 : HandoffBound(o));
  b.max_batch_segments = std::max<size_t>(1, o.max_batch_segments);
  b.flush_interval = o.flush_interval;
  b.global_gauges = o.global_metrics;
  return b;
}

// How a per-exporter drop reason shows in the process-wide counters (AWS-compatible telemetry).
void CountGlobalDrop(DropReason r, uint64_t n) {
  auto& m = GlobalMetrics();
  switch (r) {
    case DropReason::kQueueFull:
    case DropReason::kSpoolBusy:
    case DropReason::kSpoolFull: m.segments_spilled.fetch_add(n, std::memory_order_relaxed); break;
    case DropReason::kRefused: m.Fail(FailReason::kUnprocessed, n); break;
    case DropReason::kPermanent: m.Fail(FailReason::kPermanentError, n); break;
    case DropReason::kRetriesExhausted: m.Fail(FailReason::kRetriesExhausted, n); break;
    case DropReason::kShutdown: m.Fail(FailReason::kShutdown, n); break;
    case DropReason::kExpired: m.Fail(FailReason::kExpired, n); break;
    case DropReason::kSpoolCorrupt: m.Fail(FailReason::kSpoolCorrupt, n); break;
    case DropReason::kCount: break;
  }
}

size_t Idx(DropReason r) { return static_cast<size_t>(r); }
size_t Idx(SpoolErrorKind k) { return static_cast<size_t>(k); }

}  // namespace

struct Exporter::Outcome {
  Ending ending = Ending::kDone;
  size_t refused = 0;
  bool permanent = false;
};

Exporter::Exporter(ExporterOptions options, BatchSender& sender)
    : options_(std::move(options)),
      sender_(sender),
      metrics_(GlobalMetrics().ForExporter(sender.name())),
      buffer_(BufferOf(options_)),
      handoff_bound_(HandoffBound(options_)),
      backoff_(options_.retry.initial_backoff) {}

Exporter::~Exporter() { Stop(milliseconds(0)); }

void Exporter::Start() {
  {
    MutexLock lock(mu_);
    if (started_) return;
    started_ = true;
  }
  if (!options_.spool_dir.empty()) OpenSpool();
  if (spool_open_) spool_writer_ = std::thread([this] { SpoolWriterLoop(); });
  const int n = std::max(1, options_.senders);
  running_ = n;
  for (int i = 0; i < n; ++i) threads_.emplace_back([this, i] { SenderLoop(i); });
}

void Exporter::OpenSpool() {
  std::error_code ec;
  std::filesystem::create_directories(options_.spool_dir, ec);  // Open() reports what matters
  auto opened = Spool::Open(options_.spool_dir, options_.spool, options_.spool_env);
  if (!opened) {
    const bool newer = opened.error().kind == Error::Kind::kPermanent;
    const std::string why = opened.error().message;
    XLOG_ERROR("Exporter {}: spool {} unusable, running from memory only: {}", name(), options_.spool_dir, why);
    metrics_.Update([&](ExporterMetrics::Snapshot& s) {
      ++s.spool_errors[Idx(newer ? SpoolErrorKind::kNewerVersion : SpoolErrorKind::kOpen)];
      s.spool_problem = "spool " + options_.spool_dir + " unusable (" + why + "); running from memory";
    });
    return;
  }
  MutexLock lock(mu_);
  spool_ = std::move(*opened);
  spool_open_ = true;
  SpoolGauges::Instance().Add(std::string(name()), spool_.get());
  const SpoolStats st = spool_->stats();
  seen_ = SpoolStats{};
  seen_.recovered_segments = st.recovered_segments;
  // What an earlier run left is received again by this one: the identity holds per process.
  metrics_.Update([&](ExporterMetrics::Snapshot& s) {
    s.received += st.recovered_segments;
    s.spooled += static_cast<int64_t>(st.recovered_segments);
  });
  SyncSpoolStatsLocked();
  spool_unread_ = st.pending_records > 0;
  if (st.recovered_segments > 0)
    XLOG_INFO("Exporter {}: {} segments in {} batches recovered from spool {}; sending them first", name(),
              st.recovered_segments, st.recovered_records, options_.spool_dir);
}

size_t Exporter::Offer(std::vector<std::string>& documents, uint64_t* ticket) {
  const size_t n = documents.size();
  if (n == 0) return 0;
  // Counted as queued before they are: a sender may deliver them before Push() returns.
  metrics_.Update([&](ExporterMetrics::Snapshot& s) {
    s.received += n;
    s.queued += static_cast<int64_t>(n);
  });
  size_t kept = n;
  // A document larger than the whole queue can never fit: it must not evict everything queued.
  std::vector<std::string> oversize;
  for (auto it = documents.begin(); it != documents.end();) {
    if (SegmentBuffer::AccountedSize(*it) <= options_.queue_bytes) {
      ++it;
      continue;
    }
    oversize.push_back(std::move(*it));
    it = documents.erase(it);
  }
  if (!oversize.empty()) {
    const size_t count = oversize.size();
    kept -= count - HandOff(oversize);
  }
  // A caller that will wait for these documents (WaitingSink) gets them sent at once, not after
  // the flush interval.
  const auto seal = ticket ? SegmentBuffer::Seal::kNow : SegmentBuffer::Seal::kWhenFull;
  size_t pushed = buffer_.Push(documents, std::chrono::steady_clock::now(), seal);
  // No room: the oldest queued batch makes room (handed to the spool writer, or dropped), then try
  // again.
  while (!documents.empty()) {
    auto oldest = buffer_.TakeOldest();
    if (!oldest) {  // memory holds only batches in flight: these documents go straight on
      const size_t left = documents.size();
      kept -= left - HandOff(documents);
      break;
    }
    const size_t count = oldest->segments.size();
    std::vector<std::string> segments = std::move(oldest->segments);
    oldest->segments.resize(count);  // Release() reads the count (for the gauges)
    buffer_.Release(*oldest);        // its bytes now count against the hand-off's bound
    HandOff(segments);
    pushed += buffer_.Push(documents, std::chrono::steady_clock::now(), seal);
  }
  documents.clear();
  MutexLock lock(settle_mu_);
  offered_ += pushed;
  if (ticket) *ticket = offered_;
  return kept;
}

size_t Exporter::OfferAllOrNone(std::vector<std::string>& documents, uint64_t* ticket, milliseconds room_wait) {
  if (spool_usable()) return Offer(documents, ticket);
  const size_t n = documents.size();
  if (n == 0) return 0;
  // Counted before the push, as in Offer() (a sender may deliver them first); undone if refused.
  metrics_.Update([&](ExporterMetrics::Snapshot& s) {
    s.received += n;
    s.queued += static_cast<int64_t>(n);
  });
  if (!buffer_.PushAllOrNone(documents, std::chrono::steady_clock::now() + room_wait, SegmentBuffer::Seal::kNow)) {
    metrics_.Update([&](ExporterMetrics::Snapshot& s) {
      s.received -= n;
      s.queued -= static_cast<int64_t>(n);
    });
    return 0;
  }
  documents.clear();
  MutexLock lock(settle_mu_);
  offered_ += n;
  if (ticket) *ticket = offered_;
  return n;
}

bool Exporter::WaitSettled(uint64_t ticket, milliseconds timeout) {
  MutexLock lock(settle_mu_);
  return lock.WaitFor(settle_cv_, timeout,
                      [&]() XRAYD_REQUIRES(settle_mu_) { return left_memory_ >= ticket || settle_stopped_; });
}

void Exporter::LeftMemory(size_t segments) {
  {
    MutexLock lock(settle_mu_);
    left_memory_ += segments;
  }
  settle_cv_.notify_all();
}

void Exporter::DropQueued(size_t n, DropReason reason) {
  if (n == 0) return;
  metrics_.Update([&](ExporterMetrics::Snapshot& s) {
    s.queued -= static_cast<int64_t>(n);
    s.dropped[Idx(reason)] += n;
  });
  if (options_.global_metrics) CountGlobalDrop(reason, n);
  if (drop_log_.Allow())
    XLOG_WARN("Exporter {}: dropped {} segments ({}); see xrayd_exporter_dropped_total", name(), n, ToString(reason));
}

size_t Exporter::HandOff(std::vector<std::string>& segments) {
  const size_t n = segments.size();
  if (n == 0) return 0;
  if (!spool_open_) {
    segments.clear();
    DropQueued(n, DropReason::kQueueFull);
    LeftMemory(n);
    return 0;
  }
  HandedOff item;
  for (const auto& s : segments) item.bytes += SegmentBuffer::AccountedSize(s);
  item.segments = std::move(segments);
  segments.clear();
  size_t busy = 0;
  {
    MutexLock lock(handoff_mu_);
    if (handoff_closed_) {  // Offer() after Stop() began (a receiver still running): no writer left
      lock.Unlock();
      SpillToSpool(item.segments, DropReason::kShutdown, /*from_memory=*/true);
      LeftMemory(n);
      return n;
    }
    // Oldest first, as memory makes room; a batch larger than the bound alone still goes through.
    while (!handoff_.empty() && handoff_bytes_ + item.bytes > handoff_bound_) {
      busy += handoff_.front().segments.size();
      handoff_bytes_ -= handoff_.front().bytes;
      handoff_.pop_front();
    }
    handoff_bytes_ += item.bytes;
    handoff_.push_back(std::move(item));
  }
  handoff_cv_.notify_all();
  if (busy > 0) {
    DropQueued(busy, DropReason::kSpoolBusy);
    LeftMemory(busy);
  }
  return n;
}

void Exporter::SpoolWriterLoop() {
  NameThisThread("xrayd-" + std::string(name().substr(0, 5)) + "-spool");
  for (;;) {
    HandedOff item;
    {
      MutexLock lock(handoff_mu_);
      lock.Wait(handoff_cv_, [this]() XRAYD_REQUIRES(handoff_mu_) { return !handoff_.empty() || handoff_closed_; });
      if (handoff_.empty()) return;  // closed and empty
      item = std::move(handoff_.front());
      handoff_.pop_front();
      handoff_writing_ = true;
    }
    const size_t n = item.segments.size();
    SpillToSpool(item.segments, DropReason::kQueueFull, /*from_memory=*/true);
    {
      MutexLock lock(handoff_mu_);
      handoff_bytes_ -= item.bytes;
      handoff_writing_ = false;
    }
    handoff_cv_.notify_all();  // WaitHandoffEmpty()
    LeftMemory(n);
  }
}

bool Exporter::WaitHandoffEmpty(milliseconds timeout) {
  MutexLock lock(handoff_mu_);
  return lock.WaitFor(handoff_cv_, timeout,
                      [this]() XRAYD_REQUIRES(handoff_mu_) { return handoff_.empty() && !handoff_writing_; });
}

bool Exporter::SpoolWritableLocked() {
  if (!spool_) return false;
  return !spool_write_failed_ ||
         std::chrono::steady_clock::now() - spool_failed_at_ >= options_.spool_retry_interval;
}

size_t Exporter::SpillToSpool(std::vector<std::string>& segments, DropReason reason_without_spool, bool from_memory) {
  const size_t n = segments.size();
  if (n == 0) return 0;
  size_t kept = 0;
  bool tried = false;
  bool wake = false;
  {
    MutexLock lock(mu_);
    // Senders waiting for memory are woken only when they could read what is spooled now: the spool
    // was caught up and the destination is not failing (while it fails, the probe has its own
    // deadline). Waking every sender at every spill cost a context switch each, per batch.
    wake = !spool_unread_ && !failing_;
    if (SpoolWritableLocked()) {
      tried = true;
      const size_t step = std::max<size_t>(1, options_.max_batch_segments);
      for (size_t i = 0; i < n; i += step) {
        std::vector<std::string> record(std::make_move_iterator(segments.begin() + i),
                                        std::make_move_iterator(segments.begin() + std::min(n, i + step)));
        auto appended = spool_->Append(record);
        if (!appended && appended.error().kind == Error::Kind::kInvalidArgument) {
          // This record alone (larger than a spool chunk); the spool itself is fine.
          if (spool_log_.Allow())
            XLOG_WARN("Exporter {}: {} segments too large for spool {}: {}", name(), record.size(),
                      options_.spool_dir, appended.error().message);
          continue;
        }
        if (!appended) {
          SpoolFailedLocked(SpoolErrorKind::kWrite, appended.error().message);
          break;
        }
        kept += record.size();
        spool_unread_ = true;
      }
      if (kept > 0 && spool_write_failed_) {
        spool_write_failed_ = false;
        XLOG_INFO("Exporter {}: spool {} writable again", name(), options_.spool_dir);
        metrics_.Update([](ExporterMetrics::Snapshot& s) { s.spool_problem.clear(); });
      }
    }
    const DropReason reason = tried ? DropReason::kSpoolFull : reason_without_spool;
    metrics_.Update([&](ExporterMetrics::Snapshot& s) {
      if (from_memory) s.queued -= static_cast<int64_t>(n);
      s.spooled += static_cast<int64_t>(kept);
      s.dropped[Idx(reason)] += n - kept;
    });
    if (options_.global_metrics && n > kept) CountGlobalDrop(reason, n - kept);
    if (n > kept && drop_log_.Allow())
      XLOG_WARN("Exporter {}: dropped {} segments ({}); see xrayd_exporter_dropped_total", name(), n - kept,
                ToString(reason));
    SyncSpoolStatsLocked();
  }
  segments.clear();
  if (kept > 0 && wake) buffer_.Kick();  // a sender waiting for memory batches may read the spool now
  return kept;
}

void Exporter::SpoolFailedLocked(SpoolErrorKind kind, const std::string& what) {
  const bool first = !spool_write_failed_;
  if (kind == SpoolErrorKind::kWrite) {
    spool_write_failed_ = true;
    spool_failed_at_ = std::chrono::steady_clock::now();
  }
  if (first || spool_log_.Allow())
    XLOG_ERROR("Exporter {}: spool {} {} failed, running from memory: {}", name(), options_.spool_dir, ToString(kind),
               what);
  metrics_.Update([&](ExporterMetrics::Snapshot& s) {
    ++s.spool_errors[Idx(kind)];
    if (kind == SpoolErrorKind::kWrite)
      s.spool_problem = "spool " + options_.spool_dir + " write failed (" + what + "); running from memory";
  });
}

void Exporter::SyncSpoolStatsLocked() {
  if (!spool_) return;
  const SpoolStats now = spool_->stats();
  const uint64_t full = now.dropped_full_segments - seen_.dropped_full_segments;
  const uint64_t expired = now.expired_segments - seen_.expired_segments;
  const uint64_t corrupt = now.corrupt_segments - seen_.corrupt_segments;
  const uint64_t torn = now.torn_tail_cuts - seen_.torn_tail_cuts;
  const uint64_t cut = now.corrupt_cuts - seen_.corrupt_cuts;
  const uint64_t fsync = now.fsync_errors - seen_.fsync_errors;
  seen_ = now;
  if (full + expired + corrupt + torn + cut + fsync == 0) return;
  metrics_.Update([&](ExporterMetrics::Snapshot& s) {
    s.spooled -= static_cast<int64_t>(full + expired + corrupt);
    s.dropped[Idx(DropReason::kSpoolFull)] += full;
    s.dropped[Idx(DropReason::kExpired)] += expired;
    s.dropped[Idx(DropReason::kSpoolCorrupt)] += corrupt;
    s.spool_errors[Idx(SpoolErrorKind::kTornTail)] += torn;
    s.spool_errors[Idx(SpoolErrorKind::kCorruptCut)] += cut;
    s.spool_errors[Idx(SpoolErrorKind::kFsync)] += fsync;
  });
  if (options_.global_metrics) {
    CountGlobalDrop(DropReason::kSpoolFull, full);
    CountGlobalDrop(DropReason::kExpired, expired);
    CountGlobalDrop(DropReason::kSpoolCorrupt, corrupt);
  }
  if (full + expired + corrupt > 0 && spool_log_.Allow())
    XLOG_WARN("Exporter {}: spool {} dropped {} segments for its size bound, {} past max age, {} corrupt", name(),
              options_.spool_dir, full, expired, corrupt);
  if (torn + cut > 0)
    XLOG_WARN("Exporter {}: spool {} cut {} torn tail(s) and {} corrupt chunk tail(s) ({} bytes so far)", name(),
              options_.spool_dir, torn, cut, now.cut_bytes);
}

void Exporter::SenderLoop(int index) {
  NameThisThread("xrayd-" + std::string(name().substr(0, 5)) + "-" + std::to_string(index));
  std::mt19937_64 rng(std::random_device{}() ^ (static_cast<uint64_t>(index) << 32));
  auto& m = GlobalMetrics();
  while (auto work = NextWork()) {
    if (options_.global_metrics) m.batches_in_flight.fetch_add(1, std::memory_order_relaxed);
    const Outcome outcome = Deliver(*work, rng);
    Settle(*work, outcome);
    StringPool::Global().Give(work->batch.segments);  // the receivers copy the next documents into them
    if (options_.global_metrics) m.batches_in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  if (running_.fetch_sub(1) == 1) {
    MutexLock lock(mu_);
    cv_.notify_all();
  }
}

std::optional<Exporter::Work> Exporter::NextWork() {
  const size_t merge = std::max(options_.merge_max_segments, options_.max_batch_segments);
  for (;;) {
    if (aborting()) return std::nullopt;
    if (auto w = ReadSpool()) return w;
    if (buffer_.Drained()) return std::nullopt;
    // Woken early by Kick() when the spool has something; the deadline retries the spool's reader
    // (at the latest when a failing destination's wait ends: a probe is due).
    const auto now = std::chrono::steady_clock::now();
    SteadyTime deadline = now + std::chrono::seconds(1);
    {
      MutexLock lock(mu_);
      if (failing_ && not_before_ > now) deadline = std::min(deadline, not_before_);
    }
    auto batch = buffer_.PopBatchUntil(deadline);
    if (!batch) continue;
    while (batch->segments.size() + options_.max_batch_segments <= merge) {
      auto more = buffer_.TryPopBatch(std::chrono::steady_clock::now());
      if (!more) break;
      batch->bytes += more->bytes;
      for (auto& s : more->segments) batch->segments.push_back(std::move(s));
    }
    Work w;
    w.batch = std::move(*batch);
    return w;
  }
}

std::optional<Exporter::Work> Exporter::ReadSpool() {
  const size_t merge = std::max(options_.merge_max_segments, options_.max_batch_segments);
  MutexLock lock(mu_);
  if (stopped_ || !spool_) return std::nullopt;
  // While the destination fails, one sender probes with the oldest record once the wait has passed.
  if (failing_ && (spool_sending_ > 0 || std::chrono::steady_clock::now() < not_before_)) return std::nullopt;
  if (!spool_parked_.empty()) {
    // The parked record tried least (the oldest among equals), unless every parked one has failed
    // kProbesPerRecord times and there is room for one more: then a fresh record probes, so that
    // one record the destination always refuses (while it takes others) cannot block replay.
    auto pick = spool_parked_.begin();
    for (auto it = spool_parked_.begin(); it != spool_parked_.end(); ++it)
      if (it->second.failures < pick->second.failures) pick = it;
    const bool fresh = pick->second.failures >= kProbesPerRecord && spool_unread_ &&
                       spool_parked_.size() < static_cast<size_t>(std::max(1, options_.senders));
    if (!fresh) {
      auto node = spool_parked_.extract(pick);
      ++spool_sending_;
      return std::move(node.mapped());
    }
  }
  if (!spool_unread_) return std::nullopt;
  // A probe of a failing destination is one record: a small request, whatever the merge size.
  const size_t limit = failing_ ? options_.max_batch_segments : merge;
  Work w;
  while (w.batch.segments.empty() || w.batch.segments.size() + options_.max_batch_segments <= limit) {
    auto record = spool_->Read();
    if (!record) {
      SpoolFailedLocked(SpoolErrorKind::kRead, record.error().message);
      break;
    }
    if (!*record) {
      spool_unread_ = false;  // caught up; the next Append sets it again
      break;
    }
    if (w.first_sequence == 0) w.first_sequence = (*record)->sequence;
    w.last_sequence = (*record)->sequence;
    for (auto& s : (*record)->segments) w.batch.segments.push_back(std::move(s));
  }
  SyncSpoolStatsLocked();  // records skipped as expired or corrupt
  if (w.batch.segments.empty()) return std::nullopt;
  spool_in_flight_.emplace(w.first_sequence, w.last_sequence);
  ++spool_sending_;
  return w;
}

void Exporter::SpoolWorkDoneLocked(const Work& work, std::optional<SpoolDone> delivered) {
  spool_in_flight_.erase(work.first_sequence);
  if (delivered) {
    spool_done_.emplace(work.first_sequence, *delivered);
  } else {
    spool_ack_limit_ = std::min(spool_ack_limit_, work.first_sequence);  // never acknowledged in this run
  }
  AckSettledLocked();
  MoveStuckRecordsLocked();
}

void Exporter::MoveStuckRecordsLocked() {
  while (spool_ && spool_done_.size() > kMaxDoneBehindStuck && !spool_parked_.empty() &&
         spool_parked_.begin()->first < spool_done_.begin()->first) {
    auto node = spool_parked_.extract(spool_parked_.begin());
    Work& stuck = node.mapped();
    // The copy goes in first: a crash between the two steps replays both (a duplicate, never a loss).
    auto appended = spool_->Append(stuck.batch.segments);
    if (!appended) {
      SpoolFailedLocked(SpoolErrorKind::kWrite, appended.error().message);
      spool_parked_.insert(std::move(node));
      return;
    }
    spool_unread_ = true;
    if (give_up_log_.Allow())
      XLOG_WARN("Exporter {}: a spooled batch of {} segments keeps failing while newer ones are delivered; moved to "
                "the spool's end (spool record {}) so that acknowledgements pass it",
                name(), stuck.batch.segments.size(), *appended);
    spool_in_flight_.erase(stuck.first_sequence);
    // Still spooled (as the new record): its acknowledgement counts nothing.
    spool_done_.emplace(stuck.first_sequence, SpoolDone{stuck.last_sequence, 0, 0, DropReason::kRefused});
    AckSettledLocked();
  }
}

void Exporter::AckSettledLocked() {
  // Acknowledge the longest settled prefix: every record below the oldest one still in flight.
  uint64_t limit = spool_ack_limit_;
  if (!spool_in_flight_.empty()) limit = std::min(limit, spool_in_flight_.begin()->first);
  uint64_t ack = 0;
  std::vector<SpoolDone> acked;
  while (!spool_done_.empty() && spool_done_.begin()->first < limit) {
    ack = spool_done_.begin()->second.last_sequence;
    acked.push_back(spool_done_.begin()->second);
    spool_done_.erase(spool_done_.begin());
  }
  if (ack == 0) return;
  if (auto st = spool_->Ack(ack); !st) SpoolFailedLocked(SpoolErrorKind::kAck, st.error().message);
  metrics_.Update([&](ExporterMetrics::Snapshot& s) {
    for (const auto& d : acked) {
      s.spooled -= static_cast<int64_t>(d.segments);
      s.delivered += d.segments - d.dropped;
      s.dropped[Idx(d.reason)] += d.dropped;
    }
  });
  if (!options_.global_metrics) return;
  for (const auto& d : acked) {
    GlobalMetrics().segments_sent.fetch_add(d.segments - d.dropped, std::memory_order_relaxed);
    if (d.dropped > 0) CountGlobalDrop(d.reason, d.dropped);
  }
}

Exporter::Outcome Exporter::Deliver(const Work& work, std::mt19937_64& rng) {
  const size_t n = work.batch.segments.size();
  const auto start = std::chrono::steady_clock::now();
  const bool from_spool = work.last_sequence > 0;
  milliseconds backoff = options_.retry.initial_backoff;  // a memory batch's own; spool probes share backoff_
  for (int attempt = 1;; ++attempt) {
    if (!from_spool && SpillWhileFailing()) return {Ending::kExhausted};
    // A memory batch's budget also bounds how long it waits for the destination's wait to pass.
    const SteadyTime give_up = from_spool ? SteadyTime::max() : start + options_.retry.max_elapsed;
    const Wake wake = WaitNotBefore(give_up);
    if (wake == Wake::kAborted) return {Ending::kAborted};
    if (wake == Wake::kGiveUp) return {Ending::kExhausted};
    SendOutcome o = sender_.Send(work.batch.segments);
    if (o.kind == SendOutcome::Kind::kDelivered) {
      DestinationAnswered();
      if (o.refused > 0 && !o.message.empty() && refused_log_.Allow())
        XLOG_WARN("Exporter {}: {} of {} segments refused: {}", name(), o.refused, n, o.message);
      return {Ending::kDone, std::min(o.refused, n)};
    }
    if (o.kind == SendOutcome::Kind::kPermanent) {
      DestinationAnswered();
      if (give_up_log_.Allow())  // at most one line per 10 s; every segment is counted
        XLOG_ERROR("Exporter {}: destination refused a batch of {} segments for good: {}", name(), n, o.message);
      return {Ending::kDone, 0, true};
    }
    if (aborting()) return {Ending::kAborted};
    const milliseconds wait = BackOff(o, rng, from_spool ? nullptr : &backoff);
    if (from_spool || SpoolWritable()) {
      // The destination is failing: the spool is where data waits. A spool record goes back to wait
      // for the next probe (it stays unacknowledged); a memory batch moves to the spool.
      if (failure_log_.Allow())
        XLOG_WARN("Exporter {}: send failed ({}); a batch of {} segments waits in the spool, next try in {} ms",
                  name(), o.message, n, wait.count());
      CountRetry();
      return {from_spool ? Ending::kParked : Ending::kExhausted};
    }
    const auto elapsed = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    if (((options_.retry.max_attempts > 0 && attempt >= options_.retry.max_attempts) ||
                                    elapsed + wait > options_.retry.max_elapsed)) {
      if (give_up_log_.Allow())
        XLOG_ERROR("Exporter {}: a batch of {} segments failed {} times over {} ms (to the spool if there is one): {}",
                   name(), n, attempt, elapsed.count(), o.message);
      return {Ending::kExhausted};  // the wait set by BackOff() holds for the spool's reader too
    }
    if (failure_log_.Allow())
      XLOG_WARN("Exporter {}: send failed ({}); retrying a batch of {} in {} ms (attempt {})", name(), o.message, n,
                wait.count(), attempt);
    CountRetry();
  }
}

void Exporter::CountRetry() {
  metrics_.Update([](ExporterMetrics::Snapshot& s) { ++s.retries; });
  if (options_.global_metrics) GlobalMetrics().export_retries.fetch_add(1, std::memory_order_relaxed);
}

bool Exporter::SpillWhileFailing() {
  MutexLock lock(mu_);
  if (!failing_ || !SpoolWritableLocked()) return false;
  // Before the wait has passed; and after it too while the spool holds records (its oldest is the
  // probe), so memory never overtakes the spool.
  return std::chrono::steady_clock::now() < not_before_ || spool_unread_ || !spool_parked_.empty() ||
         spool_sending_ > 0;
}

bool Exporter::SpoolWritable() {
  MutexLock lock(mu_);
  return SpoolWritableLocked();
}

milliseconds Exporter::BackOff(const SendOutcome& outcome, std::mt19937_64& rng, milliseconds* own) {
  const std::optional<milliseconds>& retry_after = outcome.retry_after;
  MutexLock lock(mu_);
  milliseconds& backoff = own ? *own : backoff_;
  std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(0, backoff.count()));
  milliseconds wait(jitter(rng));
  // The spool's probe of a destination that is down (not overloaded): one small request per
  // probe_interval at most apart, so its return is noticed within about that long.
  if (!own && !outcome.throttled && !retry_after) wait = std::min(wait, options_.retry.probe_interval);
  if (retry_after && *retry_after > wait) wait = std::min(*retry_after, options_.retry.max_backoff);
  not_before_ = std::max(not_before_, std::chrono::steady_clock::now() + wait);
  failing_ = true;
  backoff = std::min(backoff * 2, options_.retry.max_backoff);
  return wait;
}

void Exporter::DestinationAnswered() {
  bool was_failing;
  {
    MutexLock lock(mu_);
    backoff_ = options_.retry.initial_backoff;
    was_failing = failing_;
    failing_ = false;
  }
  if (was_failing) buffer_.Kick();  // senders waiting for memory may replay the spool now
}

Exporter::Wake Exporter::WaitNotBefore(SteadyTime give_up) {
  MutexLock lock(mu_);
  for (;;) {
    if (aborting_) return Wake::kAborted;
    const SteadyTime until = not_before_;
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return Wake::kGo;
    if (until > give_up) return Wake::kGiveUp;
    lock.WaitUntil(cv_, until, [this]() XRAYD_REQUIRES(mu_) { return aborting_; });
  }
}

void Exporter::Settle(Work& work, const Outcome& outcome) {
  const size_t n = work.batch.segments.size();
  const bool from_spool = work.last_sequence > 0;
  if (outcome.ending == Ending::kDone) {
    const size_t dropped = outcome.permanent ? n : outcome.refused;
    const DropReason reason = outcome.permanent ? DropReason::kPermanent : DropReason::kRefused;
    MutexLock lock(mu_);
    if (from_spool) {
      --spool_sending_;
      SpoolWorkDoneLocked(work, SpoolDone{work.last_sequence, n, dropped, reason});  // counts when acked
      SyncSpoolStatsLocked();
    } else {
      metrics_.Update([&](ExporterMetrics::Snapshot& s) {
        s.queued -= static_cast<int64_t>(n);
        s.delivered += n - dropped;
        s.dropped[Idx(reason)] += dropped;
      });
      if (options_.global_metrics) {
        GlobalMetrics().segments_sent.fetch_add(n - dropped, std::memory_order_relaxed);
        if (dropped > 0) CountGlobalDrop(reason, dropped);
      }
    }
  } else if (from_spool && outcome.ending == Ending::kParked) {
    MutexLock lock(mu_);
    --spool_sending_;
    const uint64_t first = work.first_sequence;
    ++work.failures;
    spool_parked_.emplace(first, std::move(work));
    MoveStuckRecordsLocked();
    return;
  } else if (from_spool) {
    // Aborted at shutdown: not acknowledged, so the next start sends it again.
    MutexLock lock(mu_);
    --spool_sending_;
    SpoolWorkDoneLocked(work, std::nullopt);
  } else {
    const size_t count = n;
    SpillToSpool(work.batch.segments,
                 outcome.ending == Ending::kAborted ? DropReason::kShutdown : DropReason::kRetriesExhausted,
                 /*from_memory=*/true);
    work.batch.segments.resize(count);  // Release() reads the count (for the gauges)
  }
  if (from_spool) return;
  buffer_.Release(work.batch);
  LeftMemory(n);
}

bool Exporter::aborting() const {
  MutexLock lock(mu_);
  return aborting_;
}

bool Exporter::spool_usable() const {
  MutexLock lock(mu_);
  return spool_ && !spool_write_failed_;
}

void Exporter::Stop(milliseconds grace) {
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  {
    MutexLock lock(settle_mu_);
    settle_stopped_ = true;
  }
  settle_cv_.notify_all();  // WaitSettled() callers
  buffer_.Close();
  buffer_.Kick();
  {
    MutexLock lock(mu_);
    lock.WaitFor(cv_, grace, [this] { return running_.load() == 0; });
    aborting_ = true;
  }
  cv_.notify_all();
  sender_.Abort();
  buffer_.Abort();
  for (auto& t : threads_) t.join();
  threads_.clear();
  {
    MutexLock lock(handoff_mu_);
    handoff_closed_ = true;  // the writer empties the hand-off, then returns
  }
  handoff_cv_.notify_all();
  if (spool_writer_.joinable()) spool_writer_.join();
  // Whatever memory still holds: to the spool for the next start, or dropped{shutdown}.
  size_t left = 0;
  while (auto batch = buffer_.TakeOldest()) {
    const size_t count = batch->segments.size();
    left += count;
    SpillToSpool(batch->segments, DropReason::kShutdown, /*from_memory=*/true);
    batch->segments.resize(count);
    buffer_.Release(*batch);
    LeftMemory(count);
  }
  MutexLock lock(mu_);
  // Parked spool records were never delivered: not acknowledged, so the next start sends them again.
  auto parked = std::move(spool_parked_);
  spool_parked_.clear();
  for (auto& [first, work] : parked) SpoolWorkDoneLocked(work, std::nullopt);
  if (left > 0)
    XLOG_INFO("Exporter {}: {} segments left at shutdown {}", name(), left,
              spool_ ? "written to the spool for the next start" : "dropped (no spool)");
  if (spool_) {
    SpoolGauges::Instance().Remove(spool_.get());
    if (auto st = spool_->Close(); !st) XLOG_WARN("Exporter {}: closing spool: {}", name(), st.error().message);
    spool_.reset();
    spool_open_ = false;
  }
}

}  // namespace xrayd::pipeline
