#include "otlp/otlp_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "otlp/test_data.h"
#include "otlp/xray_to_otlp.h"

namespace xrayd::otlp {
namespace {

TEST(OtlpJson, EncodeThenDecodeGivesTheSameMessage) {
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest req = SegmentsToRequest(testing::AllSdkSegments(), &stats);
  ASSERT_GT(stats.spans, 30u);
  std::string text = EncodeJson(req);
  auto j = nlohmann::json::parse(text);
  const auto& span = j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  EXPECT_EQ(span["traceId"].get<std::string>().size(), 32u);  // hex, not base64
  EXPECT_TRUE(span["startTimeUnixNano"].is_string());
  EXPECT_TRUE(span["kind"].is_number());
  Result<pb::ExportTraceServiceRequest> back = DecodeJsonRequest(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->SerializeAsString(), req.SerializeAsString());
}

TEST(OtlpJson, DecodesSnakeCaseAndNumbers) {
  auto r = DecodeJsonRequest(R"({"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5f84c7a1e7d1852db8c4fd35d88bf49a",
      "span_id":"0123456789abcdef","start_time_unix_nano":1700000000000000000,"kind":2,"unknownField":{"x":1},
      "attributes":[{"key":"n","value":{"int_value":5}},{"key":"b","value":{"bytesValue":"AQI="}}]}]}]}]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const pb::Span& s = r->resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(s.start_time_unix_nano(), 1700000000000000000ull);
  EXPECT_EQ(s.kind(), pb::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(s.attributes(0).value().int_value(), 5);
  EXPECT_EQ(s.attributes(1).value().bytes_value(), std::string("\x01\x02"));
}

TEST(OtlpJson, MalformedInputIsAClearError) {
  for (const char* bad : {"", "nope", "[]", R"({"resourceSpans":{}})",
                          R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]})",
                          R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102"}]}]}]})",
                          R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":9}]}]}]})",
                          R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"12a"}]}]}]})",
                          R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-5.5}]}]}]})",
                          R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":1}]}]}]}]})"}) {
    auto r = DecodeJsonRequest(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) { EXPECT_FALSE(r.error().message.empty()); }
  }
  std::string deep = R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":)";
  for (int i = 0; i < 100; ++i) deep += R"({"arrayValue":{"values":[)";
  deep += R"({"stringValue":"x"})";
  for (int i = 0; i < 100; ++i) deep += "]}}";
  deep += "}]}]}]}]}";
  auto r = DecodeJsonRequest(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too deep"), std::string::npos);
}

// Text nested past 256 levels is refused before nlohmann builds it: 8 MB of '[' took 590 MB as a DOM.
TEST(OtlpJson, DeeplyNestedTextIsRefusedBeforeParsing) {
  auto r = DecodeJsonRequest(std::string(8 << 20, '['));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nested too deep"), std::string::npos) << r.error().message;
  // Brackets inside strings do not count, escaped quotes included.
  const std::string in_string = R"({"resourceSpans":[],"x":")" + std::string(1000, '[') + R"(\"[[[[[["})";
  EXPECT_TRUE(DecodeJsonRequest(in_string).ok());
  EXPECT_FALSE(DecodeJsonResponse(std::string(300, '[') + std::string(300, ']')).ok());
}

TEST(OtlpJson, ResponsePartialSuccess) {
  pb::ExportTraceServiceResponse resp;
  resp.mutable_partial_success()->set_rejected_spans(3);
  resp.mutable_partial_success()->set_error_message("bad ids");
  auto back = DecodeJsonResponse(EncodeJson(resp));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->partial_success().rejected_spans(), 3);
  EXPECT_EQ(back->partial_success().error_message(), "bad ids");
  EXPECT_TRUE(DecodeJsonResponse("").ok());
  EXPECT_TRUE(DecodeJsonResponse("{}").ok());
  EXPECT_FALSE(DecodeJsonResponse("{x").ok());
}

}  // namespace
}  // namespace xrayd::otlp
