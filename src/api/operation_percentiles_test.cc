#include "api/operation_percentiles.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>

namespace xrayd::api {
namespace {

using nlohmann::json;

class OperationPercentilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("xrayd-ui-pct-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    store::StoreOptions o;
    o.data_dir = dir_.string();
    auto s = store::TraceStore::Open(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // A trace of service "api" with one subsegment "db" lasting db_ms, starting at t.
  std::string Put(int n, double t, double db_ms) {
    char tid[64];
    std::snprintf(tid, sizeof tid, "1-%08x-%024d", static_cast<unsigned>(t), n);
    json doc = {{"trace_id", tid}, {"id", "a" + std::to_string(100000000000000 + n)}, {"name", "api"},
                {"start_time", t}, {"end_time", t + 1},
                {"subsegments", json::array({{{"id", "b" + std::to_string(100000000000000 + n)}, {"name", "db"},
                                             {"start_time", t}, {"end_time", t + db_ms / 1000}}})}};
    auto r = store_->Append({doc.dump()});
    EXPECT_TRUE(r && r->empty());
    return tid;
  }
  std::filesystem::path dir_;
  std::unique_ptr<store::TraceStore> store_;
};

TEST_F(OperationPercentilesTest, RanksEachNodeAgainstTheSameOperationInTheWindow) {
  const double t = 1.7e9;
  for (int i = 1; i <= 9; ++i) Put(i, t + i * 10, i * 10);  // db: 10 … 90 ms
  Put(50, t + 7200, 1);                                       // outside a one-hour window: not counted
  const std::string slow = Put(10, t + 100, 95);              // slower than every other db call
  auto out = OperationPercentiles(*store_, {{"TraceId", slow}});
  ASSERT_TRUE(out) << out.error().message;
  std::map<std::string, json> by_name;
  for (const auto& op : (*out)["Operations"]) by_name[op["Name"]] = op;
  ASSERT_EQ(by_name.size(), 2u);
  EXPECT_EQ(by_name["db"]["Samples"], 10);
  EXPECT_DOUBLE_EQ(by_name["db"]["Percentile"].get<double>(), 100.0);
  EXPECT_EQ(by_name["db"]["Service"], "api");
  EXPECT_EQ(by_name["api"]["Samples"], 10);

  auto fifth = OperationPercentiles(*store_, {{"TraceId", Put(11, t + 55, 50)}});
  ASSERT_TRUE(fifth);
  bool seen = false;
  for (const auto& op : (*fifth)["Operations"]) {
    if (op["Name"] != "db") continue;
    seen = true;
    EXPECT_NEAR(op["Percentile"].get<double>(), 100.0 * 6 / 11, 1e-9);  // 10,20,30,40,50,50 of 11 calls
  }
  EXPECT_TRUE(seen);
}

TEST_F(OperationPercentilesTest, BadRequestsAreInvalidArgument) {
  for (const json& bad : {json::object(), json{{"TraceId", 5}}, json{{"TraceId", "1-00000000-000000000000000000000000"}},
                          json{{"TraceId", Put(1, 1.7e9, 5)}, {"WindowSeconds", 1}}}) {
    auto out = OperationPercentiles(*store_, bad);
    ASSERT_FALSE(out) << bad.dump();
    EXPECT_EQ(out.error().kind, Error::Kind::kInvalidArgument) << bad.dump();
  }
}

}  // namespace
}  // namespace xrayd::api
