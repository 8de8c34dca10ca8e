// Schema 7's time-bucketed indexes (store/trace_query.h): a store written by the schema 6 release
// is migrated on open (old indexes gone, bucketed ones built, every index match unchanged), and
// retention's index-related statements seek the bucketed indexes and keep URLs still in use.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/trace_query.h"
#include "store/trace_store.h"
#include "tests/support/explain_query_plan.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;
using testing::kT0;

class BucketTest : public testing::StoreFixture {
 protected:
  // Rows of `sql` on the store file through its own connection, each row's columns joined by '|'.
  std::vector<std::string> Raw(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((dir_ / "traces.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db) << ": " << sql;
    std::vector<std::string> out;
    while (s && sqlite3_step(s) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const auto* t = sqlite3_column_text(s, i);
        row += (i ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
      out.push_back(row);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
  }

  // EXPLAIN QUERY PLAN of `sql` on the writer, one detail per line.
  std::string Explain(const std::string& sql) { return xrayd::testing::ExplainQueryPlan(writer_, sql); }

  // Every trace matching `c` by the index plan, as sorted trace ids.
  std::vector<std::string> Matching(IndexCondition c) {
    ListQuery q{0, 1e11, false, "", 1000};
    q.condition = std::make_shared<const IndexCondition>(std::move(c));
    ListPlan plan;
    auto rows = store_->ListTraces(q, &plan);
    EXPECT_TRUE(rows) << rows.error().message;
    EXPECT_TRUE(plan.by_index);
    std::vector<std::string> ids;
    if (rows)
      for (const auto& r : *rows) ids.push_back(r.trace_id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }
};

// tests/support/data/store_v6.db: written by the schema 6 release (main acae8cf's xrayd serve, fed
// by make_store_v3.py: 40 traces, annotations tier/n, URLs http://web/page/{0,1,2}).
TEST_F(BucketTest, MigratesAStoreWrittenByTheSchemaSixRelease) {
  std::filesystem::create_directories(dir_);
  std::filesystem::copy_file(std::string(XRAYD_SOURCE_DIR) + "/tests/support/data/store_v6.db", dir_ / "traces.db");
  ASSERT_EQ(Raw("SELECT value FROM meta WHERE key='schema_version'"), std::vector<std::string>{"6"});
  ASSERT_EQ(Raw("SELECT name FROM sqlite_master WHERE name IN ('annotations_by_value', 'traces_by_url') ORDER BY 1"),
            (std::vector<std::string>{"annotations_by_value", "traces_by_url"}));
  // What the schema 6 file's rows say, by plain SQL (no index plan).
  auto ids = [&](const std::string& where) {
    return Raw("SELECT t.trace_id FROM traces t WHERE " + where + " ORDER BY 1");
  };
  const auto gold = ids("t.tid IN (SELECT a.tid FROM annotations a JOIN names k ON k.id = a.key_id "
                        "WHERE k.name = 'tier' AND a.value = '\"gold\"')");
  const auto n7 = ids("t.tid IN (SELECT a.tid FROM annotations a JOIN names k ON k.id = a.key_id "
                      "WHERE k.name = 'n' AND a.value = '7')");
  const auto page1 = ids("t.url_id IN (SELECT id FROM urls WHERE instr(url, 'page/1') > 0)");
  const auto page2 = ids("t.url_id = (SELECT id FROM urls WHERE url = 'http://web/page/2')");
  ASSERT_EQ(gold.size(), 20u);
  ASSERT_EQ(n7.size(), 1u);
  ASSERT_FALSE(page1.empty());
  ASSERT_FALSE(page2.empty());

  StoreOptions o;
  o.index_bucket_shift = 2;  // 40 traces: 10 buckets
  Open(o);
  EXPECT_EQ(Raw("SELECT value FROM meta WHERE key IN ('schema_version', 'index_bucket_shift') ORDER BY key"),
            (std::vector<std::string>{"2", "7"}));
  EXPECT_EQ(Raw("SELECT name FROM sqlite_master WHERE name LIKE 'annotations_by%' OR name LIKE 'traces_by%url' "
                "ORDER BY 1"),
            (std::vector<std::string>{"annotations_by_key_bucket_value", "traces_by_bucket_url"}));
  EXPECT_EQ(Matching(IndexCondition::Annotation("tier", std::string("gold"))), gold);
  EXPECT_EQ(Matching(IndexCondition::Annotation("n", 7.0)), n7);
  EXPECT_EQ(Matching(IndexCondition::UrlContains("page/1")), page1);
  EXPECT_EQ(Matching(IndexCondition::UrlEquals("http://web/page/2")), page2);
  // New traces are indexed in the new buckets; a second open finds nothing to migrate.
  const std::string id = "1-5759e988-0000000000000000000000f7";
  ASSERT_TRUE(store_->Append({json{{"trace_id", id}, {"id", "00000000000000a1"}, {"name", "web"},
                                   {"start_time", kT0}, {"end_time", kT0 + 1}, {"annotations", {{"n", 7}}}}
                                  .dump()}));
  Open(o);
  auto with_new = n7;
  with_new.push_back(id);
  std::sort(with_new.begin(), with_new.end());
  EXPECT_EQ(Matching(IndexCondition::Annotation("n", 7.0)), with_new);
  EXPECT_EQ(Matching(IndexCondition::Annotation("tier", std::string("gold"))), gold);
}

std::string WithUrl(int i, const std::string& url) {
  char id[40];
  std::snprintf(id, sizeof id, "1-5759e988-%024x", i);
  return json{{"trace_id", id}, {"id", "00000000000000a1"}, {"name", "web"}, {"start_time", kT0 + i},
              {"end_time", kT0 + i + 0.5}, {"annotations", {{"k" + std::to_string(i % 3), i}}},
              {"http", {{"request", {{"method", "GET"}, {"url", url}}}}}}
      .dump();
}

// Retention deletes a URL with the last trace that has it, however many buckets lie between, and
// its "still used?" probes seek the bucketed indexes (never a walk of traces or annotations).
TEST_F(BucketTest, RetentionKeepsUrlsInUseAndSeeksBuckets) {
  StoreOptions o;
  o.index_bucket_shift = 1;  // 2 traces per bucket
  o.retention_seconds = 100;
  Open(o);
  std::vector<std::string> docs;
  for (int i = 0; i < 40; ++i) {
    std::string url = "http://c/mid-" + std::to_string(i);
    if (i < 10) url = "http://a/only-old";
    if (i < 5 || i >= 35) url = "http://b/both";
    docs.push_back(WithUrl(i, url));
  }
  auto r = store_->Append(docs);
  ASSERT_TRUE(r && r->empty());
  auto deleted = store_->EnforceRetention(kT0 + 20 + 100);  // traces 0..19 start before the cutoff
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, 20);
  const auto urls = Raw("SELECT url FROM urls ORDER BY url");
  EXPECT_EQ(urls.size(), 16u);  // mid-20 .. mid-34, and both (kept by traces 35..39)
  EXPECT_TRUE(std::binary_search(urls.begin(), urls.end(), "http://b/both"));
  EXPECT_FALSE(std::binary_search(urls.begin(), urls.end(), "http://a/only-old"));
  EXPECT_FALSE(std::binary_search(urls.begin(), urls.end(), "http://c/mid-10"));
  EXPECT_TRUE(Matching(IndexCondition::UrlContains("only-old")).empty());
  EXPECT_EQ(Matching(IndexCondition::UrlContains("both")).size(), 5u);
  EXPECT_EQ(Matching(IndexCondition::UrlEquals("http://c/mid-22")).size(), 1u);
  // Names: k0..k2 are still annotation keys of kept traces.
  EXPECT_EQ(Raw("SELECT count(*) FROM names WHERE name IN ('k0', 'k1', 'k2')"), std::vector<std::string>{"3"});

  // Retention's probes (trace_store.cc DeleteUnusedUrls, DeleteUnusedNames) by their plans.
  const std::string url_probe =
      Explain("SELECT 1 FROM traces WHERE " + detail::EveryBucket(1) + " AND url_id=?1 LIMIT 1");
  EXPECT_NE(url_probe.find("SEARCH traces USING COVERING INDEX traces_by_bucket_url (<expr>=? AND url_id=?)"),
            std::string::npos)
      << url_probe;
  const std::string key_probe = Explain("SELECT 1 FROM annotations WHERE key_id=?1 LIMIT 1");
  EXPECT_NE(key_probe.find("USING COVERING INDEX annotations_by_key_bucket_value (key_id=?)"), std::string::npos)
      << key_probe;
  for (const char* table : {"segments", "annotations", "trace_services", "traces"}) {
    const std::string del = Explain(std::string("DELETE FROM ") + table + " WHERE tid=?1");
    EXPECT_EQ(del.find("SCAN"), std::string::npos) << table << ":\n" << del;
  }
}

}  // namespace
}  // namespace xrayd::store
