// Exporter: one destination's half of the pipeline — a bounded memory queue, an optional durable
// spool, N sender threads calling one BatchSender, retries, and the exact accounting around them.
//
// Data path. Offer() pushes documents into the memory queue (a SegmentBuffer: bounded in bytes,
// batches of max_batch_segments, a partial batch ready after flush_interval). When they do not fit,
// the OLDEST queued batch makes room: it is handed to the spool writer (in order, so the spool
// always holds older data than memory), or, without a spool, is dropped{queue_full}. Offer() never
// waits for disk I/O nor for a lock held during it: the hand-off is a bounded queue (its bytes are
// taken from queue_bytes) that one spool writer thread empties into the spool; when it is full, its
// oldest batch is dropped{spool_busy} (counted and logged: the disk cannot keep up). A receiver
// (e.g. the UDP thread) therefore keeps reading its socket through an fsync or a slow disk.
// Senders take the spool's records first, else memory batches, and call BatchSender::Send once
// per attempt. Several senders read the spool at
// once (replay runs at full concurrency); a record is acknowledged only when every older record read
// is settled, so the spool's acknowledged position only ever covers delivered data.
//
// Retries. A retryable outcome sets the next wait: exponential backoff with full jitter (a uniform
// wait in [0, backoff], at least the destination's retry_after, capped at max_backoff; a memory
// batch has its own backoff, spool probes share one); the resulting "not before" time is
// exporter-wide, so every sender honours it. While the spool's probe fails without throttling
// (connection refused, timeouts, 5xx: the destination is down, not overloaded), the probe's wait is
// capped at retry.probe_interval, so the first delivery after the destination returns waits at most
// about that long, at one small request (one spool record) per interval; a throttled answer (429,
// ThrottlingException: SendOutcome::throttled) or a Retry-After keeps the exponential backoff up to
// max_backoff. Without a
// usable spool a memory batch is retried until it has been tried for max_elapsed (or max_attempts,
// when set), then dropped{retries_exhausted}. With one, a memory batch whose attempt fails goes to
// the spool at once, and while the destination is failing memory batches go there untried (unless
// the wait has passed and the spool is empty), so an outage moves memory to disk promptly. While
// failing, one sender at a time probes with a parked record (the one tried least) or the oldest
// unread one; a failed record is parked (unacknowledged) and read again first, but after
// kProbesPerRecord failures a fresh record probes instead, so one record the destination keeps
// refusing cannot block replay; once it holds back more than kMaxDoneBehindStuck delivered work
// items' acknowledgements, it moves to the spool's end. A spool record is retried until delivered
// (or shutdown): the spool's max age bounds what waits there, so a long outage loses nothing the
// spool can hold.
//
// Accounting (ExporterMetrics, exact at every scrape):
//   received = delivered + queued + spooled + sum(dropped{reason})
// received counts documents offered and documents recovered from the spool at start; queued is
// what memory holds (in flight and the spool writer's hand-off included); spooled what the spool
// holds (in flight included, and delivered records until acknowledged: a crash would replay them).
//
// Spool problems (cannot open, newer format, write failure such as disk full) are logged, counted
// in xrayd_spool_errors_total{kind} and named by /readyz; the exporter keeps running from memory.
// A write failure marks the spool unusable until a later append succeeds (tried again at most
// every spool_retry_interval).
//
// Threads: owns `senders` threads and, with a spool, one spool writer thread (started by Start(),
// joined by Stop()). Offer() is thread-safe and never blocks on the destination nor on the disk.
// Shutdown order: the owner stops every receiver, then calls Stop(grace): intake closes, senders
// drain memory for up to `grace`, then the sender is Abort()ed and the senders joined; the spool
// writer empties the hand-off and is joined; whatever is left in memory (in flight included) goes
// to the spool, or is dropped{shutdown} without one, and the spool is closed. Stop() is idempotent;
// the destructor calls Stop(0).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "buffer/segment_buffer.h"
#include "common/log.h"
#include "common/thread_annotations.h"
#include "pipeline/batch_sender.h"
#include "pipeline/spool.h"
#include "telemetry/metrics.h"

namespace xrayd::pipeline {

struct RetryOptions {
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{15000};
  std::chrono::milliseconds max_elapsed{std::chrono::minutes(5)};
  int max_attempts = 0;  // 0: no cap besides max_elapsed
  // While the destination is down (retryable, not throttled, no Retry-After), the spool's probe
  // waits at most this long: how soon the first delivery follows the destination's return.
  std::chrono::milliseconds probe_interval{1000};
};

struct ExporterOptions {
  size_t queue_bytes = 16 * 1024 * 1024;  // the memory queue's bound (accounted bytes)
  size_t max_batch_segments = 50;         // per memory batch and per spool record
  std::chrono::milliseconds flush_interval{1000};
  // A sender merges ready batches (and spool records) into one Send() of up to this many
  // segments; 0: max_batch_segments (no merging). The store uses 10000: SQLite pays per commit.
  size_t merge_max_segments = 0;
  int senders = 1;
  RetryOptions retry;
  std::string spool_dir;  // "": memory only
  SpoolOptions spool;
  SpoolEnv* spool_env = SpoolEnv::Default();  // tests: a fake clock or a full disk
  std::chrono::milliseconds spool_retry_interval{5000};
  // Bound of the hand-off from Offer() to the spool writer (accounted bytes). 0 (the default):
  // queue_bytes / 8, taken from the memory queue's bound, so queue_bytes stays the total; set, it
  // is memory on top of queue_bytes (tests flooding a tiny queue use a large one).
  size_t spool_handoff_bytes = 0;
  // Also count into the process-wide counters (segments_sent / spilled / failed, buffer gauges)
  // that AWS-compatible telemetry reports; exactly one exporter (the first) does.
  bool global_metrics = true;
};

class Exporter {
 public:
  // `sender` must outlive the exporter. The spool (if any) is opened by Start().
  Exporter(ExporterOptions options, BatchSender& sender);
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Opens the spool (a failure is logged and counted; the exporter then runs from memory) and
  // starts the senders; spooled data is sent first.
  void Start() XRAYD_EXCLUDES(mu_);
  // Takes the documents (the vector is left empty) and returns how many it kept (memory or spool).
  // `ticket`, if given, receives a position for WaitSettled(), and a partial batch of these
  // documents is ready at once (SegmentBuffer::Seal::kNow): the caller waits for it.
  size_t Offer(std::vector<std::string>& documents, uint64_t* ticket = nullptr) XRAYD_EXCLUDES(mu_);
  // For a caller that can tell its client "later" (PutTraceSegments in `xrayd serve`, through
  // WaitingSink): without a usable spool, Offer() makes room by dropping the oldest queued batch —
  // documents whose caller may already have been told they were taken. This never does: it waits
  // up to `room_wait` for the memory queue to take all of `documents` (as Offer() with a ticket:
  // ready at once) and returns documents.size(), or takes none, leaves `documents` as they were and
  // returns 0, for the caller to refuse (429, retried by clients). With a usable spool it is Offer()
  // (the spool takes the overflow: nothing is dropped).
  size_t OfferAllOrNone(std::vector<std::string>& documents, uint64_t* ticket, std::chrono::milliseconds room_wait)
      XRAYD_EXCLUDES(mu_);
  // Waits up to `timeout` until every document offered before `ticket` has left memory (delivered,
  // spooled or dropped); true if so. FIFO with one sender; approximate with several.
  bool WaitSettled(uint64_t ticket, std::chrono::milliseconds timeout) XRAYD_EXCLUDES(settle_mu_);
  void Stop(std::chrono::milliseconds grace) XRAYD_EXCLUDES(mu_);
  // Waits up to `timeout` until the spool writer has written (or dropped) everything handed to it;
  // true if so. For tests that flood an exporter and then look at its spool.
  bool WaitHandoffEmpty(std::chrono::milliseconds timeout) XRAYD_EXCLUDES(handoff_mu_);

  std::string_view name() const { return sender_.name(); }
  const ExporterOptions& options() const { return options_; }
  ExporterMetrics& metrics() const { return metrics_; }
  // True while a spool is open and its last write worked.
  bool spool_usable() const XRAYD_EXCLUDES(mu_);

 private:
  struct Work {
    Batch batch;                 // memory batches: bytes > 0, Release()d when settled
    uint64_t first_sequence = 0;  // > 0: spool records first..last (acknowledged when settled)
    uint64_t last_sequence = 0;
    int failures = 0;  // spool records: failed attempts (parked that many times)
  };
  // kParked: a spool record failed; it waits in spool_parked_ (still in flight) for a later probe.
  enum class Ending { kDone, kExhausted, kAborted, kParked };
  struct Outcome;
  // A spool work item delivered, awaiting its acknowledgement (which waits for older records).
  struct SpoolDone {
    uint64_t last_sequence = 0;
    size_t segments = 0;
    size_t dropped = 0;  // refused or permanent
    DropReason reason = DropReason::kRefused;
  };

  void SenderLoop(int index) XRAYD_EXCLUDES(mu_);
  // Offer()'s side of the hand-off: queues `segments` (counted as queued) for the spool writer,
  // dropping the hand-off's oldest batches{spool_busy} while it is over its bound; without a spool,
  // drops them{queue_full}. Never waits for I/O. Returns how many it took; leaves `segments` empty.
  size_t HandOff(std::vector<std::string>& segments) XRAYD_EXCLUDES(mu_, handoff_mu_);
  // The spool writer thread: writes handed-off batches into the spool until the hand-off closes
  // and is empty.
  void SpoolWriterLoop() XRAYD_EXCLUDES(mu_, handoff_mu_);
  // Segments that were queued in memory leave it dropped{reason}.
  void DropQueued(size_t n, DropReason reason);
  std::optional<Work> NextWork() XRAYD_EXCLUDES(mu_);
  std::optional<Work> ReadSpool() XRAYD_EXCLUDES(mu_);
  Outcome Deliver(const Work& work, std::mt19937_64& rng) XRAYD_EXCLUDES(mu_);
  void Settle(Work& work, const Outcome& outcome) XRAYD_EXCLUDES(mu_);
  // Moves segments into the spool (split into records); what it cannot take is dropped{reason}
  // (kSpoolFull when the spool was tried). Returns how many it kept. `from_memory`: they were
  // counted as queued. Leaves `segments` empty.
  size_t SpillToSpool(std::vector<std::string>& segments, DropReason reason_without_spool, bool from_memory)
      XRAYD_EXCLUDES(mu_);
  bool SpoolWritableLocked() XRAYD_REQUIRES(mu_);
  // Applies the spool's own drops (full, expired, corrupt) and cuts since the last call.
  void SyncSpoolStatsLocked() XRAYD_REQUIRES(mu_);
  void OpenSpool() XRAYD_EXCLUDES(mu_);
  // A spool work item settled (delivered: may be acknowledged) or given up at shutdown (never is);
  // acknowledges every record below the oldest still in flight.
  // Delivered spool records are counted (delivered or dropped) when acknowledged, not before: until
  // then the spool still holds them and a crash replays them, so they still count as spooled.
  void SpoolWorkDoneLocked(const Work& work, std::optional<SpoolDone> delivered) XRAYD_REQUIRES(mu_);
  // Acknowledges every delivered record below the oldest one still in flight (and counts them).
  void AckSettledLocked() XRAYD_REQUIRES(mu_);
  // A parked spool record (failed, waiting for a retry) older than more than kMaxDoneBehindStuck
  // delivered work items holds back their acknowledgement: the bookkeeping grows and a crash would
  // replay them all. Such a record is appended again at the spool's end (its age restarts) and the
  // original is acknowledged, so the acknowledged position passes it. Repeats as needed.
  void MoveStuckRecordsLocked() XRAYD_REQUIRES(mu_);
  static constexpr size_t kMaxDoneBehindStuck = 256;
  static constexpr int kProbesPerRecord = 3;
  void SpoolFailedLocked(SpoolErrorKind kind, const std::string& what) XRAYD_REQUIRES(mu_);
  void LeftMemory(size_t segments) XRAYD_EXCLUDES(settle_mu_);
  // After a retryable failure: the next wait (full jitter over the backoff — `own`, a memory batch's,
  // or null: backoff_, shared by spool probes — at least `retry_after`, at most max_backoff); moves
  // the exporter-wide not_before_ past it and doubles that backoff.
  // `outcome`'s retry_after and throttled decide whether a spool probe's wait is capped at
  // retry.probe_interval (see the header comment).
  std::chrono::milliseconds BackOff(const SendOutcome& outcome, std::mt19937_64& rng, std::chrono::milliseconds* own)
      XRAYD_EXCLUDES(mu_);
  // The destination answered (delivered or refused for good): the backoff starts over and it is no
  // longer known to be failing (spool replay resumes at full concurrency).
  void DestinationAnswered() XRAYD_EXCLUDES(mu_);
  // True when a memory batch should go to the spool without an attempt: the destination is failing,
  // the spool can take it, and either its wait has not passed or the spool holds records (whose
  // oldest is then the probe).
  bool SpillWhileFailing() XRAYD_EXCLUDES(mu_);
  bool SpoolWritable() XRAYD_EXCLUDES(mu_);
  void CountRetry();
  // Sleeps until not_before_ (which may move meanwhile): kGo then; kAborted if aborted first;
  // kGiveUp at once if not_before_ is past `give_up` (a memory batch's budget ends first).
  enum class Wake { kGo, kAborted, kGiveUp };
  Wake WaitNotBefore(SteadyTime give_up) XRAYD_EXCLUDES(mu_);
  bool aborting() const XRAYD_EXCLUDES(mu_);

  // Constant after construction.
  const ExporterOptions options_;
  BatchSender& sender_;
  ExporterMetrics& metrics_;
  SegmentBuffer buffer_;  // thread-safe on its own

  log::RateLimiter drop_log_{std::chrono::seconds(10)};
  log::RateLimiter spool_log_{std::chrono::seconds(10)};
  log::RateLimiter refused_log_{std::chrono::seconds(10)};
  log::RateLimiter failure_log_{std::chrono::seconds(5)};
  log::RateLimiter give_up_log_{std::chrono::seconds(10)};

  std::vector<std::thread> threads_;  // owner thread only (Start/Stop)
  std::thread spool_writer_;          // owner thread only (Start/Stop); runs while a spool is open
  std::atomic<int> running_{0};
  std::atomic<bool> spool_open_{false};  // Offer() hands off to the spool writer only while true
  const size_t handoff_bound_;

  // The hand-off (see the header comment). Never held during I/O, nor while taking mu_.
  mutable Mutex handoff_mu_;
  std::condition_variable handoff_cv_;  // waits on handoff_mu_: work for the writer, or it is empty
  struct HandedOff {
    std::vector<std::string> segments;
    size_t bytes = 0;
  };
  std::deque<HandedOff> handoff_ XRAYD_GUARDED_BY(handoff_mu_);
  size_t handoff_bytes_ XRAYD_GUARDED_BY(handoff_mu_) = 0;  // queued and being written
  bool handoff_writing_ XRAYD_GUARDED_BY(handoff_mu_) = false;
  bool handoff_closed_ XRAYD_GUARDED_BY(handoff_mu_) = false;

  // WaitSettled()'s state, apart from mu_ (which senders hold during spool I/O) so that Offer()
  // never waits for it.
  mutable Mutex settle_mu_;
  std::condition_variable settle_cv_;  // waits on settle_mu_: left_memory_ moved, or stopped
  bool settle_stopped_ XRAYD_GUARDED_BY(settle_mu_) = false;
  uint64_t offered_ XRAYD_GUARDED_BY(settle_mu_) = 0;      // documents ever put into memory
  uint64_t left_memory_ XRAYD_GUARDED_BY(settle_mu_) = 0;  // documents that left memory by any path

  mutable Mutex mu_;
  std::condition_variable cv_;  // waits on mu_: aborting_, stopped senders
  std::unique_ptr<Spool> spool_ XRAYD_GUARDED_BY(mu_);  // null: memory only (or unusable at open)
  bool spool_write_failed_ XRAYD_GUARDED_BY(mu_) = false;
  SteadyTime spool_failed_at_ XRAYD_GUARDED_BY(mu_){};
  bool spool_unread_ XRAYD_GUARDED_BY(mu_) = false;  // the spool may hold records not yet read
  // Spool records read by senders (first → last sequence), and those delivered whose acknowledgement
  // waits for an older one still in flight: acks go in order, as the spool requires.
  std::map<uint64_t, uint64_t> spool_in_flight_ XRAYD_GUARDED_BY(mu_);
  std::map<uint64_t, SpoolDone> spool_done_ XRAYD_GUARDED_BY(mu_);
  uint64_t spool_ack_limit_ XRAYD_GUARDED_BY(mu_) = UINT64_MAX;  // below the first record given up on
  SpoolStats seen_ XRAYD_GUARDED_BY(mu_);                  // the spool's stats already accounted
  // Exporter-wide, so that the destination's Retry-After and the backoff hold for every sender and
  // every attempt, whether of a memory batch or of a spool record (a batch moved to the spool after
  // its budget is not re-sent sooner): no Send() starts before not_before_.
  SteadyTime not_before_ XRAYD_GUARDED_BY(mu_){};
  std::chrono::milliseconds backoff_ XRAYD_GUARDED_BY(mu_);
  // The destination's last answer was a retryable failure. While so, at most one sender replays the
  // spool (a probe, once not_before_ has passed) and memory batches go to the spool, so that an
  // outage moves memory to disk promptly instead of every sender holding a spool record.
  bool failing_ XRAYD_GUARDED_BY(mu_) = false;
  int spool_sending_ XRAYD_GUARDED_BY(mu_) = 0;  // spool work items being delivered now
  // Spool records that failed, oldest first; still in spool_in_flight_ (not acknowledged), read
  // again before any new record.
  std::map<uint64_t, Work> spool_parked_ XRAYD_GUARDED_BY(mu_);
  bool aborting_ XRAYD_GUARDED_BY(mu_) = false;
  bool started_ XRAYD_GUARDED_BY(mu_) = false;
  bool stopped_ XRAYD_GUARDED_BY(mu_) = false;
};

}  // namespace xrayd::pipeline
