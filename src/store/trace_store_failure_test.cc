// TraceStore under SQLite failures, over real files: a full database (PRAGMA max_page_count on the
// store's own connection: SQLite then fails exactly as on a full disk, with SQLITE_FULL), a
// read-only database (PRAGMA query_only: SQLITE_READONLY, as a write-protected file gives; these
// tests run as root, where chmod cannot make a file read-only), and a database locked by another
// connection (SQLITE_BUSY). Each checks the error kind, the on_error count, that a failed Append
// leaves no part of its batch behind, and that everything acknowledged survives a reopen.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "store/trace_store.h"

namespace xrayd::store {
namespace {

using nlohmann::json;

constexpr double kT0 = 1500000000;

// The connection most recently opened in this process: the store's, right after Open(). Captured
// with sqlite3_auto_extension, SQLite's hook that runs for every new connection.
sqlite3* g_last_connection = nullptr;
int CaptureConnection(sqlite3* db, const char**, const void*) {
  g_last_connection = db;
  return SQLITE_OK;
}

std::string TraceId(int i) {
  char id[40];
  std::snprintf(id, sizeof id, "1-5759e988-%024x", i);
  return id;
}

// One root segment per trace, `pad` bytes of metadata each.
std::vector<std::string> Batch(int first, int n, size_t pad = 0) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) {
    json d = {{"trace_id", TraceId(i)}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"},
              {"start_time", kT0 + i}, {"end_time", kT0 + i + 0.5}, {"annotations", {{"n", i}}},
              {"subsegments", json::array({{{"id", "bbbbbbbbbbbbbbb1"}, {"name", "db"}, {"namespace", "remote"},
                                            {"start_time", kT0 + i}, {"end_time", kT0 + i + 0.1}}})}};
    if (pad) d["metadata"] = {{"pad", std::string(pad, 'x')}};
    out.push_back(d.dump());
  }
  return out;
}

class StoreFailureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(&CaptureConnection));
  }
  static void TearDownTestSuite() { sqlite3_reset_auto_extension(); }

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("xrayd-store-fail-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    StoreOptions o;
    o.data_dir = dir_.string();
    o.busy_timeout_ms = 50;
    o.retention_seconds = 3600;
    o.on_error = [this](const Error& e) { (e.IsRetryable() ? retryable_ : permanent_)++; };
    g_last_connection = nullptr;
    auto s = TraceStore::Open(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    ASSERT_NE(g_last_connection, nullptr);
    conn_ = g_last_connection;
  }
  // Runs SQL on the store's own connection (the test is single-threaded: nothing else uses it now).
  void OnStoreConnection(const std::string& sql) {
    ASSERT_EQ(sqlite3_exec(conn_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(conn_);
  }
  int64_t PageCount() {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(conn_, "PRAGMA page_count", -1, &s, nullptr);
    sqlite3_step(s);
    const int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
  }
  // Rows of `table` for trace ids in [first, first + n), counted through a separate connection.
  int64_t RowsOf(const char* table, int first, int n) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    const std::string sql = std::string("SELECT count(*) FROM ") + table + " WHERE trace_id >= ?1 AND trace_id < ?2";
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    const std::string lo = TraceId(first), hi = TraceId(first + n);
    sqlite3_bind_text(s, 1, lo.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, hi.c_str(), -1, SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    const int64_t count = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return count;
  }
  // Every table holds exactly the rows of traces [first, first + n) that `present` says.
  void ExpectTraces(int first, int n, bool present) {
    for (const char* table : {"traces", "segments", "annotations", "trace_services"})
      EXPECT_EQ(RowsOf(table, first, n), present ? (std::string(table) == "trace_services" ? 2 * n : n) : 0) << table;
  }

  std::filesystem::path dir_;
  std::unique_ptr<TraceStore> store_;
  sqlite3* conn_ = nullptr;
  int retryable_ = 0, permanent_ = 0;
};

TEST_F(StoreFailureTest, FullDatabaseFailsTheWholeBatchRetryablyAndKeepsWhatWasAcknowledged) {
  auto acked = store_->Append(Batch(0, 20));
  ASSERT_TRUE(acked) << acked.error().message;
  OnStoreConnection("PRAGMA max_page_count=" + std::to_string(PageCount() + 4));
  const auto big = Batch(1000, 300, 2000);  // ~600 KB: far past 4 more 16 KiB pages
  auto failed = store_->Append(big);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, Error::Kind::kRetryable) << failed.error().message;
  EXPECT_NE(failed.error().message.find("full"), std::string::npos) << failed.error().message;
  EXPECT_EQ(retryable_, 1);
  EXPECT_EQ(permanent_, 0);
  ExpectTraces(1000, 300, false);  // no partial batch
  ExpectTraces(0, 20, true);
  // The same batch succeeds once there is room (what the exporter's retry relies on).
  OnStoreConnection("PRAGMA max_page_count=1073741823");
  auto retried = store_->Append(big);
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_TRUE(retried->empty());
  Reopen();
  ExpectTraces(0, 20, true);
  ExpectTraces(1000, 300, true);
  EXPECT_EQ((*store_->Summary(TraceId(1005)))->annotations.size(), 1u);
}

TEST_F(StoreFailureTest, ReadOnlyDatabaseIsAPermanentError) {
  ASSERT_TRUE(store_->Append(Batch(0, 5)));
  OnStoreConnection("PRAGMA query_only=1");
  auto failed = store_->Append(Batch(100, 5));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, Error::Kind::kPermanent) << failed.error().message;
  EXPECT_NE(failed.error().message.find("readonly"), std::string::npos) << failed.error().message;
  auto setting = store_->PutSetting("groups", "[]");
  ASSERT_FALSE(setting);
  EXPECT_EQ(setting.error().kind, Error::Kind::kPermanent);
  auto retention = store_->EnforceRetention(kT0 + 1e6);  // everything is past retention
  ASSERT_FALSE(retention);
  EXPECT_EQ(retention.error().kind, Error::Kind::kPermanent);
  EXPECT_EQ(permanent_, 3);
  EXPECT_EQ(retryable_, 0);
  // Reads still work, and show the acknowledged traces only.
  auto rows = store_->ListTraces({kT0 - 10, kT0 + 1000, false, "", 100});
  ASSERT_TRUE(rows) << rows.error().message;
  EXPECT_EQ(rows->size(), 5u);
  Reopen();
  ExpectTraces(0, 5, true);
  ExpectTraces(100, 5, false);
}

TEST_F(StoreFailureTest, LockedDatabaseIsRetryableAndLosesNothing) {
  ASSERT_TRUE(store_->Append(Batch(0, 5)));
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto failed = store_->Append(Batch(100, 5));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, Error::Kind::kRetryable) << failed.error().message;
  auto retention = store_->EnforceRetention(kT0 + 1e6);
  ASSERT_FALSE(retention);
  EXPECT_EQ(retention.error().kind, Error::Kind::kRetryable);
  EXPECT_EQ(retryable_, 2);
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  ExpectTraces(100, 5, false);
  ExpectTraces(0, 5, true);  // the failed retention deleted nothing
  ASSERT_TRUE(store_->Append(Batch(100, 5)));
  Reopen();
  ExpectTraces(0, 5, true);
  ExpectTraces(100, 5, true);
}

// Retention works in chunks, each its own transaction, and removes traces whose start time no
// rule-abiding document can have (stored before the time rules existed).
TEST_F(StoreFailureTest, RetentionDeletesInChunksAndRemovesImpossibleTimes) {
  const int n = static_cast<int>(kRetentionChunk) * 2 + 37;
  ASSERT_TRUE(store_->Append(Batch(0, n)));
  ASSERT_TRUE(store_->Append(Batch(1'000'000, 3)));  // recent: kT0 + 1e6 s
  // A row as an older xrayd stored it from a start_time sent in milliseconds.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other,
                         "INSERT INTO traces(trace_id,trace_time,start_time,end_time) "
                         "VALUES('1-5759e988-ffffffffffffffffffffffff', 1465510280, 1465510280000, 1465510280000)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(other);
  auto deleted = store_->EnforceRetention(kT0 + 1'000'000 + 10);  // retention: 1 h
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, n + 1);
  ExpectTraces(0, n, false);
  ExpectTraces(1'000'000, 3, true);
  EXPECT_FALSE(*store_->Summary("1-5759e988-ffffffffffffffffffffffff"));
  EXPECT_EQ(retryable_ + permanent_, 0);
}

// The store applies the segment rules itself: what ingest refuses cannot be stored another way.
TEST_F(StoreFailureTest, AppendRefusesDocumentsTheSegmentRulesRefuse) {
  json ms = json::parse(Batch(7, 1)[0]);
  ms["start_time"] = 1465510280000.0;
  json backwards = json::parse(Batch(8, 1)[0]);
  backwards["end_time"] = kT0;
  auto r = store_->Append({ms.dump(), Batch(9, 1)[0], backwards.dump()});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].first, 0u);
  EXPECT_NE((*r)[0].second.find("invalid_time"), std::string::npos) << (*r)[0].second;
  EXPECT_EQ((*r)[1].first, 2u);
  ExpectTraces(7, 2, false);
  ExpectTraces(9, 1, true);
}

}  // namespace
}  // namespace xrayd::store
