// The dispatcher (XrayApi::Handle) end to end without a socket: real store in a temp directory,
// requests as the server layer hands them over.
#include "api/xray_api.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>
#include <vector>
#include <nlohmann/json.hpp>

#include "api/root_causes.h"
#include "api/trace_assembly.h"
#include "aws/sigv4.h"
#include "segment/segment.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

class XrayApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("xrayd-api-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = store::TraceStore::Open({dir_.string()});
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    api_ = std::make_unique<XrayApi>(options_, *store_);
  }
  void TearDown() override {
    api_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  http::OutgoingResponse Call(const std::string& path, const std::string& body, const std::string& method = "POST") {
    http::IncomingRequest r;
    r.method = method;
    r.target = r.path = path;
    r.headers = {{"Content-Type", "application/json"}};
    r.body = body;
    r.peer = "127.0.0.1:1";
    return api_->Handle(r);
  }
  // The answer's JSON body; checks the status and, for errors, the x-amzn-ErrorType header.
  json Expect(const http::OutgoingResponse& r, int status, const std::string& type = "") {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    json body = json::parse(r.body);
    if (!type.empty()) {
      EXPECT_EQ(body["__type"], type) << r.body;
      bool header = false;
      for (const auto& [k, v] : r.headers) header |= k == "x-amzn-ErrorType" && v == type;
      EXPECT_TRUE(header) << r.body;
    }
    return body;
  }

  ApiOptions options_;
  std::filesystem::path dir_;
  std::unique_ptr<store::TraceStore> store_;
  std::unique_ptr<XrayApi> api_;
};

TEST_F(XrayApiTest, RoutesByPathAndRefusesOtherOperations) {
  json rules = Expect(Call("/GetSamplingRules", ""), 200);
  EXPECT_EQ(rules["SamplingRuleRecords"][0]["SamplingRule"]["RuleName"], "Default");
  json e = Expect(Call("/NoSuchOperation", "{}"), 404, "UnknownOperationException");
  EXPECT_EQ(e["message"], "no X-Ray operation at POST /NoSuchOperation");
  Expect(Call("/GetSamplingRules", "", "GET"), 404, "UnknownOperationException");
  Expect(Call("/GetSamplingRules", "", "DELETE"), 404, "UnknownOperationException");
}

TEST_F(XrayApiTest, GroupLifecycle) {
  json g = Expect(Call("/CreateGroup", R"({"GroupName": "slow", "FilterExpression": "responsetime > 1"})"), 200);
  EXPECT_EQ(g["Group"]["GroupARN"], "arn:aws:xray:local:000000000000:group/slow");
  Expect(Call("/CreateGroup", R"({"GroupName": "slow"})"), 400, "InvalidRequestException");
  EXPECT_EQ(Expect(Call("/GetGroup", R"({"GroupARN": "arn:aws:xray:local:000000000000:group/slow"})"), 200)
                ["Group"]["FilterExpression"],
            "responsetime > 1");
  EXPECT_EQ(Expect(Call("/Groups", "{}"), 200)["Groups"].size(), 2u);
  json bad = Expect(Call("/UpdateGroup", R"({"GroupName": "slow", "FilterExpression": "responsetime >"})"), 400,
                    "InvalidRequestException");
  EXPECT_EQ(bad["message"].get<std::string>().rfind("FilterExpression: ", 0), 0u) << bad;
  Expect(Call("/DeleteGroup", R"({"GroupName": "slow"})"), 200);
  json gone = Expect(Call("/GetGroup", R"({"GroupName": "slow"})"), 400, "InvalidRequestException");
  EXPECT_EQ(gone["message"], "group slow not found");
}

TEST_F(XrayApiTest, SamplingRuleLifecycle) {
  const json rule = {{"RuleName", "r1"}, {"ResourceARN", "*"}, {"Priority", 5}, {"FixedRate", 0.5},
                     {"ReservoirSize", 4}, {"ServiceName", "*"}, {"ServiceType", "*"}, {"Host", "*"},
                     {"HTTPMethod", "*"}, {"URLPath", "*"}, {"Version", 1}, {"Smuggled", "not stored"}};
  json created = Expect(Call("/CreateSamplingRule", json{{"SamplingRule", rule}}.dump()), 200);
  EXPECT_FALSE(created["SamplingRuleRecord"]["SamplingRule"].contains("Smuggled"));
  Expect(Call("/CreateSamplingRule", json{{"SamplingRule", rule}}.dump()), 400, "InvalidRequestException");
  json updated = Expect(
      Call("/UpdateSamplingRule", R"({"SamplingRuleUpdate": {"RuleARN": "arn:aws:xray:local:000000000000:sampling-rule/r1",
                                                             "FixedRate": 0.25}})"),
      200);
  EXPECT_EQ(updated["SamplingRuleRecord"]["SamplingRule"]["FixedRate"], 0.25);
  EXPECT_EQ(updated["SamplingRuleRecord"]["SamplingRule"]["Priority"], 5);
  json targets = Expect(Call("/SamplingTargets", R"({"SamplingStatisticsDocuments": [{"RuleName": "r1",
      "ClientID": "0123456789abcdef01234567", "Timestamp": 1700000000, "RequestCount": 3, "SampledCount": 1}]})"),
                        200);
  EXPECT_EQ(targets["SamplingTargetDocuments"][0]["ReservoirQuota"], 4);
  Expect(Call("/DeleteSamplingRule", R"({"RuleName": "Default"})"), 400, "InvalidRequestException");
  EXPECT_EQ(Expect(Call("/UpdateSamplingRule", R"({"SamplingRuleUpdate": {"RuleARN": "arn:nope", "FixedRate": 0.1}})"),
                   400, "InvalidRequestException")["message"],
            "no rule with RuleARN arn:nope");
  Expect(Call("/DeleteSamplingRule", R"({"RuleName": "r1"})"), 200);
  EXPECT_EQ(Expect(Call("/GetSamplingRules", "{}"), 200)["SamplingRuleRecords"].size(), 1u);
}

TEST_F(XrayApiTest, TraceSummariesPageWithTheStoresCursor) {
  json docs = json::array();
  for (int i = 0; i < 130; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "1-5759e988-%024x", i);
    docs.push_back(json{{"trace_id", id}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"}, {"start_time", 1465510280.0 + i},
                        {"end_time", 1465510281.0 + i}}.dump());
  }
  EXPECT_TRUE(Expect(Call("/TraceSegments", json{{"TraceSegmentDocuments", docs}}.dump()), 200)
                  ["UnprocessedTraceSegments"].empty());
  for (const char* range : {"TraceId", "Event"}) {
    json req = {{"StartTime", 1465510000}, {"EndTime", 1465520000}, {"TimeRangeType", range}};
    std::set<std::string> seen;
    int pages = 0;
    for (; pages < 5; ++pages) {
      json page = Expect(Call("/TraceSummaries", req.dump()), 200);
      for (const auto& s : page["TraceSummaries"]) EXPECT_TRUE(seen.insert(s["Id"]).second) << s["Id"];
      if (!page.contains("NextToken")) break;
      req["NextToken"] = page["NextToken"];
    }
    EXPECT_EQ(seen.size(), 130u) << range;
    EXPECT_EQ(pages, 1) << range << ": two pages of 100 and 30";
  }
  json bad = Expect(Call("/TraceSummaries", R"({"StartTime": 1, "EndTime": 2, "NextToken": "garbage"})"), 400,
                    "InvalidRequestException");
  EXPECT_EQ(bad["message"], "NextToken is not valid");
  // A NextToken from an xrayd before the store's schema 6 (hex of "<order>|<time>|<trace id>") is
  // refused with a message saying what to do, in either order.
  auto hex = [](const std::string& text) {
    std::string out;
    for (unsigned char c : text) out += "0123456789abcdef"[c >> 4], out += "0123456789abcdef"[c & 15];
    return out;
  };
  for (const char* old : {"E|1465510280.5|1-5759e988-000000000000000000000001", "T|1465510280|1-5759e988-0000000000000000000000a1"}) {
    json req = {{"StartTime", 1465510000}, {"EndTime", 1465520000}, {"TimeRangeType", old[0] == 'E' ? "Event" : "TraceId"},
                {"NextToken", hex(old)}};
    json e = Expect(Call("/TraceSummaries", req.dump()), 400, "InvalidRequestException");
    EXPECT_EQ(e["message"], "NextToken is not valid: " + std::string(store::kCursorBeforeUpgrade)) << old;
  }
}

// A page's summaries read every trace's segments in one store call: their root causes equal those
// found per trace the reference way (SegmentsOf, AssembleTrace, FactsOf), for plain traces, traces
// with a streamed subsegment document (which needs the assembly) and traces with a load balancer's
// segment; BatchGetTraces returns what AssembleTrace makes of each trace.
TEST_F(XrayApiTest, PageSummariesAndBatchEqualThePerTraceReads) {
  json docs = json::array();
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "1-5759e988-%024x", i + 1000);
    ids.push_back(id);
    const double t = 1465510280.0 + i;
    json root = {{"trace_id", id}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"}, {"origin", "AWS::EC2::Instance"},
                 {"start_time", t}, {"end_time", t + 1}, {"fault", i % 3 == 0}, {"error", i % 5 == 0}};
    json call = {{"id", "bbbbbbbbbbbbbbb1"}, {"name", "orders"}, {"namespace", "remote"}, {"start_time", t + 0.1},
                 {"end_time", t + 0.8}, {"fault", i % 3 == 0}};
    if (i % 4 == 1) {
      call["cause"] = {{"exceptions", json::array({{{"id", "cccccccccccccc01"}, {"type", "Timeout"}, {"message", "slow"}}})}};
    }
    root["subsegments"] = json::array({call});
    if (i % 4 == 2) {  // the call streamed as its own document, with a child of its own
      root.erase("subsegments");
      call.update({{"type", "subsegment"}, {"trace_id", id}, {"parent_id", "aaaaaaaaaaaaaaa1"}});
      call["subsegments"] = json::array({{{"id", "ddddddddddddddd1"}, {"name", "DynamoDB"}, {"namespace", "aws"},
                                          {"start_time", t + 0.2}, {"end_time", t + 0.7}, {"throttle", true},
                                          {"error", true}}});
      docs.push_back(call.dump());
    }
    docs.push_back(root.dump());
    if (i % 2 == 0)
      docs.push_back(json{{"trace_id", id}, {"id", "eeeeeeeeeeeeeee1"}, {"parent_id", "bbbbbbbbbbbbbbb1"},
                          {"name", "orders"}, {"origin", "AWS::ECS::Container"}, {"start_time", t + 0.15},
                          {"end_time", t + 0.75}, {"fault", i % 3 == 0}, {"error", i % 7 == 0}}.dump());
    if (i % 8 == 3)  // a load balancer's segment: the first service goes under its target call
      docs.push_back(json{{"trace_id", id}, {"id", "fffffffffffffff1"}, {"name", "my-alb"},
                          {"origin", "AWS::ElasticLoadBalancingV2::LoadBalancer"}, {"start_time", t - 0.01},
                          {"end_time", t + 1.01}, {"fault", true},
                          {"subsegments", json::array({{{"id", "fffffffffffffff2"}, {"name", "web"},
                                                        {"namespace", "remote"}, {"start_time", t - 0.005},
                                                        {"end_time", t + 1.005}, {"fault", true}}})}}.dump());
  }
  EXPECT_TRUE(Expect(Call("/TraceSegments", json{{"TraceSegmentDocuments", docs}}.dump()), 200)
                  ["UnprocessedTraceSegments"].empty());
  json page = Expect(Call("/TraceSummaries", R"({"StartTime": 1465510000, "EndTime": 1465520000})"), 200);
  ASSERT_EQ(page["TraceSummaries"].size(), 40u);
  int with_causes = 0;
  for (const auto& summary : page["TraceSummaries"]) {
    auto segs = store_->SegmentsOf(summary["Id"].get<std::string>());
    ASSERT_TRUE(segs);
    segment::Parser parser;
    std::vector<segment::Facts> facts;
    for (const auto& s : AssembleTrace(*segs).segments)
      if (!parser.FactsOf(s.document, &facts.emplace_back()).ok()) facts.pop_back();
    RootCauses want = FindRootCauses(facts);
    EXPECT_EQ(summary["FaultRootCauses"], want.fault) << summary["Id"];
    EXPECT_EQ(summary["ErrorRootCauses"], want.error) << summary["Id"];
    EXPECT_EQ(summary["ResponseTimeRootCauses"], want.response_time) << summary["Id"];
    with_causes += !want.fault.empty();
  }
  EXPECT_GE(with_causes, 10) << "the comparison covers traces with fault root causes";
  // BatchGetTraces: the traces asked for, each as AssembleTrace makes it; an unknown id is left out.
  json batch = Expect(Call("/Traces", json{{"TraceIds", {ids[2], ids[3], "1-5759e988-000000000000000000000bad", ids[6]}}}
                                          .dump()),
                      200);
  ASSERT_EQ(batch["Traces"].size(), 3u) << batch.dump();
  for (const auto& trace : batch["Traces"]) {
    auto segs = store_->SegmentsOf(trace["Id"].get<std::string>());
    ASSERT_TRUE(segs);
    AssembledTrace want = AssembleTrace(*segs);
    ASSERT_EQ(trace["Segments"].size(), want.segments.size());
    for (size_t k = 0; k < want.segments.size(); ++k) {
      EXPECT_EQ(trace["Segments"][k]["Id"], want.segments[k].id);
      EXPECT_EQ(trace["Segments"][k]["Document"], want.segments[k].document);
    }
    EXPECT_DOUBLE_EQ(trace["Duration"].get<double>(), want.duration);
  }
  EXPECT_EQ(batch["Traces"][0]["Id"], ids[2]);
  EXPECT_EQ(batch["Traces"][2]["Id"], ids[6]);
}

// Graphs without a group filter come from the store's per-minute rollups: exact however many
// traces the window holds. What rollups cannot answer (a group's filter expression, a period that
// is not whole minutes) is built from the window's newest traces, and a partial answer is counted.
TEST_F(XrayApiTest, GraphsAreExactFromRollupsAndPartialScansAreCounted) {
  std::atomic<uint64_t> truncated{0};
  options_.limits.graph_traces = 3;
  options_.limits.graph_truncated = &truncated;
  api_ = std::make_unique<XrayApi>(options_, *store_);
  json docs = json::array();
  for (int i = 0; i < 5; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "1-5759e988-%024x", i);
    docs.push_back(json{{"trace_id", id}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", i < 4 ? "svc" + std::to_string(i) : "svc0"},
                        {"start_time", 1465510280.0 + i * 20}, {"end_time", 1465510280.5 + i * 20}}.dump());
  }
  Expect(Call("/TraceSegments", json{{"TraceSegmentDocuments", docs}}.dump()), 200);
  json graph = Expect(Call("/ServiceGraph", R"({"StartTime": 1465510000, "EndTime": 1465520000})"), 200);
  ASSERT_EQ(graph["Services"].size(), 4u) << graph.dump();
  EXPECT_EQ(graph["Services"][0]["Name"], "svc0");
  EXPECT_EQ(graph["Services"][0]["SummaryStatistics"]["TotalCount"], 2) << "both svc0 traces, all five counted";
  EXPECT_EQ(graph["StartTime"], 1465509960) << "the whole minutes the window touches";
  EXPECT_EQ(truncated.load(), 0u);
  json series = Expect(Call("/TimeSeriesServiceStatistics",
                            R"({"StartTime": 1465510000, "EndTime": 1465520000, "Period": 60})"), 200);
  int64_t entering = 0;
  for (const auto& p : series["TimeSeriesServiceStatistics"]) entering += p["EdgeSummaryStatistics"]["TotalCount"].get<int64_t>();
  EXPECT_EQ(entering, 5);
  EXPECT_EQ(truncated.load(), 0u);
  EXPECT_FALSE(graph.contains("PartialAnswer"));
  EXPECT_FALSE(series.contains("PartialAnswer"));
  // A period of 30 s: from documents, the newest three traces only, and the answer says so.
  json part = Expect(Call("/TimeSeriesServiceStatistics",
                          R"({"StartTime": 1465510000, "EndTime": 1465520000, "Period": 30})"), 200);
  EXPECT_EQ(truncated.load(), 1u);
  ASSERT_TRUE(part.contains("PartialAnswer")) << part.dump();
  EXPECT_EQ(part["PartialAnswer"]["TracesRead"], 3);
  EXPECT_NE(part["PartialAnswer"]["Reason"].get<std::string>().find("newest 3"), std::string::npos);
  // A group's filter the store's indexes answer (a service): only the traces that may match are
  // read, so the bound of three covers both svc0 traces: exact, not partial.
  Expect(Call("/CreateGroup", R"x({"GroupName": "zero", "FilterExpression": "service(\"svc0\")"})x"), 200);
  json filtered = Expect(
      Call("/ServiceGraph", R"({"StartTime": 1465510000, "EndTime": 1465520000, "GroupName": "zero"})"), 200);
  EXPECT_EQ(truncated.load(), 1u);
  EXPECT_FALSE(filtered.contains("PartialAnswer")) << filtered.dump();
  ASSERT_EQ(filtered["Services"].size(), 1u) << filtered.dump();
  EXPECT_EQ(filtered["Services"][0]["SummaryStatistics"]["TotalCount"], 2) << "both svc0 traces";
  // A group's filter no index answers: the newest three of the window, counted and marked partial.
  Expect(Call("/CreateGroup", R"x({"GroupName": "slowish", "FilterExpression": "responsetime >= 0"})x"), 200);
  json scanned = Expect(
      Call("/ServiceGraph", R"({"StartTime": 1465510000, "EndTime": 1465520000, "GroupName": "slowish"})"), 200);
  EXPECT_EQ(truncated.load(), 2u);
  ASSERT_TRUE(scanned.contains("PartialAnswer")) << scanned.dump();
  EXPECT_EQ(scanned["PartialAnswer"]["TracesRead"], 3);
  EXPECT_EQ(scanned["Services"].size(), 3u) << "the newest three traces: svc2, svc3 and svc0";
  json scanned_series = Expect(Call("/TimeSeriesServiceStatistics",
                                    R"({"StartTime": 1465510000, "EndTime": 1465520000, "GroupName": "slowish"})"),
                               200);
  EXPECT_EQ(truncated.load(), 3u);
  EXPECT_TRUE(scanned_series.contains("PartialAnswer")) << scanned_series.dump();
}

// GetTraceSummaries' Sampling/SamplingStrategy: FixedRate keeps a stable fraction of the matches,
// PartialScan examines only that fraction (and says so in TracesProcessedCount).
TEST_F(XrayApiTest, SummariesSampleAStableFraction) {
  json docs = json::array();
  for (int i = 0; i < 100; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "1-5759e988-%024x", i * 7919);
    docs.push_back(json{{"trace_id", id}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "svc"},
                        {"start_time", 1465510280.0 + i}, {"end_time", 1465510280.5 + i}}.dump());
  }
  Expect(Call("/TraceSegments", json{{"TraceSegmentDocuments", docs}}.dump()), 200);
  auto ids = [&](const std::string& strategy, double value, bool sampling = true) {
    json req = {{"StartTime", 1465510000}, {"EndTime", 1465520000}, {"TimeRangeType", "Event"}, {"Sampling", sampling},
                {"SamplingStrategy", {{"Name", strategy}, {"Value", value}}}};
    json page = Expect(Call("/TraceSummaries", req.dump()), 200);
    std::set<std::string> out;
    for (const auto& s : page["TraceSummaries"]) out.insert(s["Id"].get<std::string>());
    return std::make_pair(out, page["TracesProcessedCount"].get<int>());
  };
  auto [all, all_processed] = ids("FixedRate", 1.0);
  EXPECT_EQ(all.size(), 100u);
  auto [quarter, processed] = ids("FixedRate", 0.25);
  EXPECT_GT(quarter.size(), 10u);
  EXPECT_LT(quarter.size(), 45u);
  EXPECT_EQ(processed, 100) << "FixedRate examines every trace";
  EXPECT_EQ(ids("FixedRate", 0.25).first, quarter) << "the same subset every call";
  auto [partial, partial_processed] = ids("PartialScan", 0.25);
  EXPECT_EQ(partial, quarter);
  EXPECT_EQ(partial_processed, static_cast<int>(quarter.size())) << "PartialScan examines only its part";
  EXPECT_EQ(ids("FixedRate", 0.25, false).first.size(), 100u) << "Sampling false: no sampling";
}

// issue #11: a value nested 100,000 deep killed `xrayd serve`; a 50,000-deep one was stored.
TEST_F(XrayApiTest, DeeplyNestedBodiesAreRefusedNotParsed) {
  for (size_t depth : {100000u, 50000u, 17u}) {
    const std::string body = "{\"SamplingRule\":{\"Attributes\":{\"a\":" + std::string(depth, '[') +
                             std::string(depth, ']') + "}}}";
    json e = Expect(Call("/CreateSamplingRule", body), 400, "InvalidRequestException");
    EXPECT_EQ(e["message"], "request body nested deeper than 16 levels");
  }
  EXPECT_EQ(Expect(Call("/GetSamplingRules", "{}"), 200)["SamplingRuleRecords"].size(), 1u);
  // Segment documents are strings in the body: a deep one is rejected as a segment, and its id is
  // looked for only within limits.
  const std::string deep_doc = "{\"id\":\"x\",\"a\":" + std::string(30000, '[') + std::string(30000, ']') + "}";
  json put = Expect(Call("/TraceSegments", json{{"TraceSegmentDocuments", {deep_doc}}}.dump()), 200);
  ASSERT_EQ(put["UnprocessedTraceSegments"].size(), 1u);
  EXPECT_EQ(put["UnprocessedTraceSegments"][0]["Id"], "");
}

// PutTraceSegments' validators are kept between requests (a pool, traces.cc): a verdict must not
// depend on what an earlier request left in one. Threads put at once (more than the pool keeps), each
// request a long valid document, the same document cut short by its last byte (invalid JSON: a
// leftover byte of the longer copy must not complete it) and one without a name.
TEST_F(XrayApiTest, PutTraceSegmentsVerdictsDoNotDependOnEarlierRequests) {
  constexpr int kThreads = 8, kRequests = 10;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        char id[17], trace[36];
        std::snprintf(id, sizeof id, "%016x", t * 1000 + i + 1);
        std::snprintf(trace, sizeof trace, "1-5f84c7a1-%024x", t * 1000 + i + 1);
        const json valid = {{"trace_id", trace}, {"id", id}, {"name", "svc"}, {"start_time", 1602537377.0},
                            {"end_time", 1602537378.0}, {"metadata", {{"pad", std::string(2000 + 500 * i, 'x')}}}};
        const std::string text = valid.dump();
        json nameless = valid;
        nameless.erase("name");
        const json docs = {text, text.substr(0, text.size() - 1), nameless.dump()};
        const auto r = Call("/TraceSegments", json{{"TraceSegmentDocuments", docs}}.dump());
        const json out = json::parse(r.body, nullptr, false);
        const json expected = json::array({{{"Id", ""}, {"ErrorCode", "InvalidSegment"}},
                                           {{"Id", id}, {"ErrorCode", "InvalidSegment"}}});
        json got = json::array();
        if (r.status == 200 && out.is_object())
          for (const auto& u : out["UnprocessedTraceSegments"]) got.push_back({{"Id", u["Id"]}, {"ErrorCode", u["ErrorCode"]}});
        if (got != expected) ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  // Each trace holds its one valid document, nothing else.
  std::vector<std::string> ids;
  for (int n = 0; n < kThreads * kRequests; ++n) {
    char trace[36];
    std::snprintf(trace, sizeof trace, "1-5f84c7a1-%024x", (n / kRequests) * 1000 + n % kRequests + 1);
    ids.push_back(trace);
  }
  auto stored = store_->SegmentsOfTraces(ids);
  ASSERT_TRUE(stored) << stored.error().message;
  for (size_t n = 0; n < ids.size(); ++n) EXPECT_EQ((*stored)[n].size(), 1u) << ids[n];
}

TEST_F(XrayApiTest, FieldsAreCheckedAgainstTheModel) {
  json e = Expect(Call("/CreateGroup", json{{"GroupName", std::string(1 << 20, 'g')}}.dump()), 400,
                  "InvalidRequestException");
  EXPECT_EQ(e["message"], "GroupName length must be between 1 and 32 characters");
  e = Expect(Call("/TraceSummaries", R"({"StartTime": 10, "EndTime": 20, "TimeRangeType": "Wrong"})"), 400,
             "InvalidRequestException");
  EXPECT_EQ(e["message"], "TimeRangeType must be one of: TraceId, Event, Service");
  e = Expect(Call("/TraceSummaries", R"({"StartTime": 20, "EndTime": 10})"), 400, "InvalidRequestException");
  EXPECT_EQ(e["message"], "EndTime is before StartTime");
  e = Expect(Call("/Traces", "{}"), 400, "InvalidRequestException");
  EXPECT_EQ(e["message"], "TraceIds is required");
  Expect(Call("/Traces", "not json"), 400, "InvalidRequestException");
}

// issue #11: a non-ASCII byte in a filter answered 500 with the exception text in a header.
TEST_F(XrayApiTest, NonAsciiFilterIsAnInvalidRequest) {
  for (const char* filter : {"\xC3\xA9 = 1", "http.url = \"x\" AND \xC3\xBF", "service(\"caf\xC3\xA9\") AND \xE2\x82\xAC"}) {
    auto r = Call("/TraceSummaries", json{{"StartTime", 10}, {"EndTime", 20}, {"FilterExpression", filter}}.dump());
    json e = Expect(r, 400, "InvalidRequestException");
    EXPECT_NE(e["message"].get<std::string>().find("unexpected byte 0x"), std::string::npos) << e;
    ASSERT_EQ(r.headers.size(), 1u) << "only x-amzn-ErrorType";
  }
  // Inside a quoted string, UTF-8 is a value like any other.
  Expect(Call("/TraceSummaries", json{{"StartTime", 10}, {"EndTime", 20}, {"FilterExpression", "user = \"\xC3\xA9\""}}.dump()),
         200);
}

// A failure of ours answers InternalFailure without internal text (here SQLite's "no such table").
TEST_F(XrayApiTest, StoreFailuresDoNotLeakInternalText) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "traces.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE traces", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto r = Call("/TraceSummaries", R"({"StartTime": 10, "EndTime": 20})");
  json e = Expect(r, 500, "InternalFailure");
  EXPECT_EQ(e["message"], "internal error; see the xrayd log");
  EXPECT_EQ(r.body.find("traces"), std::string::npos);
  for (const auto& [k, v] : r.headers) EXPECT_EQ(v.find("table"), std::string::npos) << k;
}

TEST_F(XrayApiTest, SignaturesAreCheckedWhenKeysAreConfigured) {
  options_.verify_signatures = true;
  options_.keys = {{"AKIDEXAMPLE", "secret"}};
  api_ = std::make_unique<XrayApi>(options_, *store_);
  auto r = Call("/GetSamplingRules", "{}");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_FALSE(json::parse(r.body)["__type"].get<std::string>().empty());

  http::IncomingRequest req;
  req.method = "POST";
  req.target = req.path = "/GetSamplingRules";
  req.body = "{}";
  aws::SignableRequest s{"POST", "/GetSamplingRules", "", {{"Host", "127.0.0.1:2020"}, {"Content-Type", "application/json"}}};
  aws::Sign(s, req.body, {"AKIDEXAMPLE", "secret", ""}, {"us-east-1", "xray", std::chrono::system_clock::now()});
  req.headers = s.headers;
  EXPECT_EQ(api_->Handle(req).status, 200);
}

}  // namespace
}  // namespace xrayd::api
