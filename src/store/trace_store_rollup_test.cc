// The store's per-minute graph rollups, over real files: they equal what segment::TraceCalls counts
// over the stored documents after every kind of change (a trace in one batch, a trace whose
// documents arrive in separate batches in any order, a replaced in-progress segment, retention),
// and a store written by the release before them (schema 3, tests/support/data/store_v3.db) gets
// them on open.
#include <gtest/gtest.h>

#include <filesystem>
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
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "5");
  sqlite3_finalize(s);
  Open();  // reopening does not count them twice
  ExpectSame(Stored(), r);
}

// A store file written by the current release (schema 5, tests/support/data/store_v5.db, made by
// make_store_v3.py with that release's binary: the same 40 traces) opens as it is: its traces,
// documents and rollups read back, and new documents are counted on top.
TEST_F(StoreRollupTest, OpensAStoreWrittenByTheCurrentRelease) {
  std::filesystem::create_directories(dir_);
  std::filesystem::copy_file(std::string(XRAYD_SOURCE_DIR) + "/tests/support/data/store_v5.db", dir_ / "traces.db");
  Open();
  std::vector<std::string> ids;
  auto rows = store_->ListTraces({0, 1e11, false, "", 1000});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 40u);
  for (const auto& row : *rows) ids.push_back(row.trace_id);
  const auto r = Stored();
  ExpectSame(r, Expected(ids));
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "web").total, 40);
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "ledger").fault, 8);
  EXPECT_EQ(Sum(r, Call::Kind::kNode, "DynamoDB").throttle, 7);
  auto segs = store_->SegmentsOf(ids.front());
  ASSERT_TRUE(segs);
  EXPECT_GE(segs->size(), 2u);
  ASSERT_TRUE(store_->Append({Web(900, kT0).dump()}));
  EXPECT_EQ(Sum(Stored(), Call::Kind::kNode, "web").total, 41);
}

}  // namespace
}  // namespace xrayd::store
