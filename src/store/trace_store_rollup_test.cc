// The store's per-minute graph rollups, over real files: they equal what segment::TraceCalls counts
// over the stored documents after every kind of change (a trace in one batch, a trace whose
// documents arrive in separate batches in any order, a replaced in-progress segment, retention),
// and a store written by the release before them (schema 3, tests/support/data/store_v3.db) gets
// them on open.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>
#include <nlohmann/json.hpp>

#include "segment/graph.h"
#include "store/trace_store.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;
using segment::Call;
using testing::kT0;
using testing::TraceId;

class StoreRollupTest : public testing::StoreFixture {
 protected:
  // The rollup of every stored document, computed afresh (what the table must equal).
  segment::Rollup Expected(const std::vector<std::string>& trace_ids) {
    segment::Parser parser;
    segment::Rollup out;
    for (const auto& id : trace_ids) {
      auto segs = store_->SegmentsOf(id);
      EXPECT_TRUE(segs);
      std::vector<segment::Facts> facts(segs->size());
      std::vector<const segment::Facts*> ptrs;
      for (size_t i = 0; i < segs->size(); ++i) {
        EXPECT_TRUE(parser.FactsOf((*segs)[i].doc, &facts[i]).ok());
        ptrs.push_back(&facts[i]);
      }
      segment::AddToRollup(segment::TraceCalls(ptrs), +1, &out);
    }
    for (auto it = out.begin(); it != out.end();) it = it->second.total == 0 ? out.erase(it) : std::next(it);
    return out;
  }
  segment::Rollup Stored() {
    auto r = store_->GraphRollups(0, 1LL << 40);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : segment::Rollup{};
  }
  static void ExpectSame(const segment::Rollup& a, const segment::Rollup& b) {
    ASSERT_EQ(a.size(), b.size());
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
      EXPECT_FALSE(ia->first < ib->first || ib->first < ia->first) << ia->first.to.name << " vs " << ib->first.to.name;
      EXPECT_EQ(ia->second.total, ib->second.total) << ia->first.to.name;
      EXPECT_EQ(ia->second.ok, ib->second.ok);
      EXPECT_EQ(ia->second.fault, ib->second.fault);
      EXPECT_EQ(ia->second.error, ib->second.error);
      EXPECT_EQ(ia->second.throttle, ib->second.throttle);
      EXPECT_EQ(ia->second.roots, ib->second.roots);
      EXPECT_NEAR(ia->second.total_response_time, ib->second.total_response_time, 1e-6);
      EXPECT_EQ(ia->second.histogram, ib->second.histogram);
    }
  }
  // Sums of `kind` calls into `to` (and from `from`, for edges) over all minutes.
  static segment::Stats Sum(const segment::Rollup& r, Call::Kind kind, const std::string& to,
                            const std::string& from = "") {
    segment::Stats s;
    for (const auto& [k, v] : r)
      if (k.kind == kind && k.to.name == to && k.from.name == from) s.Merge(v);
    return s;
  }
};

json Web(int i, double t) {
  return {{"trace_id", TraceId(i)}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"}, {"start_time", t},
          {"end_time", t + 0.5},
          {"subsegments", json::array({{{"id", "ccccccccccccccc1"}, {"name", "api"}, {"namespace", "remote"},
                                        {"start_time", t + 0.1}, {"end_time", t + 0.4}}})}};
}
json Api(int i, double t, bool fault = false) {
  return {{"trace_id", TraceId(i)}, {"id", "bbbbbbbbbbbbbbb1"}, {"parent_id", "ccccccccccccccc1"}, {"name", "api"},
          {"start_time", t + 0.15}, {"end_time", t + 0.35}, {"fault", fault}};
}

TEST_F(StoreRollupTest, ATraceInOneBatch) {
  Open();
  ASSERT_TRUE(store_->Append({Web(1, kT0).dump(), Api(1, kT0, true).dump()}));
  const auto r = Stored();
  ExpectSame(r, Expected({TraceId(1)}));
  EXPECT_EQ(Sum(r, Call::Kind::kEdge, "api", "web").total, 1);
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "api").fault, 1);
  EXPECT_EQ(Sum(r, Call::Kind::kEntry, "web").total, 1);
  EXPECT_EQ(Sum(r, Call::Kind::kEntry, "api").total, 0);  // called by web: not a request entering
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "api", "").histogram, (std::map<int64_t, int64_t>{{200, 1}}));
}

// Two threads append at once (the daemon runs two store senders): batches that split traces
// between them, in both orders, with repeats. Each Append prepares its batch outside the store's
// lock; keys, summaries and rollups are decided under it, so the result is the same as one writer's.
TEST_F(StoreRollupTest, ConcurrentAppendsSplittingTraces) {
  Open();
  constexpr int kTraces = 300, kRounds = 6;
  std::vector<std::vector<std::string>> batches[2];
  for (int round = 0; round < kRounds; ++round) {
    for (auto& b : batches) b.emplace_back();
    for (int i = round * kTraces / kRounds; i < (round + 1) * kTraces / kRounds; ++i) {
      const double t = kT0 + i;
      // Web to one thread and api to the other, alternating; every 5th trace's api sent by both.
      batches[i % 2].back().push_back(Web(i, t).dump());
      batches[1 - i % 2].back().push_back(Api(i, t, i % 3 == 0).dump());
      if (i % 5 == 0) batches[i % 2].back().push_back(Api(i, t, i % 3 == 0).dump());
    }
  }
  std::vector<std::thread> writers;
  for (auto& mine : batches)
    writers.emplace_back([&, mine = &mine] {
      for (const auto& b : *mine) {
        auto r = store_->Append(b);
        EXPECT_TRUE(r) << r.error().message;
        if (r) EXPECT_TRUE(r->empty());
      }
    });
  for (auto& w : writers) w.join();
  // The same batches appended one after another into a second store: the reference.
  StoreOptions o;
  o.data_dir = (dir_ / "reference").string();
  auto reference = TraceStore::Open(o);
  ASSERT_TRUE(reference) << reference.error().message;
  for (const auto& mine : batches)
    for (const auto& b : mine) ASSERT_TRUE((*reference)->Append(b));
  std::vector<std::string> ids;
  for (int i = 0; i < kTraces; ++i) {
    ids.push_back(TraceId(i));
    auto got = store_->Summary(TraceId(i));
    auto want = (*reference)->Summary(TraceId(i));
    ASSERT_TRUE(got && *got && want && *want) << i;
    EXPECT_EQ((*got)->has_fault, i % 3 == 0) << i;
    EXPECT_EQ((*got)->root_name, "web") << i;
    EXPECT_EQ((*got)->revision, (*want)->revision) << i;
    EXPECT_EQ((*got)->start_time, (*want)->start_time) << i;
    EXPECT_EQ((*got)->end_time, (*want)->end_time) << i;
    auto sorted = [](TraceSummaryRow& r) {
      std::vector<std::tuple<std::string, std::string, bool, bool, bool>> out;
      for (size_t k = 0; k < r.services.size(); ++k)
        out.emplace_back(r.services[k].first, r.services[k].second, r.service_flags[k].error, r.service_flags[k].fault,
                         r.service_flags[k].throttle);
      std::sort(out.begin(), out.end());
      return out;
    };
    EXPECT_EQ(sorted(**got), sorted(**want)) << i;
    auto segs = store_->SegmentsOf(TraceId(i));
    ASSERT_TRUE(segs);
    EXPECT_EQ(segs->size(), 2u) << i;
  }
  const auto r = Stored();
  ExpectSame(r, Expected(ids));
  auto want = (*reference)->GraphRollups(0, 1LL << 40);
  ASSERT_TRUE(want);
  ExpectSame(r, *want);
  EXPECT_EQ(Sum(r, Call::Kind::kEdge, "api", "web").total, kTraces);
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "api").fault, kTraces / 3);
}

// The downstream segment first, its caller minutes later: api first counts as a request entering
// the graph; when web arrives that is taken back and the web -> api edge counted instead. The same
// correction an LB segment joined to a trace's root later needs.
TEST_F(StoreRollupTest, ALateCallerMovesTheEntry) {
  Open();
  ASSERT_TRUE(store_->Append({Api(2, kT0).dump()}));
  EXPECT_EQ(Sum(Stored(), Call::Kind::kEntry, "api").total, 1);
  ASSERT_TRUE(store_->Append({Web(2, kT0).dump()}));
  const auto r = Stored();
  ExpectSame(r, Expected({TraceId(2)}));
  EXPECT_EQ(Sum(r, Call::Kind::kEntry, "api").total, 0);
  EXPECT_EQ(Sum(r, Call::Kind::kEdge, "api", "web").total, 1);
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "api").total, 1);  // counted once, not once per batch
}

TEST_F(StoreRollupTest, AnInProgressSegmentReplacedByItsCompleteCopy) {
  Open();
  json open = Web(3, kT0);
  open.erase("end_time");
  open["in_progress"] = true;
  ASSERT_TRUE(store_->Append({open.dump()}));
  ASSERT_TRUE(store_->Append({Web(3, kT0).dump(), Api(3, kT0).dump()}));
  const auto r = Stored();
  ExpectSame(r, Expected({TraceId(3)}));
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "web").total, 1);
  EXPECT_NEAR(Sum(r, Call::Kind::kNode, "web").total_response_time, 0.5, 1e-6);
}

TEST_F(StoreRollupTest, RetentionTakesDeletedTracesOut) {
  StoreOptions o;
  o.retention_seconds = 3600;
  Open(o);
  ASSERT_TRUE(store_->Append({Web(4, kT0).dump(), Api(4, kT0).dump()}));
  ASSERT_TRUE(store_->Append({Web(5, kT0 + 7200).dump(), Api(5, kT0 + 7200).dump()}));
  EXPECT_EQ(Sum(Stored(), Call::Kind::kNode, "web").total, 2);
  auto deleted = store_->EnforceRetention(kT0 + 7200 + 60);
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 1);
  const auto r = Stored();
  ExpectSame(r, Expected({TraceId(5)}));
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "web").total, 1);
}

TEST_F(StoreRollupTest, WindowSelectsMinutes) {
  Open();
  ASSERT_TRUE(store_->Append({Web(6, kT0).dump(), Web(7, kT0 + 120).dump()}));
  auto first = store_->GraphRollups(segment::MinuteOf(kT0), segment::MinuteOf(kT0) + 60);
  ASSERT_TRUE(first);
  EXPECT_EQ(Sum(*first, Call::Kind::kNode, "web").total, 1);
}

// A store file written by the release before rollups (schema 3) is upgraded on open: rollups for
// every stored trace, schema_version 4, and new documents counted on top.
TEST_F(StoreRollupTest, MigratesAStoreWrittenByTheLastRelease) {
  std::filesystem::create_directories(dir_);
  std::filesystem::copy_file(std::string(XRAYD_SOURCE_DIR) + "/tests/support/data/store_v3.db", dir_ / "traces.db");
  Open();
  std::vector<std::string> ids;
  auto rows = store_->ListTraces({0, 1e11, false, "", 1000});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 40u);  // make_store_v3.py: 40 traces
  for (const auto& row : *rows) ids.push_back(row.trace_id);
  const auto r = Stored();
  ExpectSame(r, Expected(ids));
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "web").total, 40);
  EXPECT_EQ(Sum(r, Call::Kind::kEdge, "api", "web").total, 40);
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "ledger").fault, 8);  // i % 5 == 0
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "DynamoDB").throttle, 7);  // i % 6 == 0, streamed or embedded
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(writer_, "SELECT value FROM meta WHERE key='schema_version'", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "7");
  sqlite3_finalize(s);
  Open();  // reopening does not count them twice
  ExpectSame(Stored(), r);
}

// Rows of a query on the file at `path` (its own connection), each row's columns as text
// ("NULL" for NULL), for comparing what a store file holds before and after a migration.
std::vector<std::vector<std::string>> RawRows(const std::filesystem::path& path, const std::string& sql,
                                              const std::string& arg = "") {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db) << ": " << sql;
  if (!arg.empty()) sqlite3_bind_text(s, 1, arg.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<std::vector<std::string>> out;
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto& row = out.emplace_back();
    for (int i = 0; i < sqlite3_column_count(s); ++i) {
      const auto* t = sqlite3_column_text(s, i);
      row.push_back(t ? reinterpret_cast<const char*>(t) : "NULL");
    }
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

std::string Opt(const std::optional<double>& v) { return v ? std::to_string(*v) : "NULL"; }

// One listing of every trace matching `condition` (index plan), as trace ids in id order.
std::vector<std::string> Matching(TraceStore& store, IndexCondition condition) {
  ListQuery q{0, 1e11, false, "", 1000};
  q.condition = std::make_shared<const IndexCondition>(std::move(condition));
  ListPlan plan;
  auto rows = store.ListTraces(q, &plan);
  EXPECT_TRUE(rows) << rows.error().message;
  EXPECT_TRUE(plan.by_index);
  std::vector<std::string> ids;
  for (const auto& r : *rows) ids.push_back(r.trace_id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<std::string> Column(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.at(0));
  return out;
}

// A store file written by the release before schema 6 (schema 5, tests/support/data/store_v5.db,
// made by make_store_v3.py with that release's binary: the same 40 traces) is migrated on open:
// every trace's summary, annotations, services, documents, the URL and other index matches and
// the rollups answer what the schema 5 file holds; new documents are counted on top.
TEST_F(StoreRollupTest, MigratesAStoreWrittenByTheSchemaFiveRelease) {
  std::filesystem::create_directories(dir_);
  const auto file = dir_ / "traces.db";
  std::filesystem::copy_file(std::string(XRAYD_SOURCE_DIR) + "/tests/support/data/store_v5.db", file);
  // What the schema 5 file holds, read with plain SQL before the migration.
  const auto traces = RawRows(file,
                              "SELECT trace_id, start_time, end_time, root_start, root_end, root_name, root_origin, "
                              "http_url, http_status, http_method, user_agent, client_ip, user, has_error, has_fault, "
                              "has_throttle, revision FROM traces ORDER BY trace_id");
  ASSERT_EQ(traces.size(), 40u);
  const auto annotations = RawRows(file, "SELECT trace_id, key, service, value FROM annotations ORDER BY 1, 2, 3, 4");
  const auto services = RawRows(
      file, "SELECT trace_id, name, type, has_error, has_fault, has_throttle FROM trace_services ORDER BY 1, 2, 3");
  const auto segments =
      RawRows(file, "SELECT trace_id, id, parent_id, kind, doc FROM segments ORDER BY trace_id, start_time, id");
  const auto rollups = RawRows(file,
                               "SELECT minute, kind, from_name, from_type, to_name, to_type, ok, error, throttle, "
                               "fault, total, roots, hex(hist) FROM graph_rollups ORDER BY 1, 2, 3, 4, 5, 6");
  ASSERT_FALSE(rollups.empty());
  const auto url_page1 = Column(RawRows(file, "SELECT trace_id FROM traces WHERE instr(http_url, 'page/1') ORDER BY 1"));
  const auto url_equal = Column(RawRows(file, "SELECT trace_id FROM traces WHERE http_url = 'http://web/page/2' ORDER BY 1"));
  const auto ledger_faults = Column(RawRows(
      file, "SELECT trace_id FROM trace_services WHERE name = 'ledger' AND has_fault = 1 ORDER BY 1"));
  const auto gold = Column(RawRows(
      file, "SELECT trace_id FROM annotations WHERE key = 'tier' AND value = '\"gold\"' ORDER BY 1"));
  ASSERT_FALSE(url_page1.empty());
  ASSERT_FALSE(url_equal.empty());
  ASSERT_FALSE(ledger_faults.empty());
  ASSERT_FALSE(gold.empty());

  Open();
  EXPECT_EQ(Column(RawRows(file, "SELECT value FROM meta WHERE key='schema_version'")), std::vector<std::string>{"7"});
  EXPECT_TRUE(RawRows(file, "SELECT name FROM sqlite_master WHERE name LIKE 'v5_%'").empty());
  std::vector<std::vector<std::string>> got_traces, got_annotations, got_services, got_segments;
  for (const auto& t : traces) {
    auto s = store_->Summary(t[0]);
    ASSERT_TRUE(s && *s) << t[0];
    const TraceSummaryRow& r = **s;
    got_traces.push_back({r.trace_id, std::to_string(r.start_time), std::to_string(r.end_time), Opt(r.root_start),
                          Opt(r.root_end), r.root_name, r.root_origin, r.http_url,
                          r.http_status ? std::to_string(*r.http_status) : "NULL", r.http_method, r.user_agent,
                          r.client_ip, r.user, std::to_string(r.has_error), std::to_string(r.has_fault),
                          std::to_string(r.has_throttle), std::to_string(r.revision)});
    for (const auto& a : r.annotations) got_annotations.push_back({r.trace_id, a.key, a.service, a.value_json});
    for (size_t i = 0; i < r.services.size(); ++i)
      got_services.push_back({r.trace_id, r.services[i].first, r.services[i].second,
                              std::to_string(r.service_flags[i].error), std::to_string(r.service_flags[i].fault),
                              std::to_string(r.service_flags[i].throttle)});
    auto segs = store_->SegmentsOf(t[0]);
    ASSERT_TRUE(segs);
    for (const auto& g : *segs)
      got_segments.push_back({t[0], g.id, g.parent_id, g.independent_subsegment ? "1" : "0", g.doc});
  }
  // Times as text from SQLite and from doubles differ in format: compare them as numbers.
  auto normalize = [](std::vector<std::vector<std::string>> rows) {
    for (auto& row : rows)
      for (int i : {1, 2, 3, 4})
        if (row[i] != "NULL") row[i] = std::to_string(std::stod(row[i]));
    return rows;
  };
  EXPECT_EQ(got_traces, normalize(traces));
  EXPECT_EQ(got_annotations, annotations);
  EXPECT_EQ(got_services, services);
  EXPECT_EQ(got_segments, segments);
  auto migrated_rollups = Stored();
  std::vector<std::vector<std::string>> got_rollups;
  for (const auto& [k, v] : migrated_rollups) {
    std::string hist;
    for (unsigned char c : v.EncodeHistogram()) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      hist.push_back(kHex[c >> 4]);
      hist.push_back(kHex[c & 15]);
    }
    got_rollups.push_back({std::to_string(k.minute), std::to_string(static_cast<int>(k.kind)), k.from.name,
                           k.from.type, k.to.name, k.to.type, std::to_string(v.ok), std::to_string(v.error),
                           std::to_string(v.throttle), std::to_string(v.fault), std::to_string(v.total),
                           std::to_string(v.roots), hist});
  }
  std::sort(got_rollups.begin(), got_rollups.end());
  auto want_rollups = rollups;
  std::sort(want_rollups.begin(), want_rollups.end());
  EXPECT_EQ(got_rollups, want_rollups);
  std::vector<std::string> ids;
  for (const auto& t : traces) ids.push_back(t[0]);
  ExpectSame(migrated_rollups, Expected(ids));
  EXPECT_EQ(Matching(*store_, IndexCondition::UrlContains("page/1")), url_page1);
  EXPECT_EQ(Matching(*store_, IndexCondition::UrlEquals("http://web/page/2")), url_equal);
  EXPECT_EQ(Matching(*store_, IndexCondition::Service("ledger", "", IndexCondition::Flag::kFault)), ledger_faults);
  EXPECT_EQ(Matching(*store_, IndexCondition::Annotation("tier", std::string("gold"))), gold);
  // Writes go on in the new schema, and a second open finds nothing to migrate.
  ASSERT_TRUE(store_->Append({Web(900, kT0).dump()}));
  EXPECT_EQ(Sum(Stored(), Call::Kind::kNode, "web").total, 41);
  Open();
  EXPECT_EQ(Sum(Stored(), Call::Kind::kNode, "web").total, 41);
  EXPECT_EQ(Matching(*store_, IndexCondition::UrlContains("page/1")), url_page1);
}

// A file of a newer schema than this build knows is refused, untouched, with a clear error.
TEST_F(StoreRollupTest, RefusesAStoreOfANewerSchema) {
  Open();
  ASSERT_TRUE(store_->Append({Web(1, kT0).dump()}));
  ASSERT_EQ(sqlite3_exec(writer_, "UPDATE meta SET value='8' WHERE key='schema_version'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  store_.reset();
  StoreOptions o;
  o.data_dir = dir_.string();
  auto s = TraceStore::Open(o);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("schema version 8, newer than this xrayd's (7)"), std::string::npos)
      << s.error().message;
  EXPECT_EQ(Column(RawRows(dir_ / "traces.db", "SELECT value FROM meta WHERE key='schema_version'")),
            std::vector<std::string>{"8"});
}

}  // namespace
}  // namespace xrayd::store
