#include "segment/lb_join.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace xrayd::segment {
namespace {

using nlohmann::json;

const char* kTrace = "1-65e1d287-5fc6f0f34b4fb2120da8bbec";

std::string Lb(const std::string& trace, const std::string& id, double start, const std::string& target_id) {
  return json{{"trace_id", trace}, {"id", id}, {"name", "my-alb"}, {"origin", kAlbOrigin}, {"start_time", start},
              {"end_time", start + 1},
              {"subsegments", json::array({{{"id", target_id}, {"name", "10.0.0.1:80"}, {"namespace", "remote"},
                                            {"start_time", start}, {"end_time", start + 1}}})}}
      .dump();
}

std::string Service(const std::string& trace, const std::string& id, double start, const char* parent = nullptr) {
  json j = {{"trace_id", trace}, {"id", id}, {"name", "SimpleApp"}, {"start_time", start}, {"end_time", start + 0.5}};
  if (parent) j["parent_id"] = parent;
  return j.dump();
}

std::string ParentOf(const std::string& doc) { return json::parse(doc).value("parent_id", ""); }

TEST(LbJoin, FirstServiceGoesUnderTheTargetSubsegment) {
  std::vector<std::string> docs = {Service(kTrace, "00000000000000a1", 100.2),
                                   Service(kTrace, "00000000000000a2", 100.3, "00000000000000f0"),
                                   Lb(kTrace, "00000000000000b1", 100.0, "00000000000000c1"),
                                   Service(kTrace, "00000000000000a0", 100.25)};
  auto out = JoinLoadBalancer(docs);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(ParentOf(out[0]), "00000000000000c1");  // the earliest parentless service segment
  EXPECT_EQ(out[1], docs[1]);                       // already has a parent
  EXPECT_EQ(out[2], docs[2]);                       // the load balancer itself
  EXPECT_EQ(out[3], docs[3]);                       // a later root stays a root
}

TEST(LbJoin, OtherTracesAndTracesWithoutLoadBalancerAreUntouched) {
  const std::string other = "1-65e1d287-000000000000000000000001";
  std::vector<std::string> docs = {Service(other, "00000000000000a1", 1), Lb(kTrace, "00000000000000b1", 1, "00000000000000c1"),
                                   Service(kTrace, "00000000000000a2", 2), "not json", R"({"trace_id": 5})"};
  auto out = JoinLoadBalancer(docs);
  EXPECT_EQ(out[0], docs[0]);
  EXPECT_EQ(ParentOf(out[2]), "00000000000000c1");
  EXPECT_EQ(out[3], "not json");
  EXPECT_EQ(out[4], docs[4]);
  std::vector<std::string> plain = {Service(kTrace, "00000000000000a1", 1)};
  EXPECT_EQ(JoinLoadBalancer(plain), plain);
}

TEST(LbJoin, ALoadBalancerWithoutTargetJoinsNothing) {
  json lb = json::parse(Lb(kTrace, "00000000000000b1", 1, "00000000000000c1"));
  lb.erase("subsegments");
  std::vector<std::string> docs = {lb.dump(), Service(kTrace, "00000000000000a1", 2)};
  EXPECT_EQ(JoinLoadBalancer(docs), docs);
}

}  // namespace
}  // namespace xrayd::segment
