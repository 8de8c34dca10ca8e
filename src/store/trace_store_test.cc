#include "store/trace_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sqlite3.h>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "api/trace_assembly.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;

class StoreTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    Reopen();
  }
  void Reopen(StoreOptions o = {}) { Open(std::move(o)); }
  void Put(std::vector<json> docs) {
    std::vector<std::string> text;
    for (auto& d : docs) text.push_back(d.dump());
    auto r = store_->Append(text);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->empty());
  }
};

const std::string kTrace = "1-5759e988-bd862e3fe1be46a994272793";
using testing::kT0;

// `start` and `end` are offsets from kT0.
json Segment(std::string id, double start, std::optional<double> end, std::string name = "web") {
  json s = {{"trace_id", kTrace}, {"id", id}, {"name", name}, {"start_time", kT0 + start}};
  if (end) s["end_time"] = kT0 + *end; else s["in_progress"] = true;
  return s;
}

TEST_F(StoreTest, SummaryFromRootSegment) {
  json root = Segment("aaaaaaaaaaaaaaa1", 100, 100.5);
  root["http"] = {{"request", {{"method", "GET"}, {"url", "http://x/y"}, {"client_ip", "1.2.3.4"}}},
                  {"response", {{"status", 502}}}};
  root["fault"] = true;
  root["user"] = "alice";
  root["annotations"] = {{"tier", "gold"}, {"n", 3}, {"ok", false}};
  json child = Segment("aaaaaaaaaaaaaaa2", 100.1, 100.9, "db");
  child["parent_id"] = "aaaaaaaaaaaaaaa1";
  child["subsegments"] = json::array({{{"id", "ccccccccccccccc1"}, {"name", "q"}, {"start_time", kT0 + 100.2}, {"end_time", kT0 + 100.3}, {"throttle", true}}});
  Put({root, child});
  auto s = store_->Summary(kTrace);
  ASSERT_TRUE(s && *s);
  const auto& r = **s;
  EXPECT_DOUBLE_EQ(r.start_time, kT0 + 100);
  EXPECT_DOUBLE_EQ(r.end_time, kT0 + 100.9);
  EXPECT_DOUBLE_EQ(*r.root_end - *r.root_start, 0.5);
  EXPECT_EQ(r.http_status, 502);
  EXPECT_EQ(r.http_method, "GET");
  EXPECT_EQ(r.user, "alice");
  EXPECT_TRUE(r.has_fault);
  EXPECT_TRUE(r.has_throttle);  // from a nested subsegment of another segment
  EXPECT_FALSE(r.has_error);
  EXPECT_EQ(r.annotations.size(), 3u);
  EXPECT_EQ(r.services.size(), 2u);
}

TEST_F(StoreTest, CalledServicesAreListedAsTheGraphInfersThem) {
  json root = Segment("aaaaaaaaaaaaaaa1", 100, 101, "shop");
  root["origin"] = "AWS::EC2::Instance";
  json http_call = {{"id", "ccccccccccccccc1"}, {"name", "payments-db"}, {"namespace", "remote"},
                    {"start_time", kT0 + 100.1}, {"end_time", kT0 + 100.2}};
  json nested_aws = {{"id", "ccccccccccccccc3"}, {"name", "DynamoDB"}, {"namespace", "aws"},
                     {"start_time", kT0 + 100.3}, {"end_time", kT0 + 100.4}};
  json local_work = {{"id", "ccccccccccccccc2"}, {"name", "render"}, {"start_time", kT0 + 100.3}, {"end_time", kT0 + 100.5},
                     {"subsegments", json::array({nested_aws})}};
  root["subsegments"] = json::array({http_call, local_work});
  Put({root});
  auto s = store_->Summary(kTrace);
  ASSERT_TRUE(s && *s);
  using Service = std::pair<std::string, std::string>;
  std::vector<Service> services = (*s)->services;
  std::sort(services.begin(), services.end());
  EXPECT_EQ(services, (std::vector<Service>{{"DynamoDB", "AWS::DynamoDB"}, {"payments-db", "remote"},
                                            {"shop", "AWS::EC2::Instance"}}));
}

TEST_F(StoreTest, EachServiceKeepsItsOwnFlags) {
  json web = Segment("aaaaaaaaaaaaaaa1", 100, 101, "web");
  web["fault"] = true;
  web["subsegments"] = json::array({{{"id", "ccccccccccccccc1"}, {"name", "payments"}, {"namespace", "remote"},
                                     {"start_time", kT0 + 100.1}, {"end_time", kT0 + 100.2}, {"throttle", true}, {"error", true}}});
  json db = Segment("aaaaaaaaaaaaaaa2", 100.3, 100.4, "db");
  db["parent_id"] = "aaaaaaaaaaaaaaa1";
  Put({web, db});
  json db_again = Segment("aaaaaaaaaaaaaaa3", 100.5, 100.6, "db");  // a second db segment with an error
  db_again["error"] = true;
  Put({db_again});
  auto s = store_->Summary(kTrace);
  ASSERT_TRUE(s && *s);
  const auto& r = **s;
  ASSERT_EQ(r.services.size(), r.service_flags.size());
  std::map<std::string, TraceSummaryRow::ServiceFlags> by_name;
  for (size_t i = 0; i < r.services.size(); ++i) by_name[r.services[i].first] = r.service_flags[i];
  EXPECT_TRUE(by_name["web"].fault);
  EXPECT_FALSE(by_name["web"].error);  // its subsegment's throttle belongs to the call, not to web
  EXPECT_TRUE(by_name["db"].error);    // flags of a service's segments add up
  EXPECT_FALSE(by_name["db"].fault);
  EXPECT_TRUE(by_name["payments"].throttle);
  EXPECT_TRUE(by_name["payments"].error);
}

// A schema 2 file (no per-service flags) opens: gains the columns, is migrated to schema 6 and
// keeps its rows. Made from the schema 3 file of the release before rollups, its services
// table taken back to schema 2's shape.
TEST_F(StoreTest, OpensASchemaTwoStore) {
  store_.reset();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  std::filesystem::copy_file(std::string(XRAYD_SOURCE_DIR) + "/tests/support/data/store_v3.db", dir_ / "traces.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &db), SQLITE_OK);
  const char* downgrade =
      "CREATE TABLE old_services(trace_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, "
      "PRIMARY KEY(trace_id, name, type)) WITHOUT ROWID;"
      "INSERT INTO old_services SELECT trace_id, name, type FROM trace_services;"
      "DROP TABLE trace_services; ALTER TABLE old_services RENAME TO trace_services;"
      "UPDATE meta SET value='2' WHERE key='schema_version';"
      "INSERT INTO traces(trace_id,trace_time,start_time,end_time) VALUES('1-5759e988-000000000000000000000000', "
      "1465510280, 1465510280, 1465510280.5);"
      "INSERT INTO segments(trace_id,id,parent_id,kind,start_time,end_time,in_progress,doc,stored_at) VALUES("
      "'1-5759e988-000000000000000000000000','aaaaaaaaaaaaaaa1','',0,1465510280,1465510280.5,0,"
      "'{\"trace_id\":\"1-5759e988-000000000000000000000000\",\"id\":\"aaaaaaaaaaaaaaa1\",\"name\":\"web\","
      "\"start_time\":1465510280,\"end_time\":1465510280.5}',0);"
      "INSERT INTO trace_services VALUES('1-5759e988-000000000000000000000000','web','');";
  ASSERT_EQ(sqlite3_exec(db, downgrade, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  Reopen();
  auto old = store_->Summary("1-5759e988-000000000000000000000000");
  ASSERT_TRUE(old && *old);
  ASSERT_EQ((*old)->services.size(), 1u);
  EXPECT_FALSE((*old)->service_flags.at(0).fault);
  json web2 = Segment("aaaaaaaaaaaaaaa2", 100.2, 100.3, "web");
  web2["parent_id"] = "aaaaaaaaaaaaaaa1";
  web2["fault"] = true;
  Put({web2});
  auto s = store_->Summary(kTrace);
  ASSERT_TRUE(s && *s);
  ASSERT_EQ((*s)->services.size(), 1u);
  EXPECT_TRUE((*s)->service_flags.at(0).fault);
}

// Paging walks every trace exactly once, in (start time, id) order, also through ties on the start time,
// and never returns traces before the range when resuming.
TEST_F(StoreTest, PagesCoverTheRangeExactlyOnce) {
  std::vector<json> docs;
  std::set<std::string> expected;
  for (int i = 0; i < 250; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "1-5759e988-%024x", i);
    const double start = i < 100 ? 50.0 : (i < 200 ? 200.0 : 200.0 + i);  // 100 before the range, ties inside
    json d = {{"trace_id", id}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"}, {"start_time", kT0 + start},
              {"end_time", kT0 + start + 1}};
    docs.push_back(d);
    if (start >= 100) expected.insert(id);
  }
  Put(docs);
  ListQuery q;
  q.start_time = kT0 + 100;
  q.end_time = kT0 + 1000;
  q.limit = 30;
  std::set<std::string> seen;
  std::pair<double, std::string> last{-1, ""};
  for (int page = 0; page < 20; ++page) {
    auto rows = store_->ListTraces(q);
    ASSERT_TRUE(rows) << rows.error().message;
    if (rows->empty()) break;
    for (const auto& r : *rows) {
      EXPECT_GE(r.start_time, kT0 + 100);
      EXPECT_TRUE(seen.insert(r.trace_id).second) << "twice: " << r.trace_id;
      EXPECT_LT(last, std::make_pair(r.start_time, r.trace_id)) << "out of order";
      last = {r.start_time, r.trace_id};
    }
    q.cursor = ListCursorAfter(q, rows->back());
  }
  EXPECT_EQ(seen, expected);
}

// The listing cursor is opaque to callers; a damaged one, or one made for the other order, is the
// caller's error (InvalidArgument), never a silent restart from the first page.
TEST_F(StoreTest, ListCursorIsCheckedOnUse) {
  Put({{{"trace_id", kTrace}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"}, {"start_time", kT0 + 150.0}, {"end_time", kT0 + 151.0}}});
  ListQuery q{kT0 + 100, kT0 + 1000, false, "", 10};
  auto rows = store_->ListTraces(q);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  q.cursor = ListCursorAfter(q, rows->back());
  EXPECT_EQ(q.cursor.find(kTrace), std::string::npos) << "opaque";
  ASSERT_TRUE(store_->ListTraces(q));
  EXPECT_TRUE(store_->ListTraces(q)->empty());
  for (std::string bad : {std::string("garbage"), std::string("7c"), q.cursor.substr(1), q.cursor + "0"}) {
    ListQuery b = q;
    b.cursor = bad;
    auto r = store_->ListTraces(b);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, Error::Kind::kInvalidArgument);
  }
  ListQuery other = q;
  other.by_trace_id_time = true;
  EXPECT_FALSE(store_->ListTraces(other));
}

// Graph queries take the traces overlapping a window. A long trace that started well before the
// window and ends inside it is one of them, also after a restart (the bound that keeps the scan short
// is the longest trace seen, kept in the store).
TEST_F(StoreTest, DocumentsInRangeFindsLongTracesThatStartedEarlier) {
  auto doc = [](const char* trace, const char* id, double start, double end) {
    return json{{"trace_id", trace}, {"id", id}, {"name", "web"}, {"start_time", kT0 + start}, {"end_time", kT0 + end}};
  };
  const char* kLong = "1-5759e988-000000000000000000000001";
  const char* kShortBefore = "1-5759e988-000000000000000000000002";
  const char* kInside = "1-5759e988-000000000000000000000003";
  const char* kAfter = "1-5759e988-000000000000000000000004";
  // The long trace grows in two documents: its span is only known after the second.
  Put({doc(kLong, "aaaaaaaaaaaaaaa1", 1000, 1001), doc(kShortBefore, "aaaaaaaaaaaaaaa2", 1100, 1101),
       doc(kInside, "aaaaaaaaaaaaaaa3", 5005, 5006), doc(kAfter, "aaaaaaaaaaaaaaa4", 6000, 6001)});
  Put({doc(kLong, "aaaaaaaaaaaaaaa5", 4000, 5002)});
  for (int restart = 0; restart < 2; ++restart) {
    bool truncated = true;
    auto docs = store_->DocumentsInRange(kT0 + 5000, kT0 + 5010, 100, &truncated);
    ASSERT_TRUE(docs) << docs.error().message;
    std::multiset<std::string> traces;
    for (const auto& d : *docs) traces.insert(json::parse(d)["trace_id"].get<std::string>());
    EXPECT_EQ(traces, (std::multiset<std::string>{kLong, kLong, kInside})) << "restart " << restart;
    EXPECT_FALSE(truncated);
    auto capped = store_->DocumentsInRange(kT0 + 5000, kT0 + 5010, 1, &truncated);
    ASSERT_TRUE(capped);
    EXPECT_TRUE(truncated);
    Reopen();
  }
}

TEST_F(StoreTest, NewStoresUseSixteenKibPages) {
  Put({Segment("aaaaaaaaaaaaaaa1", 100, 101)});
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 16384);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_F(StoreTest, InProgressThenCompleteConvergesInAnyOrder) {
  Put({Segment("aaaaaaaaaaaaaaa1", 100, std::nullopt)});
  EXPECT_TRUE((*store_->Summary(kTrace))->is_partial);
  Put({Segment("aaaaaaaaaaaaaaa1", 100, 101)});
  EXPECT_FALSE((*store_->Summary(kTrace))->is_partial);
  Put({Segment("aaaaaaaaaaaaaaa1", 100, std::nullopt)});  // a late in-progress copy must not win
  EXPECT_FALSE((*store_->Summary(kTrace))->is_partial);
  auto segs = store_->SegmentsOf(kTrace);
  ASSERT_TRUE(segs);
  ASSERT_EQ(segs->size(), 1u);
  EXPECT_NE(segs->front().doc.find("end_time"), std::string::npos);
}

// A batch whose late in-progress copy is ignored counts only the documents it stored in the
// trace's summary (the summary built before the lock assumes all of them are).
TEST_F(StoreTest, IgnoredInProgressCopyLeavesTheSummaryAlone) {
  Put({Segment("aaaaaaaaaaaaaaa1", 100, 101)});
  auto fault = Segment("aaaaaaaaaaaaaaa1", 90, std::nullopt);  // earlier start, a fault: must not count
  fault["fault"] = true;
  Put({fault, Segment("aaaaaaaaaaaaaaa2", 100.5, 102)});
  auto s = store_->Summary(kTrace);
  ASSERT_TRUE(s && *s);
  EXPECT_DOUBLE_EQ((*s)->start_time, kT0 + 100);
  EXPECT_DOUBLE_EQ((*s)->end_time, kT0 + 102);
  EXPECT_FALSE((*s)->has_fault);
  EXPECT_FALSE((*s)->is_partial);
  // Two more documents, both stored: the summary covers both.
  Put({Segment("aaaaaaaaaaaaaaa3", 100, 103, "web"), Segment("aaaaaaaaaaaaaaa4", 99, 100, "web")});
  s = store_->Summary(kTrace);
  ASSERT_TRUE(s && *s);
  EXPECT_DOUBLE_EQ((*s)->start_time, kT0 + 99);
  EXPECT_DOUBLE_EQ((*s)->end_time, kT0 + 103);
}

TEST_F(StoreTest, StreamedSubsegmentsAssembleIntoParent) {
  json parent = Segment("aaaaaaaaaaaaaaa1", 100, 101);
  json sub = {{"trace_id", kTrace}, {"id", "bbbbbbbbbbbbbbb1"}, {"parent_id", "aaaaaaaaaaaaaaa1"}, {"type", "subsegment"},
              {"name", "call"}, {"start_time", kT0 + 100.2}, {"end_time", kT0 + 100.4}};
  json subsub = {{"trace_id", kTrace}, {"id", "bbbbbbbbbbbbbbb2"}, {"parent_id", "bbbbbbbbbbbbbbb1"}, {"type", "subsegment"},
                 {"name", "inner"}, {"start_time", kT0 + 100.25}, {"end_time", kT0 + 100.3}};
  Put({subsub, sub});  // children first
  Put({parent, parent});  // duplicates
  auto segs = store_->SegmentsOf(kTrace);
  ASSERT_TRUE(segs);
  auto t = api::AssembleTrace(*segs);
  ASSERT_EQ(t.segments.size(), 1u);
  json doc = json::parse(t.segments[0].document);
  ASSERT_EQ(doc["subsegments"].size(), 1u);
  EXPECT_EQ(doc["subsegments"][0]["id"], "bbbbbbbbbbbbbbb1");
  EXPECT_FALSE(doc["subsegments"][0].contains("type"));
  ASSERT_EQ(doc["subsegments"][0]["subsegments"].size(), 1u);
  EXPECT_EQ(doc["subsegments"][0]["subsegments"][0]["id"], "bbbbbbbbbbbbbbb2");
  EXPECT_DOUBLE_EQ(t.duration, 1.0);
}

// An independent subsegment's annotations belong to no service (""): stored and read back as such.
TEST_F(StoreTest, AnnotationsOfAStreamedSubsegmentHaveNoService) {
  json sub = {{"trace_id", kTrace}, {"id", "bbbbbbbbbbbbbbb1"}, {"parent_id", "aaaaaaaaaaaaaaa1"}, {"type", "subsegment"},
              {"name", "call"}, {"start_time", kT0 + 100.2}, {"end_time", kT0 + 100.4},
              {"annotations", {{"k", "v"}}}};
  Put({Segment("aaaaaaaaaaaaaaa1", 100, 101), sub});
  auto s = store_->Summary(kTrace);
  ASSERT_TRUE(s && *s);
  ASSERT_EQ((*s)->annotations.size(), 1u);
  EXPECT_EQ((*s)->annotations[0].key, "k");
  EXPECT_EQ((*s)->annotations[0].service, "");
  EXPECT_EQ((*s)->annotations[0].value_json, "\"v\"");
}

TEST_F(StoreTest, ListPagesInOrderAndSurvivesRestart) {
  std::vector<json> docs;
  for (int i = 0; i < 30; ++i) {
    json s = Segment("aaaaaaaaaaaaaaa1", 1000 + i, 1000.5 + i);
    char tid[64];
    std::snprintf(tid, sizeof tid, "1-%08x-%024d", 1000 + i, i);
    s["trace_id"] = tid;
    docs.push_back(s);
  }
  Put(docs);
  Reopen();
  ListQuery q{kT0 + 999, kT0 + 2000, false, "", 10};
  std::vector<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    auto rows = store_->ListTraces(q);
    ASSERT_TRUE(rows);
    if (rows->empty()) break;
    for (auto& r : *rows) seen.push_back(r.trace_id);
    q.cursor = ListCursorAfter(q, rows->back());
  }
  EXPECT_EQ(seen.size(), 30u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  ListQuery by_id{1010, 1019, true, "", 100};
  EXPECT_EQ(store_->ListTraces(by_id)->size(), 10u);
}

TEST_F(StoreTest, RetentionByAge) {
  Reopen({"", 3600, 0, 5000, {}});
  json old_seg = Segment("aaaaaaaaaaaaaaa1", 1000, 1001);
  json new_seg = Segment("aaaaaaaaaaaaaaa2", 9000, 9001);
  new_seg["trace_id"] = "1-00002328-bd862e3fe1be46a994272793";
  Put({old_seg, new_seg});
  auto deleted = store_->EnforceRetention(kT0 + 9500);
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 1);
  EXPECT_FALSE(*store_->Summary(kTrace));
  EXPECT_TRUE(store_->SegmentsOf(kTrace)->empty());
  EXPECT_TRUE(*store_->Summary("1-00002328-bd862e3fe1be46a994272793"));
}

TEST_F(StoreTest, RejectsDocumentsWithoutIds) {
  auto r = store_->Append({"{}", "[1]", Segment("aaaaaaaaaaaaaaa1", 1, 2).dump()});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].first, 0u);
  EXPECT_EQ((*r)[1].first, 1u);
}

}  // namespace
}  // namespace xrayd::store
