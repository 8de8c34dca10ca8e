// pipeline::Exporter and FanOut with a scriptable fake BatchSender: retries (elapsed time and
// attempts), the memory bound (drop oldest), spill to a real spool on disk and replay in order,
// replay after a restart, an unusable spool, and the accounting identity after each.
#include "pipeline/exporter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "pipeline/fan_out.h"
#include "telemetry/health_server.h"

namespace xrayd::pipeline {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A destination whose answer tests choose; records every document it accepted, in order.
class FakeSender : public BatchSender {
 public:
  explicit FakeSender(std::string name = "xray") : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }

  SendOutcome Send(const std::vector<std::string>& segments) override XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    ++calls_;
    call_times_.push_back(std::chrono::steady_clock::now());
    lock.Wait(cv_, [this]() XRAYD_REQUIRES(mu_) { return !stalled_ || aborted_; });
    if (aborted_) return {SendOutcome::Kind::kRetryable, 0, std::nullopt, "aborted"};
    if (!poison_.empty() && std::find(segments.begin(), segments.end(), poison_) != segments.end())
      return {SendOutcome::Kind::kRetryable, 0, std::nullopt, "scripted failure of the poison document"};
    if (mode_ == SendOutcome::Kind::kDelivered) {
      const size_t refused = std::min(refuse_each_, segments.size());
      for (size_t i = refused; i < segments.size(); ++i) delivered_.push_back(segments[i]);
      return {SendOutcome::Kind::kDelivered, refused, std::nullopt, {}};
    }
    return {mode_, 0, retry_after_, "scripted failure", throttled_};
  }
  void Abort() override XRAYD_EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      aborted_ = true;
    }
    cv_.notify_all();
  }

  void Set(SendOutcome::Kind mode, std::optional<std::chrono::milliseconds> retry_after = {}, bool throttled = false)
      XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    mode_ = mode;
    retry_after_ = retry_after;
    throttled_ = throttled;
  }
  void Stall(bool on) XRAYD_EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      stalled_ = on;
    }
    cv_.notify_all();
  }
  // Every batch holding `doc` fails (retryable); the others get the mode's answer.
  void Poison(std::string doc) XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    poison_ = std::move(doc);
  }
  void RefuseEach(size_t n) XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    refuse_each_ = n;
  }
  std::vector<std::string> delivered() const XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return delivered_;
  }
  std::vector<std::chrono::steady_clock::time_point> call_times() const XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return call_times_;
  }
  int calls() const XRAYD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return calls_;
  }

 private:
  const std::string name_;
  mutable Mutex mu_;
  std::condition_variable cv_;
  SendOutcome::Kind mode_ XRAYD_GUARDED_BY(mu_) = SendOutcome::Kind::kDelivered;
  std::optional<std::chrono::milliseconds> retry_after_ XRAYD_GUARDED_BY(mu_);
  bool throttled_ XRAYD_GUARDED_BY(mu_) = false;
  bool stalled_ XRAYD_GUARDED_BY(mu_) = false;
  bool aborted_ XRAYD_GUARDED_BY(mu_) = false;
  size_t refuse_each_ XRAYD_GUARDED_BY(mu_) = 0;
  std::string poison_ XRAYD_GUARDED_BY(mu_);
  int calls_ XRAYD_GUARDED_BY(mu_) = 0;
  std::vector<std::string> delivered_ XRAYD_GUARDED_BY(mu_);
  std::vector<std::chrono::steady_clock::time_point> call_times_ XRAYD_GUARDED_BY(mu_);
};

std::vector<std::string> Docs(int first, int n, size_t pad = 100) {
  std::vector<std::string> v;
  for (int i = first; i < first + n; ++i) v.push_back("{\"i\":" + std::to_string(i) + ",\"p\":\"" + std::string(pad, 'x') + "\"}");
  return v;
}

int Index(const std::string& doc) { return std::stoi(doc.substr(5)); }

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

uint64_t Dropped(const ExporterMetrics::Snapshot& s, DropReason r) { return s.dropped[static_cast<size_t>(r)]; }

// received = delivered + queued + spooled + dropped, and nothing negative.
void ExpectBalanced(const ExporterMetrics& m) {
  const auto s = m.Get();
  EXPECT_GE(s.queued, 0);
  EXPECT_GE(s.spooled, 0);
  EXPECT_EQ(s.received, s.delivered + static_cast<uint64_t>(s.queued) + static_cast<uint64_t>(s.spooled) + s.DroppedTotal())
      << "received " << s.received << " delivered " << s.delivered << " queued " << s.queued << " spooled " << s.spooled
      << " dropped " << s.DroppedTotal();
}

class PipelineExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GlobalMetrics().ResetForTest();
    dir_ = fs::temp_directory_path() / ("xrayd-exporter-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    exporter_.reset();  // before its sender
    fs::remove_all(dir_);
  }

  static ExporterOptions Fast() {
    ExporterOptions o;
    o.queue_bytes = 1 << 20;
    o.flush_interval = 5ms;
    o.senders = 2;
    o.retry.initial_backoff = 1ms;
    o.retry.max_backoff = 5ms;
    o.retry.max_elapsed = 10s;
    return o;
  }
  ExporterOptions Spooled() const {
    ExporterOptions o = Fast();
    o.spool_dir = (dir_ / "xray").string();
    o.spool.max_bytes = 64 << 20;
    // A hand-off larger than any flood here, on top of the queue: an offer that pushes several
    // batches out of a tiny test queue must not overflow it (dropped{spool_busy} is tested on its
    // own, in ASlowDiskNeverBlocksOfferAndTheHandOffBoundIsCounted).
    o.spool_handoff_bytes = 64 << 20;
    return o;
  }
  // A memory queue that holds about `documents` of Docs()' size.
  static size_t QueueFor(size_t documents) { return documents * SegmentBuffer::AccountedSize(Docs(0, 1)[0]); }

  // The exporter under test, started on `o`, sending to a fresh sender() that answers `mode` (or
  // holds every Send() while `stalled`; fails every batch holding `poison`).
  // Replaces (stops) any earlier one; TearDown stops the last.
  Exporter& StartExporter(const ExporterOptions& o, SendOutcome::Kind mode = SendOutcome::Kind::kDelivered,
                          bool stalled = false, const std::string& poison = "") {
    exporter_.reset();
    sender_ = std::make_unique<FakeSender>();
    sender_->Set(mode);
    sender_->Stall(stalled);
    sender_->Poison(poison);
    exporter_ = std::make_unique<Exporter>(o, *sender_);
    exporter_->Start();
    return *exporter_;
  }
  FakeSender& sender() { return *sender_; }

  // Offers documents first .. first+n-1, `step` at a time; checks the accounting after each offer.
  // Waits for the spool writer after each offer, so that a flood is spooled, not dropped{spool_busy}
  // (a receiver does not wait: ASlowDiskNeverBlocksOffer tests that).
  static size_t OfferRange(Exporter& e, int first, int n, int step) {
    size_t kept = 0;
    for (int i = first; i < first + n; i += step) {
      auto docs = Docs(i, std::min(step, first + n - i));
      kept += e.Offer(docs);
      ExpectBalanced(e.metrics());
      EXPECT_TRUE(e.WaitHandoffEmpty(10s));
    }
    return kept;
  }
  // What an earlier run left: records of `per` documents first .. first+n-1 in o's spool.
  static void Prefill(const ExporterOptions& o, int first, int n, int per) {
    fs::create_directories(o.spool_dir);
    auto spool = Spool::Open(o.spool_dir, o.spool);
    ASSERT_TRUE(spool) << spool.error().message;
    for (int i = first; i < first + n; i += per) ASSERT_TRUE((*spool)->Append(Docs(i, per)));
  }
  // Until nothing is queued or spooled.
  static bool WaitIdle(const Exporter& e, std::chrono::milliseconds limit = 10s) {
    return WaitUntil(
        [&] {
          const auto s = e.metrics().Get();
          return s.spooled == 0 && s.queued == 0;
        },
        limit);
  }
  // Each document first .. first+n-1 was delivered exactly once, and nothing else.
  static void ExpectEachOnce(const std::vector<std::string>& got, int first, int n) {
    std::map<int, int> seen;
    for (const auto& d : got) ++seen[Index(d)];
    EXPECT_EQ(seen.size(), static_cast<size_t>(n));
    for (int i = first; i < first + n; ++i) EXPECT_EQ(seen[i], 1) << "document " << i;
    EXPECT_EQ(got.size(), static_cast<size_t>(n)) << "duplicates or strangers delivered";
  }

  fs::path dir_;

 private:
  std::unique_ptr<FakeSender> sender_;  // declared before exporter_: destroyed after it
  std::unique_ptr<Exporter> exporter_;
};

TEST_F(PipelineExporterTest, DeliversAndCountsEveryDocument) {
  Exporter& e = StartExporter(Fast());
  auto docs = Docs(0, 230);
  EXPECT_EQ(e.Offer(docs), 230u);
  EXPECT_TRUE(docs.empty());
  ASSERT_TRUE(WaitUntil([&] { return sender().delivered().size() == 230; }));
  e.Stop(1s);
  const auto s = e.metrics().Get();
  EXPECT_EQ(s.received, 230u);
  EXPECT_EQ(s.delivered, 230u);
  EXPECT_EQ(GlobalMetrics().segments_sent.load(), 230u);
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, RetriesUntilDeliveredHonouringRetryAfter) {
  ExporterOptions o = Fast();
  o.senders = 1;
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  sender().Set(SendOutcome::Kind::kRetryable, 30ms);
  OfferRange(e, 0, 10, 10);
  ASSERT_TRUE(WaitUntil([&] { return sender().calls() >= 3; }));
  EXPECT_TRUE(sender().delivered().empty());
  ExpectBalanced(e.metrics());
  EXPECT_EQ(e.metrics().Get().queued, 10);
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitUntil([&] { return sender().delivered().size() == 10; }));
  e.Stop(1s);
  const auto s = e.metrics().Get();
  EXPECT_GE(s.retries, 2u);
  EXPECT_EQ(s.DroppedTotal(), 0u);
  ExpectBalanced(e.metrics());
}

// Issue #12: a batch whose budget ran out while throttled went to the spool and was re-sent from
// there at once. The destination's wait holds for every sender and every attempt.
TEST_F(PipelineExporterTest, RetryAfterHoldsAcrossTheSpoolHandoff) {
  ExporterOptions o = Spooled();
  o.retry.max_backoff = 1s;
  o.retry.max_elapsed = 100ms;  // shorter than the Retry-After: the batch moves to the spool
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  sender().Set(SendOutcome::Kind::kRetryable, 150ms);
  OfferRange(e, 0, 10, 10);
  ASSERT_TRUE(WaitUntil([&] { return sender().calls() >= 4; }));
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitUntil([&] { return sender().delivered().size() == 10; }));
  e.Stop(1s);
  const auto t = sender().call_times();
  for (size_t i = 1; i < t.size(); ++i)
    EXPECT_GE(t[i] - t[i - 1], 145ms) << "attempt " << i + 1 << " came "
                                      << std::chrono::duration_cast<std::chrono::milliseconds>(t[i] - t[i - 1]).count()
                                      << " ms after a Retry-After of 150 ms";
  const auto s = e.metrics().Get();
  EXPECT_EQ(s.delivered, 10u);
  EXPECT_EQ(s.DroppedTotal(), 0u);
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, GivesUpAfterMaxElapsedWithoutSpool) {
  ExporterOptions o = Fast();
  o.retry.max_elapsed = 150ms;
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  OfferRange(e, 0, 7, 7);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitUntil([&] { return Dropped(e.metrics().Get(), DropReason::kRetriesExhausted) == 7; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms) << "gave up before max elapsed";
  EXPECT_GT(sender().calls(), 3) << "max elapsed, not a handful of attempts, bounds the retries";
  EXPECT_EQ(GlobalMetrics().Failed(FailReason::kRetriesExhausted), 7u);
  e.Stop(1s);
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, MaxAttemptsIsAnExtraCap) {
  ExporterOptions o = Fast();
  o.senders = 1;
  o.retry.max_attempts = 3;
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  OfferRange(e, 0, 4, 4);
  ASSERT_TRUE(WaitUntil([&] { return Dropped(e.metrics().Get(), DropReason::kRetriesExhausted) == 4; }));
  EXPECT_EQ(sender().calls(), 3);
  EXPECT_EQ(e.metrics().Get().retries, 2u);
  e.Stop(1s);
}

TEST_F(PipelineExporterTest, PermanentAndRefusedAreDroppedNotRetried) {
  ExporterOptions o = Fast();
  o.senders = 1;
  Exporter& e = StartExporter(o);
  sender().RefuseEach(1);
  OfferRange(e, 0, 5, 5);
  ASSERT_TRUE(WaitUntil([&] { return e.metrics().Get().delivered == 4; }));
  sender().Set(SendOutcome::Kind::kPermanent);
  OfferRange(e, 5, 3, 3);
  ASSERT_TRUE(WaitUntil([&] { return Dropped(e.metrics().Get(), DropReason::kPermanent) == 3; }));
  e.Stop(1s);
  const auto s = e.metrics().Get();
  EXPECT_EQ(Dropped(s, DropReason::kRefused), 1u);
  EXPECT_EQ(sender().calls(), 2);
  EXPECT_EQ(GlobalMetrics().Failed(FailReason::kUnprocessed), 1u);
  EXPECT_EQ(GlobalMetrics().Failed(FailReason::kPermanentError), 3u);
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, FullMemoryWithoutSpoolDropsTheOldestFirst) {
  ExporterOptions o = Fast();
  o.senders = 1;
  o.queue_bytes = QueueFor(20);
  Exporter& e = StartExporter(o, SendOutcome::Kind::kDelivered, /*stalled=*/true);
  EXPECT_EQ(OfferRange(e, 0, 100, 10), 100u);  // room is made from the oldest
  const auto stalled = e.metrics().Get();
  EXPECT_GT(Dropped(stalled, DropReason::kQueueFull), 0u);
  EXPECT_LE(stalled.queued, 20 + 50);  // the bound, plus the batch in flight counted before it
  EXPECT_EQ(GlobalMetrics().segments_spilled.load(), Dropped(stalled, DropReason::kQueueFull));
  EXPECT_EQ(GlobalMetrics().buffer_segments.load(), stalled.queued) << "the global gauge follows evictions";
  sender().Stall(false);
  ASSERT_TRUE(WaitIdle(e));
  e.Stop(1s);
  EXPECT_EQ(GlobalMetrics().buffer_segments.load(), 0);
  EXPECT_EQ(GlobalMetrics().buffer_bytes.load(), 0);
  // The newest documents survived: the last one offered was delivered.
  auto got = sender().delivered();
  ASSERT_FALSE(got.empty());
  EXPECT_NE(std::find(got.begin(), got.end(), Docs(99, 1)[0]), got.end());
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, ADocumentLargerThanTheQueueEvictsNothing) {
  ExporterOptions o = Fast();
  o.senders = 1;
  o.queue_bytes = QueueFor(20);
  Exporter& e = StartExporter(o, SendOutcome::Kind::kDelivered, /*stalled=*/true);
  OfferRange(e, 0, 10, 10);
  std::vector<std::string> huge = {std::string(o.queue_bytes + 1, 'h')};
  EXPECT_EQ(e.Offer(huge), 0u);
  const auto s = e.metrics().Get();
  EXPECT_EQ(Dropped(s, DropReason::kQueueFull), 1u);
  EXPECT_EQ(s.queued, 10);
  ExpectBalanced(e.metrics());
  sender().Stall(false);
  e.Stop(1s);
  EXPECT_EQ(sender().delivered().size(), 10u);
}

TEST_F(PipelineExporterTest, OutageSpillsToTheSpoolAndReplaysInOrderExactlyOnce) {
  ExporterOptions o = Spooled();
  o.senders = 1;
  o.queue_bytes = QueueFor(30);
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  EXPECT_EQ(OfferRange(e, 0, 1000, 25), 1000u);
  auto during = e.metrics().Get();
  EXPECT_GT(during.spooled, 800);
  EXPECT_EQ(during.DroppedTotal(), 0u);
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitUntil([&] { return sender().delivered().size() >= 1000; }));
  ASSERT_TRUE(WaitIdle(e));
  e.Stop(1s);
  auto got = sender().delivered();
  ExpectEachOnce(got, 0, 1000);
  // The spool holds what left memory oldest-first, and is read before memory: order is kept
  // except for the batch that was in flight when the outage began.
  size_t in_order = 0;
  for (size_t i = 1; i < got.size(); ++i) in_order += Index(got[i - 1]) < Index(got[i]);
  EXPECT_GT(in_order, 900u);
  const auto s = e.metrics().Get();
  EXPECT_EQ(s.delivered, 1000u);
  EXPECT_EQ(s.DroppedTotal(), 0u);
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, ParallelReplayAcknowledgesEverythingDeliveredAndNothingElse) {
  ExporterOptions o = Spooled();
  o.senders = 4;
  o.queue_bytes = QueueFor(30);
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  OfferRange(e, 0, 2000, 20);
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitIdle(e));
  e.Stop(1s);
  EXPECT_EQ(e.metrics().Get().delivered, 2000u);
  ExpectBalanced(e.metrics());
  ExpectEachOnce(sender().delivered(), 0, 2000);
  // Every delivered record was acknowledged: a restart replays nothing.
  GlobalMetrics().ResetForTest();
  Exporter& again = StartExporter(o);
  EXPECT_EQ(again.metrics().Get().received, 0u);
  again.Stop(1s);
  EXPECT_TRUE(sender().delivered().empty());
}

// Issue #12: the spool's size bound evicted a chunk whose record a sender was delivering, so its
// segments were counted both dropped{spool_full} and delivered (spooled went negative).
TEST_F(PipelineExporterTest, ASpoolRecordInFlightIsNeverAlsoEvictedForSize) {
  ExporterOptions o = Spooled();
  o.senders = 1;
  o.max_batch_segments = 10;
  o.queue_bytes = 30 * SegmentBuffer::AccountedSize(Docs(0, 1)[0]);
  o.spool.max_bytes = 8 << 10;  // two 4 KiB chunks of zstd-compressed records of 10: the flood below evicts
  ASSERT_NO_FATAL_FAILURE(Prefill(o, 0, 100, 10));
  // The sender reads the first spool record (documents 0..9) and stalls delivering it.
  Exporter& e = StartExporter(o, SendOutcome::Kind::kDelivered, /*stalled=*/true);
  ASSERT_TRUE(WaitUntil([&] { return sender().calls() == 1; }));
  OfferRange(e, 100, 1000, 20);
  EXPECT_GT(Dropped(e.metrics().Get(), DropReason::kSpoolFull), 0u) << "the flood did not reach the spool's bound";
  sender().Stall(false);
  ASSERT_TRUE(WaitUntil([&] {
    const auto s = e.metrics().Get();
    return s.spooled <= 0 && s.queued == 0;
  }));
  e.Stop(1s);
  const auto s = e.metrics().Get();
  const auto got = sender().delivered();
  EXPECT_EQ(s.spooled, 0);
  EXPECT_EQ(s.delivered, got.size());
  EXPECT_EQ(s.received, 1100u);
  EXPECT_EQ(s.delivered + s.DroppedTotal(), 1100u);
  std::map<int, int> seen;
  for (const auto& d : got) ++seen[Index(d)];
  for (int i = 0; i < 10; ++i) EXPECT_EQ(seen[i], 1) << "document " << i << " of the record in flight";
  for (const auto& [i, n] : seen) EXPECT_EQ(n, 1) << "document " << i << " delivered twice";
  ExpectBalanced(e.metrics());
}

// Issue #12: during an outage every sender held a spool record, retried forever, so memory batches
// were never tried and never reached the spool (a SIGKILL lost them). Now memory drains to the
// spool promptly, with one sender or several, and everything is replayed once the destination is back.
TEST_F(PipelineExporterTest, DuringAnOutageMemoryMovesToTheSpoolPromptly) {
  for (int senders : {1, 4}) {
    SCOPED_TRACE("senders " + std::to_string(senders));
    GlobalMetrics().ResetForTest();
    fs::remove_all(dir_);
    ExporterOptions o = Spooled();
    o.senders = senders;
    o.max_batch_segments = 10;
    o.retry.initial_backoff = 20ms;
    o.retry.max_backoff = 50ms;
    o.retry.max_elapsed = 60s;  // no memory batch exhausts its budget in this test
    ASSERT_NO_FATAL_FAILURE(Prefill(o, 0, 50, 10));
    Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
    OfferRange(e, 50, 200, 10);
    EXPECT_TRUE(WaitUntil(
        [&] {
          const auto s = e.metrics().Get();
          return s.queued == 0 && s.spooled == 250;
        },
        3s))
        << "queued " << e.metrics().Get().queued << " spooled " << e.metrics().Get().spooled;
    EXPECT_EQ(e.metrics().Get().DroppedTotal(), 0u);
    ExpectBalanced(e.metrics());
    sender().Set(SendOutcome::Kind::kDelivered);
    ASSERT_TRUE(WaitIdle(e));
    e.Stop(1s);
    const auto got = sender().delivered();
    ExpectEachOnce(got, 0, 250);
    if (senders == 1) {  // the spool keeps order; one sender replays it in order
      for (size_t i = 1; i < got.size(); ++i) EXPECT_LT(Index(got[i - 1]), Index(got[i]));
    }
    EXPECT_EQ(e.metrics().Get().delivered, 250u);
    ExpectBalanced(e.metrics());
  }
}

// Issue #12: one spooled record the destination keeps refusing (retryably) while it takes the rest
// blocked replay (it was always the probe) and, once passed, held back every acknowledgement behind
// it (the bookkeeping grew; a crash would have replayed everything since it).
TEST_F(PipelineExporterTest, ARecordThatKeepsFailingNeitherBlocksReplayNorHoldsBackAcks) {
  ExporterOptions o = Spooled();
  o.max_batch_segments = 2;
  ASSERT_NO_FATAL_FAILURE(Prefill(o, 0, 1200, 2));  // 600 records; the first holds the poison
  Exporter& e = StartExporter(o, SendOutcome::Kind::kDelivered, false, Docs(0, 1)[0]);
  ASSERT_TRUE(WaitUntil([&] { return sender().delivered().size() == 1198; }))
      << sender().delivered().size() << " of 1198 delivered behind the failing record";
  // The acknowledgements passed it: only its two documents are still spooled.
  EXPECT_TRUE(WaitUntil([&] { return e.metrics().Get().spooled == 2; })) << e.metrics().Get().spooled;
  ExpectBalanced(e.metrics());
  e.Stop(100ms);
  ExpectEachOnce(sender().delivered(), 2, 1198);
  ExpectBalanced(e.metrics());
  // A restart replays that record only, not everything delivered since it.
  GlobalMetrics().ResetForTest();
  Exporter& again = StartExporter(o);
  EXPECT_EQ(again.metrics().Get().received, 2u);
  ASSERT_TRUE(WaitIdle(again));
  again.Stop(1s);
  ExpectEachOnce(sender().delivered(), 0, 2);
}

TEST_F(PipelineExporterTest, WhatIsLeftAtShutdownIsReplayedAfterARestart) {
  {
    Exporter& down = StartExporter(Spooled(), SendOutcome::Kind::kRetryable);
    OfferRange(down, 0, 120, 120);
    std::this_thread::sleep_for(50ms);
    down.Stop(100ms);
    const auto s = down.metrics().Get();
    EXPECT_EQ(s.spooled, 120);
    EXPECT_EQ(s.queued, 0);
    EXPECT_EQ(s.DroppedTotal(), 0u);
    ExpectBalanced(down.metrics());
  }
  GlobalMetrics().ResetForTest();
  Exporter& e = StartExporter(Spooled());
  EXPECT_EQ(e.metrics().Get().received, 120u) << "recovered segments count as received";
  OfferRange(e, 120, 5, 5);
  ASSERT_TRUE(WaitUntil([&] { return sender().delivered().size() == 125; }));
  e.Stop(1s);
  ExpectEachOnce(sender().delivered(), 0, 125);
  const auto s = e.metrics().Get();
  EXPECT_EQ(s.delivered, 125u);
  EXPECT_EQ(s.spooled, 0);
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, AnUnusableSpoolIsReportedAndMemoryStillWorks) {
  fs::create_directories(dir_);
  { std::ofstream(dir_ / "xray") << "a file where the spool directory should be"; }
  Exporter& e = StartExporter(Spooled());
  const auto s = e.metrics().Get();
  EXPECT_NE(s.spool_problem.find("unusable"), std::string::npos) << s.spool_problem;
  EXPECT_EQ(s.spool_errors[static_cast<size_t>(SpoolErrorKind::kOpen)], 1u);
  auto problems = GlobalMetrics().ReadinessProblems();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].rfind("exporter xray: spool ", 0), 0u) << problems[0];
  OfferRange(e, 0, 10, 10);
  ASSERT_TRUE(WaitUntil([&] { return sender().delivered().size() == 10; }));
  e.Stop(1s);
  ExpectBalanced(e.metrics());
}

// Real files whose every append first runs `before_append`: an error it returns fails the append
// (a full disk), time it spends slows it (a saturated disk).
class HookedDiskEnv : public SpoolEnv {
 public:
  explicit HookedDiskEnv(std::function<Status()> before_append) : before_append_(std::move(before_append)) {}
  int64_t NowUnixMs() override { return SpoolEnv::Default()->NowUnixMs(); }
  Result<std::unique_ptr<WritableFile>> OpenAppend(const std::string& path) override {
    auto real = SpoolEnv::Default()->OpenAppend(path);
    if (!real) return real.error();
    return std::unique_ptr<WritableFile>(new File(std::move(*real), before_append_));
  }

 private:
  class File : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> real, const std::function<Status()>& hook) : real_(std::move(real)), hook_(hook) {}
    Status Append(std::string_view data) override {
      if (Status st = hook_(); !st) return st;
      return real_->Append(data);
    }
    Status Sync() override { return real_->Sync(); }
    Status Truncate(uint64_t size) override { return real_->Truncate(size); }

   private:
    std::unique_ptr<WritableFile> real_;
    const std::function<Status()>& hook_;
  };
  const std::function<Status()> before_append_;
};

// Appends fail while `full` is set, as on a full disk.
struct FullDiskEnv : HookedDiskEnv {
  FullDiskEnv() : HookedDiskEnv([this] { return full ? Status(Error::Io("No space left on device")) : OkStatus(); }) {}
  std::atomic<bool> full{false};
};

// Every append takes `delay` first, as on a slow or saturated disk.
struct SlowDiskEnv : HookedDiskEnv {
  explicit SlowDiskEnv(std::chrono::milliseconds delay)
      : HookedDiskEnv([delay] {
          std::this_thread::sleep_for(delay);
          return OkStatus();
        }) {}
};

TEST_F(PipelineExporterTest, AFullDiskIsCountedReportedAndRecoveredFrom) {
  FullDiskEnv env;
  ExporterOptions o = Spooled();
  o.senders = 1;
  o.spool_env = &env;
  o.spool_retry_interval = 10ms;
  o.queue_bytes = QueueFor(10);
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  // Memory takes 10; the rest goes to the spool. Offered 5 at a time (OfferRange waits for the
  // spool writer), as one offer of 40 would overflow the hand-off (dropped{spool_busy}).
  OfferRange(e, 0, 40, 5);
  EXPECT_GT(e.metrics().Get().spooled, 0);
  env.full = true;
  OfferRange(e, 40, 40, 5);
  auto s = e.metrics().Get();
  EXPECT_GT(Dropped(s, DropReason::kSpoolFull), 0u);
  EXPECT_GE(s.spool_errors[static_cast<size_t>(SpoolErrorKind::kWrite)], 1u);
  EXPECT_NE(s.spool_problem.find("No space left"), std::string::npos) << s.spool_problem;
  ASSERT_EQ(GlobalMetrics().ReadinessProblems().size(), 1u);
  ExpectBalanced(e.metrics());
  env.full = false;
  std::this_thread::sleep_for(20ms);
  OfferRange(e, 80, 40, 5);
  EXPECT_TRUE(e.metrics().Get().spool_problem.empty()) << "a good write clears the problem";
  EXPECT_TRUE(GlobalMetrics().ReadinessProblems().empty());
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitIdle(e));
  e.Stop(1s);
  s = e.metrics().Get();
  // While the spool is marked failed (spool_retry_interval), room is made by dropping: queue_full.
  EXPECT_EQ(s.delivered + Dropped(s, DropReason::kSpoolFull) + Dropped(s, DropReason::kQueueFull), 120u);
  ExpectBalanced(e.metrics());
}

TEST_F(PipelineExporterTest, FanOutGivesEveryExporterACopyAndADeadOneStallsNoOther) {
  FakeSender alive("store"), dead("xray");
  dead.Stall(true);
  ExporterOptions o = Fast();
  o.global_metrics = false;
  Exporter a(Fast(), alive), d(o, dead);
  a.Start();
  d.Start();
  FanOut fan({&a, &d});
  for (int i = 0; i < 300; i += 30) {
    auto docs = Docs(i, 30);
    EXPECT_EQ(fan.Offer(docs), 30u);
    EXPECT_TRUE(docs.empty());
  }
  ASSERT_TRUE(WaitUntil([&] { return alive.delivered().size() == 300; }));
  EXPECT_TRUE(dead.delivered().empty());
  EXPECT_EQ(d.metrics().Get().received, 300u);
  ExpectBalanced(a.metrics());
  ExpectBalanced(d.metrics());
  a.Stop(1s);
  d.Stop(50ms);  // gives up on the stalled sender: counted, not lost
  const auto ds = d.metrics().Get();
  EXPECT_EQ(Dropped(ds, DropReason::kShutdown), 300u);
  ExpectBalanced(d.metrics());
  EXPECT_EQ(GlobalMetrics().Failed(FailReason::kShutdown), 0u) << "only the primary exporter counts globally";
}

TEST_F(PipelineExporterTest, WaitingSinkReturnsOnceTheDocumentsLeftMemory) {
  FakeSender sender("store");
  ExporterOptions o = Fast();
  o.flush_interval = 1h;  // a partial batch nobody waits for would sit here for an hour
  o.senders = 1;
  Exporter e(o, sender);
  e.Start();
  FanOut fan({&e});
  WaitingSink sink(fan, e, 30s, WaitingSink::Wait::kAfterEachOffer, 0);
  // A waiter's partial batch is ready at once (it took the store's whole flush interval, 50 ms
  // a request): the sink returns with the documents delivered, long before its bound.
  for (int i = 0; i < 3; ++i) {
    auto docs = Docs(i * 3, 3);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(sink.Offer(docs), 3u);
    EXPECT_EQ(sender.delivered().size(), 3u * (i + 1));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  }
  // The plain fan-out still batches: a partial batch waits for the flush interval.
  auto docs = Docs(100, 3);
  EXPECT_EQ(fan.Offer(docs), 3u);
  EXPECT_EQ(e.metrics().Get().queued, 3);
  e.Stop(1s);
}

// PutTraceSegments in serve (Wait::kBeforeReads): Offer() returns once the documents are queued,
// even while the store is stalled, as long as at most `ahead` are not stored yet; past that it
// waits for the store. A read's AwaitStored() waits until everything accepted is stored.
TEST_F(PipelineExporterTest, WaitingSinkBeforeReadsReturnsAtOnceAndReadsWaitForTheStore) {
  FakeSender store("store");
  ExporterOptions o = Fast();
  o.flush_interval = 1h;  // only the waiter's Seal::kNow makes these ready
  o.senders = 1;
  Exporter e(o, store);
  e.Start();
  FanOut fan({&e});
  WaitingSink sink(fan, e, 10s, WaitingSink::Wait::kBeforeReads, /*ahead=*/5);
  sink.AwaitStored();  // nothing offered yet: returns at once
  store.Stall(true);
  auto docs = Docs(0, 3);
  EXPECT_EQ(sink.Offer(docs), 3u) << "queued, not waiting for the stalled store";
  EXPECT_TRUE(store.delivered().empty());
  std::atomic<bool> read_done{false};
  std::thread reader([&] {
    sink.AwaitStored();
    read_done = true;
  });
  std::atomic<bool> second_done{false};
  std::thread writer([&] {
    auto more = Docs(3, 3);  // 6 accepted, none stored: past `ahead`
    EXPECT_EQ(sink.Offer(more), 3u);
    second_done = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(read_done) << "a read waits while the accepted documents are not stored";
  EXPECT_FALSE(second_done) << "no more than `ahead` documents accepted and not stored";
  store.Stall(false);
  reader.join();
  writer.join();
  EXPECT_GE(store.delivered().size(), 3u) << "the read went on only once they were stored";
  ASSERT_TRUE(WaitUntil([&] { return store.delivered().size() == 6; }));
  e.Stop(1s);
}

// A PutTraceSegments caller in serve (WaitingSink) when the store's queue is full: its documents
// wait for room, then are refused whole (the API answers 429, clients retry) — never accepted by
// dropping documents queued for earlier callers, which were told theirs were taken. The other
// exporters get no copy of a refused offer.
TEST_F(PipelineExporterTest, WaitingSinkRefusesWholeWhenTheQueueStaysFullAndDropsNothing) {
  FakeSender store("store"), other("xray");
  store.Stall(true);
  ExporterOptions o = Fast();
  o.senders = 1;
  o.queue_bytes = QueueFor(10);
  ExporterOptions oo = Fast();
  oo.global_metrics = false;
  Exporter e(o, store), x(oo, other);
  e.Start();
  x.Start();
  FanOut fan({&e, &x});
  WaitingSink sink(fan, e, 200ms, WaitingSink::Wait::kAfterEachOffer, 0);
  auto first = Docs(0, 8);
  std::thread waiter([&] { EXPECT_EQ(sink.Offer(first), 8u); });  // fits; waits for the stalled store
  ASSERT_TRUE(WaitUntil([&] { return e.metrics().Get().received == 8; }));
  auto second = Docs(8, 5);  // 8 + 5 > 10: must not evict the first 8
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(sink.Offer(second), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms) << "waited for room first";
  EXPECT_EQ(second.size(), 5u) << "refused documents stay with the caller";
  auto s = e.metrics().Get();
  EXPECT_EQ(s.received, 8u);
  EXPECT_EQ(s.DroppedTotal(), 0u);
  ExpectBalanced(e.metrics());
  waiter.join();
  // Room freed while a caller waits: it is taken as soon as it fits.
  std::thread release([&] {
    std::this_thread::sleep_for(50ms);
    store.Stall(false);
  });
  auto third = Docs(13, 5);
  WaitingSink patient(fan, e, 5s, WaitingSink::Wait::kAfterEachOffer, 0);
  EXPECT_EQ(patient.Offer(third), 5u);
  release.join();
  ASSERT_TRUE(WaitUntil([&] { return store.delivered().size() == 13; }));
  ASSERT_TRUE(WaitUntil([&] { return other.delivered().size() == 13; }));
  EXPECT_EQ(x.metrics().Get().received, 13u) << "no copy of the refused offer";
  s = e.metrics().Get();
  EXPECT_EQ(s.DroppedTotal(), 0u);
  ExpectBalanced(e.metrics());
  e.Stop(1s);
  x.Stop(1s);
}

// Issue #12 follow-up: spool writes ran on the receiving thread (under the lock senders hold for
// spool I/O), so a slow disk stalled the UDP receiver and the kernel dropped datagrams. Now Offer()
// hands memory's oldest batches to the spool writer and never waits for a write; when the writer
// falls behind, the hand-off's bound drops its oldest batches, counted as spool_busy.
TEST_F(PipelineExporterTest, ASlowDiskNeverBlocksOfferAndTheHandOffBoundIsCounted) {
  SlowDiskEnv env(300ms);
  ExporterOptions o = Spooled();
  o.senders = 1;
  o.spool_env = &env;
  o.max_batch_segments = 10;
  o.queue_bytes = QueueFor(60);
  o.spool_handoff_bytes = QueueFor(20);  // 60 documents in memory, 20 more in the hand-off
  Exporter& e = StartExporter(o, SendOutcome::Kind::kDelivered, /*stalled=*/true);
  auto slowest = std::chrono::steady_clock::duration::zero();
  for (int i = 0; i < 400; i += 20) {  // 400 documents: far more than memory and the hand-off hold
    auto docs = Docs(i, 20);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(e.Offer(docs), 20u);
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
    ExpectBalanced(e.metrics());
  }
  // Each spool write takes 300 ms: an Offer() that waited for one would take at least that.
  EXPECT_LT(slowest, 150ms) << "Offer() waited for the disk";
  auto s = e.metrics().Get();
  EXPECT_GT(Dropped(s, DropReason::kSpoolBusy), 0u) << "the hand-off's bound was never hit";
  EXPECT_EQ(Dropped(s, DropReason::kSpoolBusy) % 10, 0u) << "whole batches are dropped";
  EXPECT_EQ(s.DroppedTotal(), Dropped(s, DropReason::kSpoolBusy));
  EXPECT_EQ(GlobalMetrics().segments_spilled.load(), Dropped(s, DropReason::kSpoolBusy));
  sender().Stall(false);
  ASSERT_TRUE(WaitIdle(e, 30s));
  e.Stop(1s);
  s = e.metrics().Get();
  // Every document is either delivered once or counted as dropped.
  EXPECT_EQ(s.delivered + s.DroppedTotal(), 400u);
  EXPECT_EQ(sender().delivered().size(), s.delivered);
  std::map<int, int> seen;
  for (const auto& d : sender().delivered()) ++seen[Index(d)];
  for (const auto& [i, n] : seen) EXPECT_EQ(n, 1) << "document " << i << " delivered twice";
  ExpectBalanced(e.metrics());
}

// The first delivery after a down destination returns waits at most about probe_interval, not the
// exponential backoff's cap (15 s by default): measured from the moment the destination answers.
TEST_F(PipelineExporterTest, ADownDestinationIsProbedEveryProbeInterval) {
  ExporterOptions o = Spooled();
  o.senders = 2;
  o.retry.initial_backoff = 200ms;
  o.retry.max_backoff = 15s;  // the default: after 4 s of failures the backoff is already past 3 s
  o.retry.probe_interval = 300ms;
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  OfferRange(e, 0, 100, 10);
  std::this_thread::sleep_for(4s);
  ASSERT_TRUE(sender().delivered().empty());
  const int calls_in_outage = sender().calls();
  // One request per probe at most every ~probe_interval (full jitter below it), never a storm.
  EXPECT_LT(calls_in_outage, 4000 / 20) << "the down destination was hammered";
  const auto back = std::chrono::steady_clock::now();
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitUntil([&] { return !sender().delivered().empty(); }, 20s));
  const auto first = std::chrono::steady_clock::now() - back;
  // Without the cap the wait after 4 s of failures is uniform in [0, 3.2 s or 6.4 s].
  EXPECT_LT(first, 300ms + 700ms) << "first delivery "
                                  << std::chrono::duration_cast<std::chrono::milliseconds>(first).count()
                                  << " ms after the destination returned";
  ASSERT_TRUE(WaitIdle(e));
  e.Stop(1s);
  ExpectEachOnce(sender().delivered(), 0, 100);
  ExpectBalanced(e.metrics());
}

// Throttling (429, ThrottlingException) is the destination asking for less: the probe interval
// does not apply, the exponential backoff does.
TEST_F(PipelineExporterTest, AThrottlingDestinationKeepsTheExponentialBackoff) {
  ExporterOptions o = Spooled();
  o.senders = 2;
  o.retry.initial_backoff = 400ms;
  o.retry.max_backoff = 2s;
  o.retry.probe_interval = 20ms;  // were it applied, ~150 probes in 3 s
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  sender().Set(SendOutcome::Kind::kRetryable, std::nullopt, /*throttled=*/true);
  OfferRange(e, 0, 50, 10);
  std::this_thread::sleep_for(3s);
  // Full jitter over 400 ms, 800 ms, 1.6 s, 2 s, ...: about 6 probes in 3 s; 30 would take every
  // wait to be under 100 ms.
  EXPECT_LT(sender().calls(), 30);
  EXPECT_GT(sender().calls(), 0);
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitIdle(e, 15s));
  e.Stop(1s);
  ExpectEachOnce(sender().delivered(), 0, 50);
  ExpectBalanced(e.metrics());
}

// The value of `name{exporter="xray"}` in a scrape, or -1.
double Scraped(const std::string& body, const std::string& name) {
  const std::string key = name + "{exporter=\"xray\"} ";
  const size_t at = body.find("\n" + key);
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + 1 + key.size()));
}

TEST_F(PipelineExporterTest, SpoolGaugesAreOnMetricsOverHttp) {
  HealthServer health("127.0.0.1:0", [] { return true; });
  ASSERT_TRUE(health.Start());
  httplib::Client client("127.0.0.1", health.port());
  ExporterOptions o = Spooled();
  o.senders = 1;
  o.queue_bytes = QueueFor(20);
  Exporter& e = StartExporter(o, SendOutcome::Kind::kRetryable);
  OfferRange(e, 0, 300, 10);
  ASSERT_TRUE(WaitUntil([&] { return e.metrics().Get().spooled >= 250; }));
  std::this_thread::sleep_for(1100ms);  // the oldest record is now more than a second old
  auto r = client.Get("/metrics");
  ASSERT_TRUE(r);
  const std::string& body = r->body;
  for (const char* family : {"xrayd_spool_disk_bytes", "xrayd_spool_pending_records",
                             "xrayd_spool_oldest_record_age_seconds", "xrayd_spool_appended_raw_bytes_total",
                             "xrayd_spool_appended_disk_bytes_total"}) {
    EXPECT_NE(body.find(std::string("# HELP ") + family + " "), std::string::npos) << family;
    EXPECT_NE(body.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  const double disk = Scraped(body, "xrayd_spool_disk_bytes");
  const double raw = Scraped(body, "xrayd_spool_appended_raw_bytes_total");
  const double written = Scraped(body, "xrayd_spool_appended_disk_bytes_total");
  EXPECT_GT(disk, 0);
  EXPECT_GT(Scraped(body, "xrayd_spool_pending_records"), 0);
  EXPECT_GE(Scraped(body, "xrayd_spool_oldest_record_age_seconds"), 1.0);
  EXPECT_LT(Scraped(body, "xrayd_spool_oldest_record_age_seconds"), 60.0);
  EXPECT_GT(raw, written) << "documents of repeated characters compress";
  EXPECT_GE(raw, 250.0 * Docs(0, 1)[0].size());
  sender().Set(SendOutcome::Kind::kDelivered);
  ASSERT_TRUE(WaitIdle(e));
  r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(Scraped(r->body, "xrayd_spool_pending_records"), 0);
  EXPECT_EQ(Scraped(r->body, "xrayd_spool_oldest_record_age_seconds"), 0);
  EXPECT_EQ(Scraped(r->body, "xrayd_spool_appended_raw_bytes_total"), raw) << "a counter";
  e.Stop(1s);
  r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body.find("xrayd_spool_disk_bytes{"), std::string::npos) << "a closed spool is not shown";
  health.Stop();
}

}  // namespace
}  // namespace xrayd::pipeline
