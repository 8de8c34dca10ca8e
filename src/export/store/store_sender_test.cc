// StoreSender in a pipeline::Exporter (as `xrayd serve` runs it) over a real SQLite store made to
// fail: a batch that fails is kept and retried until it is stored, given up (counted) when the
// error is permanent or the attempts run out, and Stop() interrupts a retry backoff at once.
#include "export/store/store_sender.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "pipeline/exporter.h"
#include "telemetry/metrics.h"

namespace xrayd {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// The old StoreExporter's knobs: attempts and backoff.
struct StoreExporterOptions {
  int max_attempts;
  std::chrono::milliseconds initial_backoff, max_backoff;
};

std::string Doc(int i) {
  char id[40];
  std::snprintf(id, sizeof id, "1-5759e988-%024x", i);
  return json{{"trace_id", id}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"}, {"start_time", 1500000000.0 + i},
              {"end_time", 1500000000.5 + i}}
      .dump();
}

class StoreExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GlobalMetrics().ResetForTest();
    dir_ = std::filesystem::temp_directory_path() / ("xrayd-store-exporter-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    store::StoreOptions o;
    o.data_dir = dir_.string();
    o.busy_timeout_ms = 10;
    o.on_error = [](const Error& e) { GlobalMetrics().CountStoreError(e.IsRetryable()); };
    auto s = store::TraceStore::Open(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    sender_ = std::make_unique<StoreSender>(*store_);
  }
  void TearDown() override {
    exporter_.reset();
    sender_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Start(StoreExporterOptions o) {
    pipeline::ExporterOptions p;
    p.flush_interval = 10ms;
    p.merge_max_segments = kMaxSegmentsPerAppend;
    p.retry.max_attempts = o.max_attempts;
    p.retry.initial_backoff = o.initial_backoff;
    p.retry.max_backoff = o.max_backoff;
    exporter_ = std::make_unique<pipeline::Exporter>(p, *sender_);
    exporter_->Start();
  }
  void PushDocs(int first, int n) {
    std::vector<std::string> docs;
    for (int i = first; i < first + n; ++i) docs.push_back(Doc(i));
    ASSERT_EQ(exporter_->Offer(docs), static_cast<size_t>(n));
  }
  int64_t Queued() const { return exporter_->metrics().Get().queued; }
  // Holds the database's write lock from another connection until Unlock().
  // Makes the store refuse every segment for good (SQLITE_CONSTRAINT from a trigger).
  void RefuseEverySegment() {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TRIGGER refuse BEFORE INSERT ON segments BEGIN SELECT RAISE(ABORT, 'refused'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  void Lock() {
    ASSERT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &other_), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  void Unlock() {
    sqlite3_exec(other_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other_);
    other_ = nullptr;
  }
  static bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }
  size_t Stored() {
    auto rows = store_->ListTraces({1400000000, 1600000000, false, "", 100000});
    return rows ? rows->size() : 0;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::TraceStore> store_;
  std::unique_ptr<StoreSender> sender_;
  std::unique_ptr<pipeline::Exporter> exporter_;
  sqlite3* other_ = nullptr;
};

TEST_F(StoreExporterTest, ALockedStoreDelaysTheBatchButLosesNothing) {
  auto& m = GlobalMetrics();
  Lock();
  Start({50, 5ms, 20ms});
  PushDocs(0, 120);
  ASSERT_TRUE(WaitUntil([&] { return m.export_retries.load() >= 3; }, 5s));
  EXPECT_EQ(m.segments_sent.load(), 0u);
  Unlock();
  ASSERT_TRUE(WaitUntil([&] { return m.segments_sent.load() == 120; }, 5s)) << m.segments_sent.load();
  EXPECT_EQ(Stored(), 120u);
  EXPECT_GE(m.store_errors_retryable.load(), 3u);
  EXPECT_EQ(m.store_errors_permanent.load(), 0u);
  for (size_t i = 0; i < static_cast<size_t>(FailReason::kCount); ++i) EXPECT_EQ(m.segments_failed[i].load(), 0u);
  exporter_->Stop(1s);
  EXPECT_EQ(Queued(), 0);
}

TEST_F(StoreExporterTest, GivesUpCountedWhenAttemptsRunOut) {
  auto& m = GlobalMetrics();
  Lock();
  Start({3, 1ms, 2ms});
  PushDocs(0, 10);
  ASSERT_TRUE(WaitUntil([&] { return m.Failed(FailReason::kRetriesExhausted) == 10; }, 5s));
  EXPECT_EQ(m.export_retries.load(), 2u);
  EXPECT_EQ(m.store_errors_retryable.load(), 3u);
  Unlock();
  PushDocs(100, 4);  // the store works again: later batches are stored
  ASSERT_TRUE(WaitUntil([&] { return m.segments_sent.load() == 4; }, 5s));
  EXPECT_EQ(Stored(), 4u);
  exporter_->Stop(1s);
}

TEST_F(StoreExporterTest, APermanentErrorIsCountedAtOnce) {
  auto& m = GlobalMetrics();
  RefuseEverySegment();
  Start({10, 1ms, 2ms});
  PushDocs(0, 7);
  ASSERT_TRUE(WaitUntil([&] { return m.Failed(FailReason::kPermanentError) == 7; }, 5s));
  EXPECT_EQ(m.export_retries.load(), 0u);
  EXPECT_EQ(m.store_errors_permanent.load(), 1u);
  exporter_->Stop(1s);
}

// The outcome's message names the store once (the store's errors start with "trace store: ").
TEST_F(StoreExporterTest, AFailureNamesTheStoreOnce) {
  RefuseEverySegment();
  const pipeline::SendOutcome permanent = sender_->Send({Doc(0)});
  EXPECT_EQ(permanent.kind, pipeline::SendOutcome::Kind::kPermanent);
  EXPECT_EQ(permanent.message.rfind("trace store: ", 0), 0u) << permanent.message;
  EXPECT_EQ(permanent.message.find("trace store", 1), std::string::npos) << permanent.message;
  EXPECT_NE(permanent.message.find("refused"), std::string::npos) << permanent.message;
  Lock();
  const pipeline::SendOutcome busy = sender_->Send({Doc(1)});
  Unlock();
  EXPECT_EQ(busy.kind, pipeline::SendOutcome::Kind::kRetryable);
  EXPECT_EQ(busy.message.rfind("trace store: ", 0), 0u) << busy.message;
  EXPECT_EQ(busy.message.find("trace store", 1), std::string::npos) << busy.message;
}

TEST_F(StoreExporterTest, StopInterruptsARetryBackoff) {
  auto& m = GlobalMetrics();
  Lock();
  Start({100, 10s, 10s});  // the first retry would wait 10 s
  PushDocs(0, 5);
  ASSERT_TRUE(WaitUntil([&] { return m.export_retries.load() >= 1; }, 5s));
  const auto t0 = std::chrono::steady_clock::now();
  exporter_->Stop(100ms);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 2s) << "Stop waited out the backoff";
  EXPECT_EQ(m.Failed(FailReason::kShutdown), 5u);
  EXPECT_EQ(Queued(), 0);
  Unlock();
}

// The sender's threads yield to the receivers: Send() raises its own thread's nice value (and
// no other thread's).
TEST_F(StoreExporterTest, SendLowersItsOwnThreadsPriority) {
  const auto tid = [] { return static_cast<id_t>(::syscall(SYS_gettid)); };
  const int before = ::getpriority(PRIO_PROCESS, tid());
  int during = 0, other_after = 0;
  std::thread sender([&] {
    const auto outcome = sender_->Send({Doc(1)});
    EXPECT_EQ(outcome.kind, pipeline::SendOutcome::Kind::kDelivered);
    during = ::getpriority(PRIO_PROCESS, tid());
    sender_->Send({Doc(2)});  // once per thread: not raised again
    EXPECT_EQ(::getpriority(PRIO_PROCESS, tid()), during);
  });
  sender.join();
  other_after = ::getpriority(PRIO_PROCESS, tid());
  EXPECT_EQ(during, std::min(19, before + kSenderNiceIncrement));
  EXPECT_EQ(other_after, before);
}

}  // namespace
}  // namespace xrayd
