#include "export/xray/put_trace_segments.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace xrayd::xray {
namespace {

TEST(PutTraceSegments, BodyEmbedsDocumentsAsStrings) {
  std::vector<std::string> docs = {R"({"name":"a \"quoted\" \\ name","x":"tab	nl
"})", "{}", std::string("{\"ctl\":\"\x01\x1f\"}"), "{\"u\":\"h\xc3\xa9llo\"}"};
  const std::string body = BuildPutTraceSegmentsBody(docs);
  auto parsed = nlohmann::json::parse(body);  // a real JSON parser must read it back exactly
  ASSERT_TRUE(parsed.contains("TraceSegmentDocuments"));
  ASSERT_EQ(parsed["TraceSegmentDocuments"].size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(parsed["TraceSegmentDocuments"][i].get<std::string>(), docs[i]);
  EXPECT_EQ(BuildPutTraceSegmentsBody({}), "{\"TraceSegmentDocuments\":[]}");
}

TEST(PutTraceSegments, ParsesUnprocessed) {
  auto none = ParsePutTraceSegmentsResponse(R"({"UnprocessedTraceSegments":[]})");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_TRUE(ParsePutTraceSegmentsResponse("{}")->empty());
  EXPECT_TRUE(ParsePutTraceSegmentsResponse("")->empty());
  auto some = ParsePutTraceSegmentsResponse(
      R"({"UnprocessedTraceSegments":[{"Id":"abc","ErrorCode":"InvalidSegment","Message":"bad"},{"Id":"def"}]})");
  ASSERT_TRUE(some);
  ASSERT_EQ(some->size(), 2u);
  EXPECT_EQ((*some)[0].id, "abc");
  EXPECT_EQ((*some)[0].error_code, "InvalidSegment");
  EXPECT_EQ((*some)[1].id, "def");
  EXPECT_FALSE(ParsePutTraceSegmentsResponse("not json"));
}

http::Response Resp(long status, std::string body, http::Headers headers = {}) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

TEST(PutTraceSegments, ClassifiesErrors) {
  EXPECT_EQ(ClassifyErrorResponse(Resp(429, R"({"__type":"ThrottledException","message":"slow"})")).kind,
            Error::Kind::kThrottled);
  EXPECT_EQ(ClassifyErrorResponse(Resp(400, R"({"__type":"com.amazon#ThrottlingException:http://x"})")).kind,
            Error::Kind::kThrottled);
  EXPECT_EQ(ClassifyErrorResponse(Resp(400, "", {{"x-amzn-errortype", "ThrottledException:http://internal"}})).kind,
            Error::Kind::kThrottled);
  EXPECT_EQ(ClassifyErrorResponse(Resp(500, "boom")).kind, Error::Kind::kRetryable);
  EXPECT_EQ(ClassifyErrorResponse(Resp(503, "")).kind, Error::Kind::kRetryable);
  EXPECT_EQ(ClassifyErrorResponse(Resp(400, R"({"__type":"InvalidRequestException"})")).kind, Error::Kind::kPermanent);
  EXPECT_EQ(ClassifyErrorResponse(Resp(403, R"({"__type":"ExpiredTokenException"})")).kind, Error::Kind::kRetryable);
  EXPECT_EQ(ClassifyErrorResponse(Resp(403, "")).kind, Error::Kind::kPermanent);
  auto ra = ClassifyErrorResponse(Resp(429, "", {{"retry-after", "3"}}));
  ASSERT_TRUE(ra.retry_after);
  EXPECT_EQ(ra.retry_after->count(), 3000);
  EXPECT_EQ(ErrorCode(Resp(400, R"({"code":"X"})")), "X");
}

}  // namespace
}  // namespace xrayd::xray
