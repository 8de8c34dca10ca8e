// TraceStore under SQLite failures, over real files: a full database (PRAGMA max_page_count on the
// store's own connection: SQLite then fails exactly as on a full disk, with SQLITE_FULL), a
// read-only database (PRAGMA query_only: SQLITE_READONLY, as a write-protected file gives; these
// tests run as root, where chmod cannot make a file read-only), and a database locked by another
// connection (SQLITE_BUSY). Each checks the error kind, the on_error count, that a failed Append
// leaves no part of its batch behind, and that everything acknowledged survives a reopen.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "store/trace_store.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;

using testing::kT0;
using testing::TraceId;

// One root segment per trace, `pad` bytes of metadata each, with a remote call (trace_services rows).
std::vector<std::string> Batch(int first, int n, size_t pad = 0) { return testing::Batch(first, n, pad, true); }

class StoreFailureTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    Reopen();
  }
  void Reopen() {
    StoreOptions o;
    o.busy_timeout_ms = 50;
    o.retention_seconds = 3600;
    o.on_error = [this](const Error& e) { (e.IsRetryable() ? retryable_ : permanent_)++; };
    Open(o);
    conn_ = writer_;
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
    // Child tables name their trace by its key (traces.tid).
    const std::string sql = std::string(table) == "traces"
                                ? "SELECT count(*) FROM traces WHERE trace_id >= ?1 AND trace_id < ?2"
                                : std::string("SELECT count(*) FROM ") + table +
                                      " x JOIN traces t ON t.tid = x.tid WHERE t.trace_id >= ?1 AND t.trace_id < ?2";
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

// Retention takes a deleted trace's root URL out of urls and its trigram index unless a trace it
// keeps still has it: http.url filters never name a URL nothing stored has, and urls stays bounded.
TEST_F(StoreFailureTest, RetentionDeletesUrlsNoTraceHas) {
  auto with_url = [](int i, double start, const std::string& url) {
    return json{{"trace_id", TraceId(i)}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"}, {"start_time", start},
                {"end_time", start + 0.5}, {"http", {{"request", {{"method", "GET"}, {"url", url}}}}}}
        .dump();
  };
  ASSERT_TRUE(store_->Append({with_url(1, kT0, "http://old/only"), with_url(2, kT0, "http://shared/x"),
                              with_url(3, kT0 + 100000, "http://shared/x"), with_url(4, kT0 + 100000, "http://new/y")}));
  auto urls = [&] {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(conn_, "SELECT url FROM urls ORDER BY url", -1, &s, nullptr), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    return out;
  };
  auto contains = [&](const std::string& part) {
    ListQuery q{0, 1e11, false, "", 100};
    q.condition = std::make_shared<const IndexCondition>(IndexCondition::UrlContains(part));
    ListPlan plan;
    auto rows = store_->ListTraces(q, &plan);
    EXPECT_TRUE(rows && plan.by_index);
    return rows ? rows->size() : 0;
  };
  EXPECT_EQ(urls(), (std::vector<std::string>{"http://new/y", "http://old/only", "http://shared/x"}));
  auto deleted = store_->EnforceRetention(kT0 + 100000 + 10);  // retention 1 h: traces 1 and 2 go
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, 2);
  EXPECT_EQ(urls(), (std::vector<std::string>{"http://new/y", "http://shared/x"}));
  EXPECT_EQ(contains("old/only"), 0u);
  EXPECT_EQ(contains("shared"), 1u);
  // The trigram index holds exactly the remaining URLs (FTS5's own consistency check).
  EXPECT_EQ(sqlite3_exec(conn_, "INSERT INTO url_trigrams(url_trigrams) VALUES('integrity-check')", nullptr, nullptr,
                         nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(conn_);
  // A URL deleted and sent again is stored and indexed again (the writer's cache forgot it).
  ASSERT_TRUE(store_->Append({with_url(5, kT0 + 100001, "http://old/only")}));
  EXPECT_EQ(contains("old/only"), 1u);
  EXPECT_EQ(retryable_ + permanent_, 0);
}

// Retention takes a deleted trace's user agent, annotation keys and services out of names and
// services unless a trace it keeps still uses them (user agents can be as many as the traces), and
// a name deleted and sent again is interned again (the writer's cache forgot it).
TEST_F(StoreFailureTest, RetentionDeletesNamesAndServicesNoTraceUses) {
  auto doc = [](int i, double start, const std::string& service, const std::string& agent, const std::string& key) {
    return json{{"trace_id", TraceId(i)}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", service}, {"origin", "AWS::EC2::Instance"},
                {"start_time", start}, {"end_time", start + 0.5},
                {"http", {{"request", {{"method", "GET"}, {"url", "http://x/"}, {"user_agent", agent}}}}},
                {"annotations", {{key, 1}}}}
        .dump();
  };
  const double late = kT0 + 100000;
  ASSERT_TRUE(store_->Append({doc(1, kT0, "old-svc", "agent/old", "old_key"), doc(2, kT0, "web", "agent/shared", "k"),
                              doc(3, late, "web", "agent/shared", "k"), doc(4, late, "new-svc", "agent/new", "new_key"),
                              // a user agent that is also a service's name stays while that service does
                              doc(5, kT0, "web", "new-svc", "k")}));
  auto column = [&](const char* sql) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(conn_, sql, -1, &s, nullptr), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    return out;
  };
  using V = std::vector<std::string>;
  const char* names = "SELECT name FROM names WHERE name != '' ORDER BY name";
  const char* services = "SELECT name FROM services ORDER BY name";
  EXPECT_EQ(column(names), (V{"AWS::EC2::Instance", "agent/new", "agent/old", "agent/shared", "k", "new-svc", "new_key",
                              "old-svc", "old_key", "web"}));
  auto deleted = store_->EnforceRetention(late + 10);  // retention 1 h: traces 1, 2 and 5 go
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, 3);
  // old-svc stays as a name only if something uses it: nothing does (its service row went first).
  EXPECT_EQ(column(names),
            (V{"AWS::EC2::Instance", "agent/new", "agent/shared", "k", "new-svc", "new_key", "web"}));
  EXPECT_EQ(column(services), (V{"new-svc", "web"}));
  // What remains reads as before.
  auto summary = store_->Summary(TraceId(3));
  ASSERT_TRUE(summary && *summary);
  EXPECT_EQ((*summary)->user_agent, "agent/shared");
  ASSERT_EQ((*summary)->annotations.size(), 1u);
  EXPECT_EQ((*summary)->annotations[0].key, "k");
  // Deleted names and services come back when sent again, with rows the readers resolve.
  ASSERT_TRUE(store_->Append({doc(6, late + 1, "old-svc", "agent/old", "old_key")}));
  auto again = store_->Summary(TraceId(6));
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->user_agent, "agent/old");
  EXPECT_EQ((*again)->root_name, "old-svc");
  ASSERT_EQ((*again)->annotations.size(), 1u);
  EXPECT_EQ((*again)->annotations[0].key, "old_key");
  ASSERT_EQ((*again)->services.size(), 1u);
  EXPECT_EQ((*again)->services[0].first, "old-svc");
  EXPECT_EQ(retryable_ + permanent_, 0);
}

// A store error names the store once: "trace store: <what>: <SQLite's text>".
TEST_F(StoreFailureTest, AnErrorNamesTheStoreOnce) {
  OnStoreConnection("PRAGMA query_only=1");
  auto failed = store_->Append(Batch(0, 1));
  ASSERT_FALSE(failed);
  const std::string& m = failed.error().message;
  EXPECT_EQ(m.rfind("trace store: ", 0), 0u) << m;
  EXPECT_EQ(m.find("trace store", 1), std::string::npos) << m;
  EXPECT_NE(m.find("readonly"), std::string::npos) << m;
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
