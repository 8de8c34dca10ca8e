#include "ingest/datagram.h"

#include <gtest/gtest.h>

#include <string>

namespace xrayd {
namespace {

constexpr char kSegment[] =
    R"({"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"defdfd9912dc5a56","name":"web","start_time":1461096053.37518,"end_time":1461096053.4042})";

// Parses text with the padding the receiver guarantees.
DatagramVerdict ParseText(DatagramParser& p, const std::string& text) {
  static std::string storage;
  storage = text;
  storage.append(kPadding, '\0');
  return p.Parse(storage.data(), text.size());
}

TEST(DatagramParser, AcceptsHeaderWithOrWithoutSpaces) {
  DatagramParser p;
  for (const char* header : {R"({"format": "json", "version": 1})", R"({"format":"json","version":1})",
                             R"({ "version" : 1 , "format" : "json" })"}) {
    auto v = ParseText(p, std::string(header) + "\n" + kSegment);
    EXPECT_FALSE(v.reject) << header << ": " << v.detail;
    EXPECT_EQ(v.segment, kSegment);
  }
}

TEST(DatagramParser, TrailingNewlineIsTrimmed) {
  DatagramParser p;
  auto v = ParseText(p, std::string("{\"format\":\"json\",\"version\":1}\n") + kSegment + "\n");
  ASSERT_FALSE(v.reject);
  EXPECT_EQ(v.segment, kSegment);
}

TEST(DatagramParser, RejectsBadHeaders) {
  DatagramParser p;
  for (const char* bad : {"no newline at all", "{\"format\":\"xml\",\"version\":1}\n{}",
                          "{\"format\":\"json\",\"version\":2}\n{}", "{\"format\":\"json\"}\n{}",
                          "not json\n{}", "[1]\n{}", "\n{}"}) {
    auto v = ParseText(p, std::string(bad));
    ASSERT_TRUE(v.reject) << bad;
    EXPECT_EQ(*v.reject, RejectReason::kBadHeader) << bad;
  }
}

TEST(DatagramParser, RejectsBadJson) {
  DatagramParser p;
  for (const char* bad : {"{\"trace_id\": ", "{\"a\":1}}", "", "   "}) {
    auto v = ParseText(p, std::string("{\"format\":\"json\",\"version\":1}\n") + bad);
    ASSERT_TRUE(v.reject) << bad;
    EXPECT_EQ(*v.reject, RejectReason::kBadJson) << bad;
  }
}

// The document rules are segment/segment.h's (tested in segment_test.cc); the datagram path
// applies them and reports their reasons.
TEST(DatagramParser, AppliesTheSegmentRules) {
  DatagramParser p;
  const std::string h = "{\"format\":\"json\",\"version\":1}\n";
  const std::string tid = R"("trace_id":"1-5759e988-bd862e3fe1be46a994272793")";
  const std::string id = R"("id":"defdfd9912dc5a56")";
  struct Case {
    std::string doc;
    RejectReason want;
  } cases[] = {
      {"[1,2]", RejectReason::kInvalidSegment},
      {"{" + tid + R"(,"name":"web","start_time":1461096053})", RejectReason::kInvalidSegment},
      {"{" + tid + "," + id + R"(,"name":"web","start_time":1461096053375})", RejectReason::kInvalidTime},
      {"{" + tid + "," + id + R"(,"name":"web","start_time":1461096053,"end_time":1461096052})",
       RejectReason::kInvalidTime},
  };
  for (const auto& c : cases) {
    auto v = ParseText(p, h + c.doc);
    ASSERT_TRUE(v.reject) << c.doc;
    EXPECT_EQ(*v.reject, c.want) << c.doc;
  }
  auto v = ParseText(p, h + kSegment);
  EXPECT_FALSE(v.reject) << v.detail;
}

// PutTraceSegments validates documents without a header line through ValidateSegment.
TEST(DatagramParser, ValidateSegmentAloneUsesTheSameRules) {
  DatagramParser p;
  std::string doc = kSegment;
  const size_t len = doc.size();
  doc.append(kPadding, '\0');
  auto v = p.ValidateSegment(doc.data(), len);
  EXPECT_FALSE(v.reject) << v.detail;
  EXPECT_EQ(v.segment, kSegment);
  std::string ms = R"({"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"defdfd9912dc5a56","name":"web","start_time":1461096053375})";
  const size_t ms_len = ms.size();
  ms.append(kPadding, '\0');
  v = p.ValidateSegment(ms.data(), ms_len);
  ASSERT_TRUE(v.reject);
  EXPECT_EQ(*v.reject, RejectReason::kInvalidTime);
}

TEST(DatagramParser, RejectsOversizedSegment) {
  DatagramParser p;
  std::string doc = R"({"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"defdfd9912dc5a56","name":"web","start_time":1,"metadata":{"x":")";
  doc += std::string(kMaxSegmentBytes, 'x') + "\"}}";
  auto v = ParseText(p, "{\"format\":\"json\",\"version\":1}\n" + doc);
  ASSERT_TRUE(v.reject);
  EXPECT_EQ(*v.reject, RejectReason::kTooLarge);
}

}  // namespace
}  // namespace xrayd
