#include "api/service_graph.h"

#include <gtest/gtest.h>

namespace xrayd::api {
namespace {

using nlohmann::json;

constexpr double kT0 = 1699999800;  // a multiple of 300; the segment rules refuse times before 2000
std::string Id(const std::string& tag) { return std::string(16 - tag.size(), '0') + tag; }  // 16 hex digits

// Two traces: web → api (the api call faults in the second), and a lone worker segment.
std::vector<std::string> Docs() {
  std::vector<std::string> docs;
  for (int i = 0; i < 2; ++i) {
    const std::string tid = "1-00000064-00000000000000000000000" + std::to_string(i);
    const double t = kT0 + 120 + i * 60;  // one per minute
    json web = {{"trace_id", tid}, {"id", Id("10" + std::to_string(i))}, {"name", "web"}, {"origin", "AWS::EC2::Instance"},
                {"start_time", t}, {"end_time", t + 1},
                {"subsegments", json::array({{{"id", Id("c" + std::to_string(i))}, {"name", "api"},
                                              {"namespace", "remote"}, {"start_time", t}, {"end_time", t + 0.5}}})}};
    json api = {{"trace_id", tid}, {"id", Id("a" + std::to_string(i))}, {"parent_id", Id("c" + std::to_string(i))},
                {"name", "api"}, {"start_time", t + 0.1}, {"end_time", t + 0.4}, {"fault", i == 1}};
    docs.push_back(web.dump());
    docs.push_back(api.dump());
  }
  docs.push_back(json{{"trace_id", "1-00000064-000000000000000000000009"}, {"id", Id("9")}, {"name", "worker"},
                      {"start_time", kT0 + 130.0}, {"end_time", kT0 + 130.5}}
                     .dump());
  return docs;
}

json Series(const std::string& selector, int period = 60) {
  auto sel = ParseEntitySelector(selector);
  EXPECT_TRUE(sel) << selector;
  return BuildTimeSeriesStatistics(Docs(), kT0, kT0 + 1000, period, *sel)["TimeSeriesServiceStatistics"];
}

int64_t Sum(const json& series, const char* stats, const char* field) {
  int64_t n = 0;
  for (const auto& s : series) n += s[stats][field].get<int64_t>();
  return n;
}

TEST(TimeSeries, ServiceSelector) {
  json s = Series("service(\"api\")");
  ASSERT_EQ(s.size(), 2u) << s.dump();
  EXPECT_EQ(s[0]["Timestamp"], kT0 + 120);
  EXPECT_EQ(s[1]["Timestamp"], kT0 + 180);
  EXPECT_FALSE(s[0].contains("EdgeSummaryStatistics"));
  EXPECT_EQ(Sum(s, "ServiceSummaryStatistics", "TotalCount"), 2);
  EXPECT_EQ(s[1]["ServiceSummaryStatistics"]["FaultStatistics"]["TotalCount"], 1);
  // The type the graph shows for a service without origin selects it; another type does not.
  EXPECT_EQ(Sum(Series("service(id(name: \"api\", type: \"service\"))"), "ServiceSummaryStatistics", "TotalCount"), 2);
  EXPECT_TRUE(Series("service(id(name: \"api\", type: \"AWS::EC2::Instance\"))").empty());
}

TEST(TimeSeries, EdgeSelector) {
  json s = Series("edge(\"web\", \"api\")", 300);
  ASSERT_EQ(s.size(), 1u) << s.dump();
  EXPECT_EQ(s[0]["Timestamp"], kT0);
  EXPECT_EQ(s[0]["EdgeSummaryStatistics"]["TotalCount"], 2);
  EXPECT_EQ(s[0]["EdgeSummaryStatistics"]["OkCount"], 1);
  EXPECT_NEAR(s[0]["EdgeSummaryStatistics"]["TotalResponseTime"].get<double>(), 0.6, 1e-6);
  EXPECT_TRUE(Series("edge(\"api\", \"web\")").empty());
}

TEST(TimeSeries, NoSelectorCountsRequestsEnteringTheGraph) {
  json s = Series("");
  EXPECT_EQ(Sum(s, "EdgeSummaryStatistics", "TotalCount"), 3);  // two web traces, one worker
}

TEST(TimeSeries, SelectorParsing) {
  EXPECT_FALSE(ParseEntitySelector("responsetime > 3"));
  EXPECT_FALSE(ParseEntitySelector("service(\"a\") { fault }"));
  auto e = ParseEntitySelector("edge(id(name: \"a\", type: \"t\"), \"b\")");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->edge);
  ASSERT_EQ(e->ids.size(), 2u);
  EXPECT_EQ(e->ids[0], std::make_pair(std::string("a"), std::string("t")));
}

}  // namespace
}  // namespace xrayd::api
