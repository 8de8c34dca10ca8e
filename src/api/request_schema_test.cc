#include "api/request_schema.h"

#include <gtest/gtest.h>

#include <string>

#include "api/json_input.h"
#include "api/request_shapes.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

// The InvalidRequestException message for `body` against `shape`, or "" when valid.
std::string Problem(const Shape& shape, const std::string& body) {
  auto st = Validate(json::parse(body), shape);
  if (st) return "";
  EXPECT_EQ(st.error().status, 400);
  EXPECT_EQ(st.error().type, "InvalidRequestException");
  return st.error().message;
}

json Rule() {
  return {{"RuleName", "r"}, {"ResourceARN", "*"}, {"Priority", 100}, {"FixedRate", 0.5}, {"ReservoirSize", 1},
          {"ServiceName", "*"}, {"ServiceType", "*"}, {"Host", "*"}, {"HTTPMethod", "*"}, {"URLPath", "*"},
          {"Version", 1}, {"Attributes", {{"tier", "gold"}}}};
}

std::string RuleProblem(const json& rule) { return Problem(shapes::kCreateSamplingRule, json{{"SamplingRule", rule}}.dump()); }

TEST(RequestSchema, ValidRequestsPass) {
  EXPECT_EQ(RuleProblem(Rule()), "");
  EXPECT_EQ(Problem(shapes::kGetTraceSummaries,
                    R"({"StartTime": 1700000000, "EndTime": "2024-01-02T03:04:05Z", "TimeRangeType": "Event",
                        "FilterExpression": "ok", "Sampling": false, "SamplingStrategy": {"Name": "FixedRate"}})"),
            "");
  EXPECT_EQ(Problem(shapes::kBatchGetTraces, R"({"TraceIds": ["1-5759e988-bd862e3fe1be46a994272793"]})"), "");
  EXPECT_EQ(Problem(shapes::kGetSamplingRules, "{}"), "");
  EXPECT_EQ(Problem(shapes::kGetGroup, R"({"Unknown": {"members": "are ignored"}})"), "");
}

TEST(RequestSchema, NamesAndLengths) {
  auto rule = Rule();
  rule["RuleName"] = std::string(33, 'a');
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.RuleName length must be between 1 and 32 characters");
  rule["RuleName"] = std::string(1 << 20, 'a');  // the 1 MB name of the issue
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.RuleName length must be between 1 and 32 characters");
  rule["RuleName"] = "";
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.RuleName length must be between 1 and 32 characters");
  rule["RuleName"] = std::string(16, 'a') + std::string(16, 'a') ;
  EXPECT_EQ(RuleProblem(rule), "");
  rule["RuleName"] = "\xC3\xA9\xC3\xA9";  // two characters, four bytes
  EXPECT_EQ(RuleProblem(rule), "");
  rule = Rule();
  rule["URLPath"] = std::string(129, '/');
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.URLPath length must be at most 128 characters");
  EXPECT_EQ(Problem(shapes::kCreateGroup, R"({"GroupName": ""})"),
            "GroupName length must be between 1 and 32 characters");
  EXPECT_EQ(Problem(shapes::kCreateGroup, json{{"GroupName", "g"}, {"FilterExpression", std::string(5000, 'x')}}.dump()),
            "FilterExpression length must be at most 4096 characters");
  EXPECT_EQ(Problem(shapes::kGetGroups, R"({"NextToken": ""})"),
            "NextToken length must be between 1 and 100 characters");
}

TEST(RequestSchema, RangesAndTypes) {
  auto rule = Rule();
  for (auto [priority, ok] : {std::pair{0, false}, {1, true}, {9999, true}, {10000, false}}) {
    rule["Priority"] = priority;
    EXPECT_EQ(RuleProblem(rule).empty(), ok) << priority;
  }
  rule = Rule();
  rule["FixedRate"] = 1.5;
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.FixedRate must be between 0 and 1");
  rule["FixedRate"] = "0.5";
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.FixedRate must be a number");
  rule = Rule();
  rule["ReservoirSize"] = -1;
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.ReservoirSize must be at least 0");
  rule["ReservoirSize"] = 1.5;
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.ReservoirSize must be an integer");
  rule["ReservoirSize"] = 3.0;  // an integral number is an integer
  EXPECT_EQ(RuleProblem(rule), "");
  rule["ReservoirSize"] = 1e12;
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.ReservoirSize must be a 32-bit integer");
  rule["ReservoirSize"] = nullptr;
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.ReservoirSize must be an integer");
  rule = Rule();
  rule.erase("Host");
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.Host is required");
  EXPECT_EQ(Problem(shapes::kCreateSamplingRule, "{}"), "SamplingRule is required");
  EXPECT_EQ(Problem(shapes::kCreateSamplingRule, R"({"SamplingRule": []})"), "SamplingRule must be an object");
}

TEST(RequestSchema, MapsListsAndEnums) {
  auto rule = Rule();
  rule["Attributes"] = {{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}, {"f", "6"}};
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.Attributes count must be at most 5 entries");
  rule["Attributes"] = {{"tier", std::string(33, 'g')}};
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.Attributes.tier length must be between 1 and 32 characters");
  rule["Attributes"] = {{std::string(33, 'k'), "v"}};
  EXPECT_NE(RuleProblem(rule).find("SamplingRule.Attributes key"), std::string::npos);
  rule["Attributes"] = {{"tier", {{"nested", "object"}}}};
  EXPECT_EQ(RuleProblem(rule), "SamplingRule.Attributes.tier must be a string");

  EXPECT_EQ(Problem(shapes::kBatchGetTraces, R"({"TraceIds": ["a","b","c","d","e","f"]})"),
            "TraceIds count must be at most 5 entries");
  EXPECT_EQ(Problem(shapes::kBatchGetTraces, json{{"TraceIds", {"ok", std::string(36, '1')}}}.dump()),
            "TraceIds[1] length must be between 1 and 35 characters");
  EXPECT_EQ(Problem(shapes::kBatchGetTraces, R"({"TraceIds": [7]})"), "TraceIds[0] must be a string");
  EXPECT_EQ(Problem(shapes::kGetTraceSummaries, R"({"StartTime": 1, "EndTime": 2, "TimeRangeType": "Span"})"),
            "TimeRangeType must be one of: TraceId, Event, Service");
  EXPECT_EQ(Problem(shapes::kGetSamplingTargets,
                    R"({"SamplingStatisticsDocuments": [{"RuleName": "r", "ClientID": "short", "Timestamp": 1,
                        "RequestCount": 1, "SampledCount": 0}]})"),
            "SamplingStatisticsDocuments[0].ClientID length must be between 24 and 24 characters");
  EXPECT_EQ(Problem(shapes::kGetTimeSeriesServiceStatistics, R"({"StartTime": 1, "EndTime": 2, "Period": 0})"),
            "Period must be at least 1");
}

TEST(RequestSchema, Timestamps) {
  EXPECT_EQ(ParseTimestamp(json(1700000000.5)), 1700000000.5);
  EXPECT_EQ(ParseTimestamp(json("1700000000")), 1700000000.0);
  EXPECT_EQ(ParseTimestamp(json("2024-01-02T03:04:05Z")), 1704164645.0);
  EXPECT_EQ(ParseTimestamp(json("2024-01-02T03:04:05.5Z")), 1704164645.5);
  EXPECT_EQ(ParseTimestamp(json("2024-01-02T05:04:05+02:00")), 1704164645.0);
  EXPECT_EQ(ParseTimestamp(json("2024-01-02T03:04:05")), 1704164645.0);
  for (const char* bad : {"", "soon", "0x10", "nan", "inf", "2024-01-02", "2024-01-02T03:04:05 junk"})
    EXPECT_FALSE(ParseTimestamp(json(bad))) << bad;
  EXPECT_FALSE(ParseTimestamp(json(-1)));
  EXPECT_FALSE(ParseTimestamp(json(1.7e12 * 1000)));  // milliseconds past year 9999
  EXPECT_FALSE(ParseTimestamp(json(true)));
  EXPECT_EQ(Problem(shapes::kGetServiceGraph, R"({"StartTime": "yesterday", "EndTime": 2})"),
            "StartTime must be a timestamp (epoch seconds or ISO 8601) in years 1970-9999");
  EXPECT_EQ(Problem(shapes::kGetServiceGraph, R"({"EndTime": 2})"), "StartTime is required");
}

// ---- JSON limits (json_input.h) ----

TEST(JsonInput, DeepNestingIsRefusedBeforeParsing) {
  const std::string deep = "{\"SamplingRule\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = ParseRequestBody(deep, JsonLimits{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, "InvalidRequestException");
  EXPECT_EQ(r.error().message, "request body nested deeper than 16 levels");
  // Unbalanced openers only: still refused by the scan, never handed to the parser.
  EXPECT_FALSE(ParseRequestBody(std::string(1000000, '{'), JsonLimits{}));
}

TEST(JsonInput, BracketsInStringsDoNotCount) {
  const std::string text = "{\"a\":\"" + std::string(100, '[') + "\\\"{{{\"}";
  EXPECT_FALSE(CheckJsonLimits(text, {1 << 20, 2}));
  auto r = ParseRequestBody(text, {1 << 20, 2});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["a"].get<std::string>().size(), 104u);
  EXPECT_TRUE(CheckJsonLimits(R"({"a":{"b":[1]}})", {1 << 20, 2}));
  // An escaped backslash before the closing quote: the string ends there, and what follows counts.
  EXPECT_TRUE(CheckJsonLimits(R"({"a":"x\\","b":[[1]]})", {1 << 20, 2}));
  EXPECT_FALSE(CheckJsonLimits(R"({"a":"x\\\"[[[[","b":1})", {1 << 20, 1}));
  EXPECT_FALSE(CheckJsonLimits(R"({"a":"never closed [[[[[)", {1 << 20, 1}));
  EXPECT_FALSE(CheckJsonLimits(R"({"a":{"b":1}})", {1 << 20, 2}));
}

TEST(JsonInput, SizeAndShape) {
  auto big = ParseRequestBody(std::string(101, ' ') + "{}", {100, 16});
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("over the limit of 100"), std::string::npos);
  EXPECT_TRUE(ParseRequestBody("", {}));
  EXPECT_TRUE(ParseRequestBody(" \r\n", {})->is_object());
  EXPECT_EQ(ParseRequestBody("[1]", {}).error().message, "request body is not a JSON object");
  EXPECT_EQ(ParseRequestBody("{\"a\":", {}).error().message, "request body is not valid JSON");
  EXPECT_EQ(ParseRequestBody("{\"a\":\"\xFF\"}", {}).error().message, "request body is not valid JSON");
}

}  // namespace
}  // namespace xrayd::api
