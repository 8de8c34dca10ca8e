// TraceStore's readers and writer on separate connections, over real files: a read answers while
// the store's own writer holds a write transaction open (held there by an update hook on the
// writer's connection, so the test does not depend on timing), readers only ever see whole
// committed batches, concurrent readers and a writer run without errors and lose nothing, and a
// reader that pins an old snapshot cannot make the WAL grow past its limit for good.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "store/trace_store.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

using testing::Batch;
using testing::kT0;
using testing::TraceId;

// Blocks the writer inside its transaction: the first row it writes signals `entered` and waits
// for `release`.
struct WriteLatch {
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> fired{false};
  static void Hook(void* self, int, const char*, const char*, sqlite3_int64) {
    auto* latch = static_cast<WriteLatch*>(self);
    if (latch->fired.exchange(true)) return;
    latch->entered.set_value();
    latch->released.wait_for(30s);  // the test releases it; the bound only keeps a broken test finite
  }
};

class StoreReadersTest : public testing::StoreFixture {
 protected:
  void Open(StoreOptions o = {}) {
    o.on_error = [this](const Error& e) {
      errors_++;
      ADD_FAILURE() << "store error: " << e.message;
    };
    StoreFixture::Open(o);
  }
  size_t Listed() {
    auto rows = store_->ListTraces({kT0 - 10, kT0 + 1e6, false, "", 100000});
    EXPECT_TRUE(rows) << rows.error().message;
    return rows ? rows->size() : 0;
  }

  std::atomic<int> errors_{0};
};

TEST_F(StoreReadersTest, ReadsAnswerWhileTheWriterHoldsATransaction) {
  Open();
  ASSERT_TRUE(store_->Append(Batch(0, 10)));
  ASSERT_TRUE(store_->PutSetting("groups", "[1]"));
  WriteLatch latch;
  sqlite3_update_hook(writer_, &WriteLatch::Hook, &latch);
  auto append = std::async(std::launch::async, [&] { return store_->Append(Batch(100, 50)); });
  ASSERT_EQ(latch.entered.get_future().wait_for(10s), std::future_status::ready) << "the writer never wrote";
  // The writer now holds its lock and an open write transaction until `release`. Every read must
  // finish anyway (before the fix each waited on the writer's mutex: these futures timed out).
  auto reads = std::async(std::launch::async, [&] {
    auto listed = store_->ListTraces({kT0 - 10, kT0 + 1e6, false, "", 1000});
    auto summary = store_->Summary(TraceId(3));
    auto segments = store_->SegmentsOf(TraceId(3));
    bool truncated = true;
    auto docs = store_->DocumentsInRange(kT0, kT0 + 1e6, 1000, &truncated);
    auto setting = store_->GetSetting("groups");
    auto unwritten = store_->Summary(TraceId(100));
    EXPECT_TRUE(listed && summary && segments && docs && setting && unwritten);
    EXPECT_EQ(listed->size(), 10u) << "only committed traces";
    EXPECT_TRUE(summary->has_value());
    EXPECT_EQ(segments->size(), 1u);
    EXPECT_EQ(docs->size(), 10u);
    EXPECT_FALSE(truncated);
    EXPECT_EQ(setting->value_or(""), "[1]");
    EXPECT_FALSE(unwritten->has_value()) << "a reader saw an uncommitted write";
  });
  // 5 s is far beyond these reads' milliseconds, and the write cannot end before release below.
  const bool answered = reads.wait_for(5s) == std::future_status::ready;
  latch.release.set_value();
  EXPECT_TRUE(answered) << "a read waited for the writer's transaction";
  reads.get();
  auto appended = append.get();
  ASSERT_TRUE(appended) << appended.error().message;
  sqlite3_update_hook(writer_, nullptr, nullptr);
  EXPECT_EQ(Listed(), 60u);
  EXPECT_TRUE(store_->Summary(TraceId(100))->has_value());
  EXPECT_EQ(errors_, 0);
}

// Readers on every path while one writer appends batch after batch: no errors, every listing holds
// whole batches only (a batch is one transaction), counts never go back, and afterwards every
// acknowledged trace is there.
TEST_F(StoreReadersTest, ConcurrentReadersAndWriterSeeWholeBatchesAndLoseNothing) {
  StoreOptions o;
  o.readers = 2;  // fewer connections than reading threads: the pool's wait is exercised too
  Open(o);
  constexpr int kBatch = 25, kBatches = 80, kReaders = 3;
  std::atomic<bool> done{false};
  std::atomic<int> acknowledged{0};
  std::atomic<int64_t> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      size_t last = 0;
      while (!done) {
        auto rows = store_->ListTraces({kT0 - 10, kT0 + 1e6, false, "", 100000});
        ASSERT_TRUE(rows) << rows.error().message;
        ASSERT_EQ(rows->size() % kBatch, 0u) << "a listing saw part of a batch";
        ASSERT_GE(rows->size(), last) << "a later read saw an older snapshot";
        last = rows->size();
        const int acked = acknowledged;  // everything acknowledged before this read is visible
        if (acked > 0) {
          auto s = store_->Summary(TraceId((acked - 1) * kBatch + r % kBatch));
          ASSERT_TRUE(s && s->has_value());
          auto segs = store_->SegmentsOf((*s)->trace_id);
          ASSERT_TRUE(segs);
          ASSERT_EQ(segs->size(), 1u);
        }
        bool truncated = false;
        auto docs = store_->DocumentsInRange(kT0, kT0 + 1e6, 100000, &truncated);
        ASSERT_TRUE(docs);
        ASSERT_EQ(docs->size() % kBatch, 0u);
        reads++;
      }
    });
  }
  for (int b = 0; b < kBatches; ++b) {
    if (b % 10 == 0) {  // interleave for sure: a loaded machine could otherwise run all appends first
      const int64_t seen = reads;
      for (int i = 0; i < 1000 && reads == seen; ++i) std::this_thread::sleep_for(10ms);
    }
    auto r = store_->Append(Batch(b * kBatch, kBatch));
    ASSERT_TRUE(r) << r.error().message;
    acknowledged = b + 1;
    if (b % 20 == 10) {
      ASSERT_TRUE(store_->PutSetting("groups", std::to_string(b)));
    }
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_GE(reads, kBatches / 10);
  EXPECT_EQ(Listed(), static_cast<size_t>(kBatch * kBatches));
  for (int i = 0; i < kBatch * kBatches; i += 7) EXPECT_TRUE(store_->Summary(TraceId(i))->has_value()) << i;
  EXPECT_EQ(errors_, 0);
}

// Retention deletes on the writer while a reader holds an older snapshot: the delete commits, the
// old snapshot still reads its rows, and the next read no longer sees them.
TEST_F(StoreReadersTest, RetentionDeletesWhileAReaderHoldsASnapshot) {
  StoreOptions o;
  o.retention_seconds = 3600;
  Open(o);
  ASSERT_TRUE(store_->Append(Batch(0, 20)));
  ASSERT_TRUE(store_->Append(Batch(100000, 5)));
  sqlite3* pin = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir_ / "traces.db").c_str(), &pin, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(pin, "BEGIN; SELECT count(*) FROM traces;", nullptr, nullptr, nullptr), SQLITE_OK);
  auto deleted = store_->EnforceRetention(kT0 + 100000 + 10);
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, 20);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(pin, "SELECT count(*) FROM traces", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 25) << "the pinned snapshot still sees what it saw";
  sqlite3_finalize(s);
  EXPECT_EQ(Listed(), 5u);
  sqlite3_exec(pin, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(pin);
  EXPECT_EQ(errors_, 0);
}

// A reader pinning an old snapshot holds the WAL: SQLite's passive checkpoints cannot pass it and
// the WAL grows. Once the reader ends, the next commit's TRUNCATE checkpoint (past wal_limit_bytes)
// empties the WAL instead of leaving it at its high-water mark.
TEST_F(StoreReadersTest, WalShrinksBackOnceAPinningReaderEnds) {
  StoreOptions o;
  o.wal_limit_bytes = 1 << 20;
  o.busy_timeout_ms = 200;  // the checkpoint's wait for the pinning reader, which gives up
  Open(o);
  ASSERT_TRUE(store_->Append(Batch(0, 10)));
  sqlite3* pin = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir_ / "traces.db").c_str(), &pin, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(pin, "BEGIN; SELECT count(*) FROM traces;", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto wal = dir_ / "traces.db-wal";
  for (int b = 0; b < 8; ++b) ASSERT_TRUE(store_->Append(Batch(1000 + b * 100, 100, 2000)));  // ~1.6 MB
  const auto pinned_size = std::filesystem::file_size(wal);
  EXPECT_GT(pinned_size, o.wal_limit_bytes) << "the pinning reader held the WAL";
  EXPECT_EQ(Listed(), 810u);  // pooled readers still read the newest snapshot meanwhile
  sqlite3_exec(pin, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(pin);
  ASSERT_TRUE(store_->Append(Batch(5000, 1)));
  EXPECT_LT(std::filesystem::file_size(wal), 64u << 10) << "truncated after the reader ended";
  EXPECT_EQ(Listed(), 811u);
  EXPECT_EQ(errors_, 0);
}

}  // namespace
}  // namespace xrayd::store
