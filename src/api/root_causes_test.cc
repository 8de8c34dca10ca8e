#include "api/root_causes.h"

#include <gtest/gtest.h>

#include <cstring>

namespace xrayd::api {
namespace {

using nlohmann::json;

constexpr double kT0 = 1700000000;  // the segment rules refuse times before 2000
std::string Id(const char* tag) { return std::string(16 - std::strlen(tag), '0') + tag; }  // 16 hex digits

// The facts segment::Parser extracts from each document (what FindRootCauses reads); documents it
// refuses are left out.
std::vector<segment::Facts> Facts(const std::vector<json>& docs) {
  segment::Parser parser;
  std::vector<segment::Facts> out;
  for (const auto& d : docs)
    if (!parser.FactsOf(d.dump(), &out.emplace_back()).ok()) out.pop_back();
  return out;
}

// client → web (EC2) → api → (remote call to "ledger", which sent no segment)
std::vector<segment::Facts> Trace(bool api_faults, bool ledger_faults) {
  json ledger_call = {{"id", Id("c2")}, {"name", "ledger"}, {"namespace", "remote"}, {"start_time", kT0 + 10.2},
                      {"end_time", kT0 + 10.3}};
  if (ledger_faults) ledger_call["fault"] = true;
  json api = {{"id", Id("52")}, {"trace_id", "1-5759e988-bd862e3fe1be46a994272793"}, {"name", "api"},
              {"parent_id", Id("c1")}, {"start_time", kT0 + 10.1}, {"end_time", kT0 + 10.5},
              {"subsegments", json::array({ledger_call})}};
  if (api_faults) {
    api["fault"] = true;
    api["cause"] = {{"exceptions", json::array({{{"id", "e1"}, {"type", "DbError"}, {"message", "timeout"}}})}};
  }
  json web = {{"id", Id("51")}, {"trace_id", "1-5759e988-bd862e3fe1be46a994272793"}, {"name", "web"},
              {"origin", "AWS::EC2::Instance"}, {"start_time", kT0 + 10.0}, {"end_time", kT0 + 11.0},
              {"fault", api_faults},
              {"subsegments", json::array({{{"id", Id("c1")}, {"name", "api"}, {"namespace", "remote"},
                                            {"start_time", kT0 + 10.05}, {"end_time", kT0 + 10.6}}})}};
  auto facts = Facts({web, api});
  EXPECT_EQ(facts.size(), 2u);
  return facts;
}

TEST(RootCauses, FaultIsBlamedOnTheDeepestFaultyService) {
  RootCauses rc = FindRootCauses(Trace(true, false));
  ASSERT_EQ(rc.fault.size(), 1u) << rc.fault.dump();
  const json& services = rc.fault[0]["Services"];
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[0]["Name"], "web");
  EXPECT_EQ(services[0]["Type"], "AWS::EC2::Instance");
  ASSERT_EQ(services[0]["EntityPath"].size(), 2u);  // web → its call to api
  EXPECT_EQ(services[0]["EntityPath"][1]["Name"], "api");
  EXPECT_EQ(services[1]["Name"], "api");
  EXPECT_EQ(services[1]["Type"], "service");
  EXPECT_EQ(services[1]["EntityPath"][0]["Exceptions"], json::array({{{"Name", "DbError"}, {"Message", "timeout"}}}));
  EXPECT_EQ(rc.fault[0]["ClientImpacting"], true);
  EXPECT_TRUE(rc.error.empty());
}

TEST(RootCauses, FaultyRemoteCallWithoutSegmentIsAnInferredService) {
  RootCauses rc = FindRootCauses(Trace(false, true));
  ASSERT_EQ(rc.fault.size(), 1u) << rc.fault.dump();
  const json& services = rc.fault[0]["Services"];
  ASSERT_EQ(services.size(), 3u) << services.dump();
  EXPECT_EQ(services[1]["Name"], "api");
  EXPECT_EQ(services[1]["EntityPath"].back()["Name"], "ledger");
  EXPECT_EQ(services[2]["Name"], "ledger");
  EXPECT_EQ(services[2]["Type"], "remote");
  EXPECT_EQ(services[2]["Inferred"], true);
  EXPECT_EQ(rc.fault[0]["ClientImpacting"], false);  // web itself did not fault
}

TEST(RootCauses, NoFlagsNoCauses) {
  RootCauses rc = FindRootCauses(Trace(false, false));
  EXPECT_TRUE(rc.fault.empty());
  EXPECT_TRUE(rc.error.empty());
}

TEST(RootCauses, ResponseTimeFollowsTheSlowestPath) {
  RootCauses rc = FindRootCauses(Trace(false, false));
  ASSERT_EQ(rc.response_time.size(), 1u);
  const json& services = rc.response_time[0]["Services"];
  ASSERT_EQ(services.size(), 2u) << services.dump();
  EXPECT_EQ(services[0]["Name"], "web");
  EXPECT_EQ(services[1]["Name"], "api");
  const json& path = services[1]["EntityPath"];
  ASSERT_EQ(path.size(), 2u);  // api, then its slowest subsegment
  EXPECT_EQ(path[1]["Name"], "ledger");
  EXPECT_NEAR(path[0]["Coverage"].get<double>(), 0.4, 1e-6);
}

TEST(RootCauses, ToleratesJunk) {
  // Junk never reaches FindRootCauses as facts: the parser refuses it.
  EXPECT_TRUE(Facts({json::array(), json{{"name", 3}, {"subsegments", "x"}}, json::object()}).empty());
  // A lone segment without times or subsegments, and no segments at all.
  json lone = {{"id", Id("1")}, {"trace_id", "1-5759e988-bd862e3fe1be46a994272793"}, {"name", "x"},
               {"start_time", kT0}, {"fault", true}, {"subsegments", json::array({json::array(), 3})}};
  RootCauses rc = FindRootCauses(Facts({lone}));
  ASSERT_EQ(rc.fault.size(), 1u);
  EXPECT_EQ(rc.fault[0]["Services"][0]["Name"], "x");
  EXPECT_TRUE(FindRootCauses({}).response_time.empty());
}

}  // namespace
}  // namespace xrayd::api
