// Filtered listings by index (store/trace_query.h): on randomised traces in a real store file, a
// listing with a filter's necessary condition keeps exactly the traces the plain time-ordered scan
// keeps, page by page through cursors, under either plan; and the index plan is what SQLite runs.
#include "store/trace_query.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "api/filter_expression.h"
#include "store/trace_store.h"
#include "tests/support/explain_query_plan.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;
using testing::kT0;

constexpr int kTraces = 1500;
constexpr double kSpan = 3600;  // trace starts spread over an hour after kT0

std::string Hex(std::mt19937_64& rng, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < digits; ++i) s.push_back(kHex[rng() % 16]);
  return s;
}

// A random trace: web (EC2) or api (no origin) at the root with a URL, flags and annotations,
// calls to DynamoDB (aws) and orders (remote); half the time an orders segment of its own, sent
// in a later batch (`later`).
void RandomTrace(std::mt19937_64& rng, int n, std::vector<std::string>* now, std::vector<std::string>* later) {
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  const double t = kT0 + std::uniform_real_distribution<double>(0, kSpan)(rng);
  char tid[40];
  std::snprintf(tid, sizeof tid, "1-%08x-%s", static_cast<unsigned>(t), Hex(rng, 24).c_str());
  static const char* kUrls[] = {"https://shop.example.com/product/1", "https://shop.example.com/product/12",
                                "https://shop.example.com/product/3", "https://shop.example.com/cart",
                                "http://api.internal/health", "http://api.internal/Product/1"};
  static const char* kTiers[] = {"gold", "silver", "bronze", "gold\"quoted\\"};
  const bool web = chance(0.6);
  json root = {{"trace_id", tid}, {"id", Hex(rng, 16)}, {"name", web ? "web" : "api"}, {"start_time", t},
               {"end_time", t + 0.2}, {"fault", chance(0.1)}, {"error", chance(0.15)}, {"throttle", chance(0.05)}};
  if (web) root["origin"] = "AWS::EC2::Instance";
  if (chance(0.9)) root["http"] = {{"request", {{"method", "GET"}, {"url", kUrls[rng() % 6]}}}};
  json ann = json::object();
  if (chance(0.7)) ann["tier"] = kTiers[rng() % 4];
  if (chance(0.7)) ann["n"] = static_cast<int>(rng() % 40);
  if (chance(0.3)) ann["ratio"] = static_cast<double>(rng() % 8) * 0.25;
  if (chance(0.3)) ann["vip"] = chance(0.5);
  if (chance(0.1)) ann["n"] = std::to_string(rng() % 40);  // the same key as a string
  root["annotations"] = ann;
  const std::string call = Hex(rng, 16);
  root["subsegments"] = json::array(
      {{{"id", Hex(rng, 16)}, {"name", "DynamoDB"}, {"namespace", "aws"}, {"start_time", t + 0.01},
        {"end_time", t + 0.02}, {"throttle", chance(0.2)}},
       {{"id", call}, {"name", "orders"}, {"namespace", "remote"}, {"start_time", t + 0.03}, {"end_time", t + 0.1},
        {"fault", chance(0.2)}}});
  now->push_back(root.dump());
  if (n % 2 == 0) {
    json orders = {{"trace_id", tid}, {"id", Hex(rng, 16)}, {"parent_id", call}, {"name", "orders"},
                   {"origin", "AWS::ECS::Container"}, {"start_time", t + 0.04}, {"end_time", t + 0.09},
                   {"error", chance(0.2)}, {"fault", chance(0.1)},
                   {"annotations", {{"tier", kTiers[rng() % 3]}, {"n", static_cast<int>(rng() % 40)}}}};
    later->push_back(orders.dump());
  }
}

// 8 traces per bucket of the bucketed indexes (store/trace_query.h): the 1,500 traces span ~190
// buckets, so every listing below seeks many, and the late documents land in old ones.
constexpr int kShift = 3;

StoreOptions Options() {
  StoreOptions o;
  o.index_bucket_shift = kShift;
  return o;
}

class TraceQueryTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    Open(Options());
    std::mt19937_64 rng(14);
    std::vector<std::string> now, later;
    for (int n = 0; n < kTraces; ++n) {
      RandomTrace(rng, n, &now, &later);
      if (now.size() >= 200) Append(now);
      if (later.size() >= 150) Append(later);
    }
    Append(now);
    Append(later);
  }
  void Append(std::vector<std::string>& docs) {
    auto r = store_->Append(docs);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->empty());
    docs.clear();
  }

  // A listing of the whole span under `text`'s necessary condition (which it must have).
  ListQuery WholeSpanQuery(const char* text) {
    auto filter = api::Filter::Parse(text);
    EXPECT_TRUE(filter) << text;
    ListQuery q;
    q.start_time = kT0;
    q.end_time = kT0 + kSpan;
    if (filter) q.condition = filter->NecessaryCondition();
    EXPECT_TRUE(q.condition) << text;
    return q;
  }

  // SQLite's EXPLAIN QUERY PLAN of `sql` (parameters unbound), one detail per line.
  std::string Explain(const std::string& sql) { return xrayd::testing::ExplainQueryPlan(writer_, sql); }

  // The trace ids `filter` keeps in q's range, listed `page` rows at a time through cursors, with
  // or without its necessary condition; plans used are appended to `plans`.
  std::vector<std::string> List(const api::Filter& filter, ListQuery q, bool with_condition, size_t page,
                                std::vector<ListPlan>* plans = nullptr) {
    std::vector<std::string> out;
    if (with_condition) q.condition = filter.NecessaryCondition();
    q.limit = page;
    for (int calls = 0; calls < 100000; ++calls) {
      ListPlan plan;
      auto rows = store_->ListTraces(q, &plan);
      EXPECT_TRUE(rows) << rows.error().message;
      if (!rows) return out;
      if (plans) plans->push_back(plan);
      for (const auto& r : *rows) {
        if (filter.Matches(r)) out.push_back(r.trace_id);
        q.cursor = ListCursorAfter(q, r);
      }
      if (rows->size() < page) return out;
    }
    ADD_FAILURE() << "listing did not end";
    return out;
  }
};

// Filters with an index condition, and some without (they must simply still work).
const char* const kFilters[] = {
    "annotation.tier = \"gold\"",
    "annotation.tier = \"gold\\\"quoted\\\\\"",
    "annotation.n = 7",
    "annotation.n = \"7\"",
    "annotation.ratio = 1.25",
    "annotation.ratio = 0",
    "annotation.vip = true",
    "annotation.vip",
    "annotation.vip = false",
    "annotation.missing = 1",
    "service(\"orders\")",
    "service(\"orders\") { fault }",
    "service(\"orders\") { error AND annotation.n = 3 }",
    "service(id(name: \"web\", type: \"AWS::EC2::Instance\"))",
    "service(id(name: \"api\", type: \"service\")) { throttle }",
    "service(id(name: \"orders\", type: \"remote\")) { fault }",
    "service(\"DynamoDB\") { throttle } AND annotation.tier = \"silver\"",
    "edge(\"web\", \"orders\") { error }",
    "http.url CONTAINS \"product/1\"",
    "http.url CONTAINS \"Product\"",
    "http.url = \"https://shop.example.com/product/3\"",
    "http.url BEGINSWITH \"https://shop\"",
    "http.url ENDSWITH \"/health\"",
    "fault",
    "error = true",
    "throttle != false",
    "annotation.tier = \"gold\" AND fault",
    "annotation.n = 3 OR service(\"orders\") { throttle }",
    "(annotation.n = 1 OR annotation.n = 2) AND http.url CONTAINS \"product\"",
    "annotation.tier = \"bronze\" AND NOT fault",
    "annotation.n = 5 OR responsetime > 1",
    "http.url CONTAINS \"pr\"",
    "NOT service(\"orders\")",
};

TEST_F(TraceQueryTest, IndexedListingsEqualTheScan) {
  struct Range {
    double start, end;
    bool by_trace_id;
  };
  const Range ranges[] = {{kT0 - 10, kT0 + kSpan + 10, false},
                          {kT0 + 600, kT0 + 1500, false},
                          {kT0 + 100, kT0 + 2000, true}};
  int indexed = 0;
  for (const char* text : kFilters) {
    auto filter = api::Filter::Parse(text);
    ASSERT_TRUE(filter) << text << ": " << filter.error().message;
    for (const auto& range : ranges) {
      ListQuery q;
      q.start_time = range.start;
      q.end_time = range.end;
      q.by_trace_id_time = range.by_trace_id;
      const auto scan = List(*filter, q, false, 1000000);
      for (int64_t bound : {kMaxIndexCandidates, int64_t{40}}) {
        q.max_index_candidates = bound;
        std::vector<ListPlan> plans;
        const auto by_index = List(*filter, q, true, 37, &plans);
        EXPECT_EQ(by_index, scan) << text << " over [" << range.start - kT0 << ", " << range.end - kT0 << "] bound "
                                  << bound;
        if (bound == kMaxIndexCandidates && filter->NecessaryCondition()) {
          for (const auto& p : plans) EXPECT_TRUE(p.by_index) << text << ": " << p.candidates << " candidates";
          indexed += 1;
        }
      }
    }
  }
  EXPECT_GE(indexed, 3 * 29);  // every filter but three has a condition
}

// The listing a condition gets is the one SQLite runs through the indexes (no walk of traces);
// the bucketed indexes are sought with all their columns: the key (annotations), one bucket at a
// time, and the value (a number by its range).
TEST_F(TraceQueryTest, IndexPlanUsesTheIndexes) {
  const char* const by_value = "USING COVERING INDEX annotations_by_key_bucket_value (key_id=? AND <expr>=? AND <expr>=?)";
  const char* const by_number =
      "USING COVERING INDEX annotations_by_key_bucket_value (key_id=? AND <expr>=? AND <expr>>? AND <expr><?)";
  const char* const by_url = "USING COVERING INDEX traces_by_bucket_url (<expr>=? AND url_id=?)";
  const std::pair<const char*, std::vector<const char*>> cases[] = {
      {"annotation.n = 7", {by_number}},
      {"annotation.ratio = 1.25", {by_number}},
      {"annotation.tier = \"gold\"", {by_value}},
      {"annotation.vip = true", {by_value}},
      {"annotation.vip = false", {by_value}},
      {"service(\"orders\") { fault }", {"trace_services_"}},
      {"http.url = \"https://shop.example.com/product/3\"", {by_url}},
      {"http.url CONTAINS \"product/1\"", {"url_trigrams", by_url}},
      {"fault", {"traces_fault_by_start"}},
  };
  for (const auto& [text, indexes] : cases) {
    ListQuery q = WholeSpanQuery(text);
    ListPlan plan;
    auto rows = store_->ListTraces(q, &plan);
    ASSERT_TRUE(rows) << rows.error().message;
    EXPECT_TRUE(plan.by_index) << text;
    EXPECT_LT(plan.candidates, kTraces) << text;
    const std::string details = Explain(plan.sql);
    for (const char* index : indexes) EXPECT_NE(details.find(index), std::string::npos) << text << ":\n" << details;
    // Traces are looked up by key, never walked.
    EXPECT_EQ(details.find("SCAN t\n"), std::string::npos) << text << ":\n" << details;
    EXPECT_EQ(details.find("SCAN traces"), std::string::npos) << text << ":\n" << details;
    EXPECT_EQ(details.find("SCAN annotations"), std::string::npos) << text << ":\n" << details;
    EXPECT_EQ(details.find("traces_by_start"), std::string::npos) << text << ":\n" << details;
  }
}

// Documents that arrive late for traces of old buckets (a root with its URL after a child, an
// annotation minutes later) update those buckets' index entries: the index plan finds them, and
// lists exactly what the scan keeps.
TEST_F(TraceQueryTest, LateDocumentsOfOldBucketsAreFound) {
  ListQuery all;
  all.start_time = kT0 - 10;
  all.end_time = kT0 + kSpan + 10;
  all.limit = 100000;
  auto rows = store_->ListTraces(all);
  ASSERT_TRUE(rows && rows->size() == kTraces);
  // The first trace stored: in the first bucket.
  const auto oldest = std::min_element(rows->begin(), rows->end(), [](auto& a, auto& b) { return a.key < b.key; });
  ASSERT_EQ(oldest->key >> kShift, 0) << oldest->key;
  const std::string annotated = oldest->trace_id, rooted = "1-5759e988-00000000000000000000beef";
  // A trace whose child came first (no URL) and whose root comes after 1,500 more traces.
  const double t = kT0 + 5;
  std::vector<std::string> child = {json{{"trace_id", rooted}, {"id", "00000000000000c1"},
                                         {"parent_id", "00000000000000a1"}, {"name", "child"},
                                         {"start_time", t + 0.1}, {"end_time", t + 0.2}}.dump()};
  Append(child);
  std::mt19937_64 rng(99);
  std::vector<std::string> now, later;
  for (int n = 0; n < kTraces; ++n) RandomTrace(rng, n, &now, &later);
  Append(now);
  Append(later);
  std::vector<std::string> late = {
      json{{"trace_id", rooted}, {"id", "00000000000000a1"}, {"name", "late-root"}, {"start_time", t},
           {"end_time", t + 1}, {"http", {{"request", {{"method", "GET"}, {"url", "https://late.example.com/x/y"}}}}}}
          .dump(),
      json{{"trace_id", annotated}, {"id", "00000000000000d1"}, {"name", "late-annotator"}, {"start_time", t},
           {"end_time", t + 1}, {"annotations", {{"lateness", "very"}, {"tier", "platinum"}}}}
          .dump()};
  Append(late);
  const std::pair<const char*, std::string> cases[] = {
      {"annotation.lateness = \"very\"", annotated},
      {"annotation.tier = \"platinum\" OR annotation.tier = \"nothing\"", annotated},
      {"http.url = \"https://late.example.com/x/y\"", rooted},
      {"http.url CONTAINS \"late.example\"", rooted},
  };
  for (const auto& [text, id] : cases) {
    auto filter = api::Filter::Parse(text);
    ASSERT_TRUE(filter) << text;
    ListQuery q;
    q.start_time = kT0 - 10;
    q.end_time = kT0 + kSpan + 10;
    std::vector<ListPlan> plans;
    const auto by_index = List(*filter, q, true, 7, &plans);
    EXPECT_EQ(by_index, std::vector<std::string>{id}) << text;
    EXPECT_EQ(by_index, List(*filter, q, false, 1000000)) << text;
    ASSERT_FALSE(plans.empty());
    EXPECT_TRUE(plans[0].by_index) << text;
    EXPECT_EQ(plans[0].candidates, 1) << text;
  }
}

// A store opened with another bucket shift rebuilds its bucketed indexes for it (and records it);
// listings stay exact.
TEST_F(TraceQueryTest, AnotherShiftRebuildsTheIndexes) {
  auto index_sql = [&] {
    std::string out;
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(writer_,
                                 "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master WHERE name IN "
                                 "('annotations_by_key_bucket_value', 'traces_by_bucket_url') ORDER BY name) UNION ALL "
                                 "SELECT value FROM meta WHERE key = 'index_bucket_shift'",
                                 -1, &s, nullptr),
              SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) out += reinterpret_cast<const char*>(sqlite3_column_text(s, 0)) + std::string("|");
    sqlite3_finalize(s);
    return out;
  };
  EXPECT_NE(index_sql().find("tid >> 3"), std::string::npos) << index_sql();
  StoreOptions o;
  o.index_bucket_shift = 7;
  Open(o);
  const std::string now = index_sql();
  EXPECT_EQ(now.find("tid >> 3"), std::string::npos) << now;
  EXPECT_NE(now.find("annotations(key_id, (tid >> 7)"), std::string::npos) << now;
  EXPECT_NE(now.find("traces((tid >> 7), url_id)"), std::string::npos) << now;
  EXPECT_TRUE(now.ends_with("|7|")) << now;
  for (const char* text : {"annotation.tier = \"silver\"", "http.url CONTAINS \"cart\"", "annotation.ratio = 0.5"}) {
    auto filter = api::Filter::Parse(text);
    ASSERT_TRUE(filter) << text;
    ListQuery q;
    q.start_time = kT0 - 10;
    q.end_time = kT0 + kSpan + 10;
    std::vector<ListPlan> plans;
    const auto by_index = List(*filter, q, true, 50, &plans);
    EXPECT_FALSE(by_index.empty()) << text;
    EXPECT_EQ(by_index, List(*filter, q, false, 1000000)) << text;
    EXPECT_TRUE(plans.at(0).by_index) << text;
  }
  StoreOptions bad;
  bad.data_dir = dir_.string();
  bad.index_bucket_shift = 31;
  auto refused = TraceStore::Open(bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("index_bucket_shift 31"), std::string::npos) << refused.error().message;
}

// Without a selective condition the listing walks the range as before.
TEST_F(TraceQueryTest, UnselectiveConditionScans) {
  ListQuery q = WholeSpanQuery("service(\"orders\")");  // every trace calls orders
  q.max_index_candidates = 100;
  q.limit = 10;
  ListPlan plan;
  auto rows = store_->ListTraces(q, &plan);
  ASSERT_TRUE(rows) << rows.error().message;
  EXPECT_FALSE(plan.by_index);
  EXPECT_EQ(plan.candidates, 101);
  EXPECT_EQ(rows->size(), 10u);
}

// Many flagged traces: the flag's partial index is walked in order, the other parts tested per row.
TEST_F(TraceQueryTest, ManyFlaggedTracesWalkTheFlagIndex) {
  for (const char* text : {"fault", "annotation.tier = \"gold\" AND error", "service(\"orders\") { fault }"}) {
    ListQuery q = WholeSpanQuery(text);
    q.max_index_candidates = 10;
    ListPlan plan;
    auto rows = store_->ListTraces(q, &plan);
    ASSERT_TRUE(rows) << rows.error().message;
    EXPECT_TRUE(plan.by_index && plan.flag_walk) << text;
    EXPECT_GT(plan.candidates, 10) << text;
    const std::string details = Explain(plan.sql);
    const std::string index = std::string(text).find("error") != std::string::npos ? "traces_error_by_start"
                                                                                   : "traces_fault_by_start";
    EXPECT_NE(details.find(index), std::string::npos) << text << ":\n" << details;
  }
}

// SegmentsOfTraces: each trace's segments exactly as SegmentsOf reads them (order, documents,
// kinds), in the order asked, an unknown or repeated id included.
TEST_F(TraceQueryTest, SegmentsOfTracesEqualsSegmentsOfEach) {
  ListQuery all;
  all.start_time = kT0 - 10;
  all.end_time = kT0 + kSpan + 10;
  all.limit = 100;
  auto rows = store_->ListTraces(all);
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 100u);
  std::vector<std::string> ids;
  for (const auto& r : *rows) ids.push_back(r.trace_id);
  ids.push_back("1-00000000-000000000000000000000000");  // not stored
  ids.push_back(ids[3]);
  auto batch = store_->SegmentsOfTraces(ids);
  ASSERT_TRUE(batch) << batch.error().message;
  ASSERT_EQ(batch->size(), ids.size());
  size_t two = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto one = store_->SegmentsOf(ids[i]);
    ASSERT_TRUE(one) << one.error().message;
    ASSERT_EQ((*batch)[i].size(), one->size()) << ids[i];
    two += one->size() == 2;
    for (size_t k = 0; k < one->size(); ++k) {
      EXPECT_EQ((*batch)[i][k].id, (*one)[k].id);
      EXPECT_EQ((*batch)[i][k].parent_id, (*one)[k].parent_id);
      EXPECT_EQ((*batch)[i][k].independent_subsegment, (*one)[k].independent_subsegment);
      EXPECT_EQ((*batch)[i][k].doc, (*one)[k].doc);
    }
  }
  EXPECT_TRUE((*batch)[100].empty());
  EXPECT_GT(two, 20u) << "traces of two documents are among them";
  auto none = store_->SegmentsOfTraces({});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

// Connections opened while a test runs, newest last (SQLite calls this for every new connection).
std::vector<sqlite3*>& OpenedConnections() {
  static std::vector<sqlite3*> opened;
  return opened;
}
int RecordConnection(sqlite3* db, const char**, const void*) {
  OpenedConnections().push_back(db);
  return SQLITE_OK;
}

// SegmentsOfTraces reads every trace in one snapshot: a batch committed between its reads of the
// first and the second trace (by a statement-trace hook on the reader's connection) is seen by
// neither, though both traces got a segment in it. Per-trace reads would show the second's.
TEST_F(TraceQueryTest, SegmentsOfTracesReadsOneSnapshot) {
  sqlite3_auto_extension(reinterpret_cast<void (*)()>(&RecordConnection));
  OpenedConnections().clear();
  StoreOptions o = Options();
  o.readers = 1;  // the one reader connection is the one recorded
  Open(o);
  ListQuery all;
  all.start_time = kT0 - 10;
  all.end_time = kT0 + kSpan + 10;
  all.limit = 2;
  auto rows = store_->ListTraces(all);
  ASSERT_TRUE(rows && rows->size() == 2u);
  ASSERT_FALSE(OpenedConnections().empty());
  sqlite3* const reader = OpenedConnections().back();
  ASSERT_NE(reader, writer_);
  const std::vector<std::string> ids = {(*rows)[0].trace_id, (*rows)[1].trace_id};
  const size_t before0 = store_->SegmentsOf(ids[0])->size(), before1 = store_->SegmentsOf(ids[1])->size();
  struct Hook {
    TraceStore* store;
    std::vector<std::string> docs;
    int reads = 0;
    bool appended = false;
    static int OnStatement(unsigned, void* self, void* stmt, void*) {
      auto* h = static_cast<Hook*>(self);
      const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(stmt));
      if (!sql || !std::strstr(sql, "JOIN segments s ON s.tid = t.tid WHERE t.trace_id")) return 0;
      if (++h->reads == 2) h->appended = h->store->Append(h->docs) && true;
      return 0;
    }
  } hook{store_.get(), {}, 0, false};
  for (const auto& id : ids)
    hook.docs.push_back(json{{"trace_id", id}, {"id", "00000000000000f1"}, {"name", "late"},
                             {"start_time", kT0 + 1}, {"end_time", kT0 + 2}}.dump());
  sqlite3_trace_v2(reader, SQLITE_TRACE_STMT, &Hook::OnStatement, &hook);
  auto batch = store_->SegmentsOfTraces(ids);
  sqlite3_trace_v2(reader, 0, nullptr, nullptr);
  sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(&RecordConnection));
  ASSERT_TRUE(batch) << batch.error().message;
  ASSERT_TRUE(hook.appended) << "the hook committed between the two reads";
  EXPECT_EQ((*batch)[0].size(), before0);
  EXPECT_EQ((*batch)[1].size(), before1) << "the second trace was read in a later snapshot";
  EXPECT_EQ(store_->SegmentsOf(ids[0])->size(), before0 + 1);
  EXPECT_EQ(store_->SegmentsOf(ids[1])->size(), before1 + 1);
}

// A store opened again keeps working with its indexes (created idempotently), and a URL stored
// while the trigram index did not exist (a store migrated to schema 6) is found by CONTAINS.
TEST_F(TraceQueryTest, ReopenAndBackfillUrls) {
  ASSERT_EQ(sqlite3_exec(writer_, "DROP TABLE url_trigrams;", nullptr, nullptr, nullptr), SQLITE_OK);
  Open(Options());
  auto filter = api::Filter::Parse("http.url CONTAINS \"cart\"");
  ASSERT_TRUE(filter);
  ListQuery q;
  q.start_time = kT0 - 10;
  q.end_time = kT0 + kSpan + 10;
  std::vector<ListPlan> plans;
  const auto by_index = List(*filter, q, true, 1000, &plans);
  EXPECT_EQ(by_index, List(*filter, q, false, 1000000));
  EXPECT_FALSE(by_index.empty());
  ASSERT_FALSE(plans.empty());
  EXPECT_TRUE(plans[0].by_index);
}

}  // namespace
}  // namespace xrayd::store
