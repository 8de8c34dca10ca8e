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

TEST(DatagramParser, RejectsSegmentsXrayWouldRefuse) {
  DatagramParser p;
  const std::string h = "{\"format\":\"json\",\"version\":1}\n";
  const std::string tid = R"("trace_id":"1-5759e988-bd862e3fe1be46a994272793")";
  const std::string id = R"("id":"defdfd9912dc5a56")";
  const std::string name = R"("name":"web")";
  const std::string st = R"("start_time":1.5)";
  struct Case {
    std::string doc;
    const char* why;
  } cases[] = {
      {"[1,2]", "not an object"},
      {"{" + id + "," + name + "," + st + "}", "no trace_id"},
      {R"({"trace_id":"1-5759e98-bd862e3fe1be46a994272793",)" + id + "," + name + "," + st + "}", "short epoch"},
      {R"({"trace_id":"2-5759e988-bd862e3fe1be46a994272793",)" + id + "," + name + "," + st + "}", "version 2"},
      {R"({"trace_id":"1-5759e988-bd862e3fe1be46a99427279z",)" + id + "," + name + "," + st + "}", "non-hex"},
      {"{" + tid + "," + name + "," + st + "}", "no id"},
      {"{" + tid + R"(,"id":"defdfd9912dc5a5",)" + name + "," + st + "}", "15-digit id"},
      {"{" + tid + R"(,"id":12,)" + name + "," + st + "}", "numeric id"},
      {"{" + tid + "," + id + "," + st + "}", "no name"},
      {"{" + tid + "," + id + R"(,"name":"",)" + st + "}", "empty name"},
      {"{" + tid + "," + id + R"(,"name":")" + std::string(201, 'a') + "\"," + st + "}", "201-char name"},
      {"{" + tid + "," + id + "," + name + "}", "no start_time"},
      {"{" + tid + "," + id + "," + name + R"(,"start_time":"1.5"})", "string start_time"},
      {"{" + tid + "," + id + "," + name + "," + st + R"(,"type":"subsegment"})", "subsegment without parent"},
  };
  for (const auto& c : cases) {
    auto v = ParseText(p, h + c.doc);
    ASSERT_TRUE(v.reject) << c.why;
    EXPECT_EQ(*v.reject, RejectReason::kInvalidSegment) << c.why;
  }
  // Still accepted: 200-char unicode name, integer start_time, in-progress, subsegment with parent.
  std::string unicode_name;
  for (int i = 0; i < 200; ++i) unicode_name += "\xc3\xa9";
  for (const std::string& ok :
       {"{" + tid + "," + id + R"(,"name":")" + unicode_name + "\"," + st + "}",
        "{" + tid + "," + id + "," + name + R"(,"start_time":1461096053,"in_progress":true})",
        "{" + tid + "," + id + "," + name + "," + st +
            R"(,"type":"subsegment","parent_id":"53995c3f42cd8ad8","end_time":2})"}) {
    auto v = ParseText(p, h + ok);
    EXPECT_FALSE(v.reject) << ok << ": " << v.detail;
  }
}

TEST(DatagramParser, RejectsOversizedSegment) {
  DatagramParser p;
  std::string doc = R"({"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"defdfd9912dc5a56","name":"web","start_time":1,"metadata":{"x":")";
  doc += std::string(kMaxSegmentBytes, 'x') + "\"}}";
  auto v = ParseText(p, "{\"format\":\"json\",\"version\":1}\n" + doc);
  ASSERT_TRUE(v.reject);
  EXPECT_EQ(*v.reject, RejectReason::kTooLarge);
}

TEST(TraceIds, Shapes) {
  EXPECT_TRUE(IsValidTraceId("1-65e1d287-5fc6f0f34b4fb2120da8bbec"));
  EXPECT_TRUE(IsValidTraceId("1-65E1D287-5FC6F0F34B4FB2120DA8BBEC"));
  EXPECT_FALSE(IsValidTraceId("1-65e1d287-5fc6f0f34b4fb2120da8bbe"));
  EXPECT_FALSE(IsValidTraceId("1_65e1d287-5fc6f0f34b4fb2120da8bbec"));
  EXPECT_FALSE(IsValidTraceId(""));
  EXPECT_TRUE(IsHexId("53995c3f42cd8ad8", 16));
  EXPECT_FALSE(IsHexId("53995c3f42cd8ad", 16));
}

}  // namespace
}  // namespace xrayd
