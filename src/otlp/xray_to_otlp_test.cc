#include "otlp/xray_to_otlp.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "otlp/conventions.h"
#include "otlp/test_data.h"

namespace xrayd::otlp {
namespace {

using nlohmann::json;

const pb::AnyValue* Find(const google::protobuf::RepeatedPtrField<pb::KeyValue>& kvs, std::string_view key) {
  for (const auto& kv : kvs)
    if (kv.key() == key) return &kv.value();
  return nullptr;
}

pb::ExportTraceServiceRequest Convert(const std::string& doc, ToOtlpStats* stats) {
  pb::ExportTraceServiceRequest req;
  Status s = AppendSegment(doc, &req, stats);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return req;
}

TEST(XrayToOtlp, SegmentFieldsBecomeSpanAndResourceAttributes) {
  std::string doc = R"({"trace_id":"1-5f84c7a1-e7d1852db8c4fd35d88bf49a","id":"0123456789abcdef",
    "name":"checkout","start_time":1700000000.5,"end_time":1700000001.25,"origin":"AWS::ECS::Fargate",
    "user":"alice","service":{"version":"1.2.3"},
    "aws":{"account_id":"123456789012","xray":{"sdk":"X-Ray for Go","sdk_version":"1.8"}},
    "http":{"request":{"method":"GET","url":"http://h/x","client_ip":"10.0.0.1","user_agent":"ua"},
            "response":{"status":503,"content_length":12}},
    "fault":true,"annotations":{"k":"v","n":3,"f":1.5,"b":true},"metadata":{"ns":{"a":[1,2]}},
    "subsegments":[{"id":"1111111111111111","name":"DynamoDB","namespace":"aws","start_time":1700000000.6,
      "end_time":1700000000.7,"aws":{"operation":"GetItem","region":"us-east-1","request_id":"r1",
      "table_name":"t","retries":2}},
     {"id":"2222222222222222","name":"db","start_time":1700000000.8,"end_time":1700000000.9,
      "sql":{"url":"postgresql://db.local:5432/orders?ssl=1","database_type":"PostgreSQL",
      "sanitized_query":"SELECT 1","user":"app"},"in_progress":false},
     {"id":"3333333333333333","name":"open","start_time":1700000000.95,"in_progress":true}]})";
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest req = Convert(doc, &stats);
  ASSERT_EQ(req.resource_spans_size(), 1);
  const auto& rs = req.resource_spans(0);
  EXPECT_EQ(Find(rs.resource().attributes(), attr::kServiceName)->string_value(), "checkout");
  EXPECT_EQ(Find(rs.resource().attributes(), attr::kCloudPlatform)->string_value(), "aws_ecs");
  EXPECT_EQ(Find(rs.resource().attributes(), attr::kEcsLaunchType)->string_value(), "fargate");
  EXPECT_EQ(Find(rs.resource().attributes(), attr::kCloudAccountId)->string_value(), "123456789012");
  EXPECT_EQ(Find(rs.resource().attributes(), attr::kSdkName)->string_value(), "X-Ray for Go");
  EXPECT_EQ(Find(rs.resource().attributes(), attr::kSdkLanguage)->string_value(), "Go");
  EXPECT_EQ(Find(rs.resource().attributes(), attr::kServiceVersion)->string_value(), "1.2.3");
  const auto& spans = rs.scope_spans(0).spans();
  ASSERT_EQ(spans.size(), 4);
  EXPECT_EQ(stats.spans, 4u);

  const pb::Span& root = spans[0];
  EXPECT_EQ(Hex(root.trace_id()), "5f84c7a1e7d1852db8c4fd35d88bf49a");
  EXPECT_EQ(Hex(root.span_id()), "0123456789abcdef");
  EXPECT_TRUE(root.parent_span_id().empty());
  EXPECT_EQ(root.kind(), pb::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(root.start_time_unix_nano(), 1700000000500000000ull);
  EXPECT_EQ(root.end_time_unix_nano(), 1700000001250000000ull);
  EXPECT_EQ(root.status().code(), pb::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(Find(root.attributes(), attr::kHttpMethod)->string_value(), "GET");
  EXPECT_EQ(Find(root.attributes(), attr::kHttpStatus)->int_value(), 503);
  EXPECT_EQ(Find(root.attributes(), attr::kHttpContentLength)->int_value(), 12);
  EXPECT_EQ(Find(root.attributes(), attr::kHttpClientIp)->string_value(), "10.0.0.1");
  EXPECT_EQ(Find(root.attributes(), attr::kEnduserId)->string_value(), "alice");
  EXPECT_EQ(Find(root.attributes(), "k")->string_value(), "v");
  EXPECT_EQ(Find(root.attributes(), "n")->int_value(), 3);
  EXPECT_EQ(Find(root.attributes(), "f")->double_value(), 1.5);
  EXPECT_TRUE(Find(root.attributes(), "b")->bool_value());
  EXPECT_EQ(Find(root.attributes(), attr::kAnnotations)->array_value().values_size(), 4);
  EXPECT_EQ(json::parse(Find(root.attributes(), "aws.xray.metadata.ns")->string_value()), json::parse(R"({"a":[1,2]})"));

  const pb::Span& ddb = spans[1];
  EXPECT_EQ(ddb.parent_span_id(), root.span_id());
  EXPECT_EQ(ddb.trace_id(), root.trace_id());
  EXPECT_EQ(ddb.kind(), pb::Span::SPAN_KIND_CLIENT);
  EXPECT_EQ(Find(ddb.attributes(), attr::kAwsService)->string_value(), "DynamoDB");
  EXPECT_EQ(Find(ddb.attributes(), attr::kAwsOperation)->string_value(), "GetItem");
  EXPECT_EQ(Find(ddb.attributes(), attr::kAwsRetries)->int_value(), 2);

  const pb::Span& db = spans[2];
  EXPECT_EQ(db.kind(), pb::Span::SPAN_KIND_INTERNAL);
  EXPECT_EQ(Find(db.attributes(), attr::kDbConnection)->string_value(), "postgresql://db.local:5432");
  EXPECT_EQ(Find(db.attributes(), attr::kDbName)->string_value(), "orders");
  EXPECT_EQ(Find(db.attributes(), attr::kDbSystem)->string_value(), "PostgreSQL");
  EXPECT_EQ(Find(db.attributes(), attr::kDbStatement)->string_value(), "SELECT 1");

  const pb::Span& open = spans[3];
  EXPECT_EQ(open.end_time_unix_nano(), 0u);
  EXPECT_TRUE(Find(open.attributes(), attr::kInProgress)->bool_value());
}

TEST(XrayToOtlp, ExceptionsBecomeEvents) {
  std::string doc = R"({"trace_id":"1-5f84c7a1-e7d1852db8c4fd35d88bf49a","id":"0123456789abcdef","name":"s",
    "start_time":1700000000,"end_time":1700000001,"error":true,
    "cause":{"working_directory":"/w","exceptions":[{"id":"aaaaaaaaaaaaaaaa","type":"E","message":"boom",
      "remote":true,"stack":[{"label":"f","path":"a.js","line":3},{"label":"g","path":"b.js"}]}]}})";
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest req = Convert(doc, &stats);
  const pb::Span& span = req.resource_spans(0).scope_spans(0).spans(0);
  ASSERT_EQ(span.events_size(), 1);
  const auto& ev = span.events(0);
  EXPECT_EQ(ev.name(), "exception");
  EXPECT_EQ(ev.time_unix_nano(), 1700000001000000000ull);
  EXPECT_EQ(Find(ev.attributes(), attr::kExceptionId)->string_value(), "aaaaaaaaaaaaaaaa");
  EXPECT_EQ(Find(ev.attributes(), attr::kExceptionType)->string_value(), "E");
  EXPECT_EQ(Find(ev.attributes(), attr::kExceptionMessage)->string_value(), "boom");
  EXPECT_TRUE(Find(ev.attributes(), attr::kExceptionRemote)->bool_value());
  EXPECT_EQ(Find(ev.attributes(), attr::kExceptionStack)->string_value(),
            "E: boom\n\tat f(a.js: 3)\n\tat g(b.js: <unknown>)\n");
  EXPECT_EQ(span.status().code(), pb::Status::STATUS_CODE_ERROR);
}

TEST(XrayToOtlp, InProgressDocumentIsSkippedAndStreamedSubsegmentKeepsItsParent) {
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest req;
  ASSERT_TRUE(AppendSegment(R"({"trace_id":"1-5f84c7a1-e7d1852db8c4fd35d88bf49a","id":"0123456789abcdef",
      "name":"s","start_time":1700000000,"in_progress":true})", &req, &stats).ok());
  EXPECT_EQ(req.resource_spans_size(), 0);
  EXPECT_EQ(stats.in_progress, 1u);
  ASSERT_TRUE(AppendSegment(R"({"trace_id":"1-5f84c7a1-e7d1852db8c4fd35d88bf49a","id":"1111111111111111",
      "type":"subsegment","parent_id":"0123456789abcdef","name":"remote-call","namespace":"remote",
      "start_time":1700000000,"end_time":1700000000.5})", &req, &stats).ok());
  const pb::Span& span = req.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(Hex(span.parent_span_id()), "0123456789abcdef");
  EXPECT_EQ(span.kind(), pb::Span::SPAN_KIND_CLIENT);
}

TEST(XrayToOtlp, InvalidDocumentsAreRefusedAndCounted) {
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest req;
  for (const char* bad : {"", "[]", "{", R"({"trace_id":"x","id":"0123456789abcdef","name":"s"})",
                          R"({"trace_id":"1-5f84c7a1-e7d1852db8c4fd35d88bf49a","id":"short","name":"s"})",
                          R"({"trace_id":"1-5f84c7a1-e7d1852db8c4fd35d88bf49a","id":"0123456789abcdef"})"})
    EXPECT_FALSE(AppendSegment(bad, &req, &stats).ok()) << bad;
  EXPECT_EQ(stats.invalid, 6u);
  EXPECT_EQ(req.resource_spans_size(), 0);
}

// Table-driven over the real SDK documents: every (sub)segment in the document is one span, with its
// id, parent, times and name.
TEST(XrayToOtlp, RealSdkSegmentsGiveOneSpanPerSubsegment) {
  std::vector<std::string> docs = testing::AllSdkSegments();
  ASSERT_GE(docs.size(), 15u);
  for (const std::string& text : docs) {
    json doc = json::parse(text);
    ToOtlpStats stats;
    pb::ExportTraceServiceRequest req;
    ASSERT_TRUE(AppendSegment(text, &req, &stats).ok()) << text.substr(0, 200);
    if (doc.value("in_progress", false)) {
      EXPECT_EQ(req.resource_spans_size(), 0);
      continue;
    }
    size_t expected = 0;
    std::function<void(const json&, std::string)> walk = [&](const json& s, std::string parent) {
      const pb::Span& span = req.resource_spans(0).scope_spans(0).spans(static_cast<int>(expected++));
      EXPECT_EQ(Hex(span.span_id()), s["id"].get<std::string>());
      EXPECT_EQ(Hex(span.parent_span_id()), parent);
      EXPECT_EQ(span.name(), s["name"].get<std::string>());
      EXPECT_EQ(span.start_time_unix_nano(), SecondsToNanos(s["start_time"].get<double>()));
      if (s.contains("end_time")) { EXPECT_EQ(span.end_time_unix_nano(), SecondsToNanos(s["end_time"].get<double>())); }
      for (const auto& sub : s.value("subsegments", json::array())) walk(sub, s["id"].get<std::string>());
    };
    walk(doc, doc.value("parent_id", ""));
    EXPECT_EQ(stats.spans, expected);
  }
}

}  // namespace
}  // namespace xrayd::otlp
