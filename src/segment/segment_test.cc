#include "segment/segment.h"
#include "segment/graph.h"

#include <gtest/gtest.h>

#include <string>

namespace xrayd::segment {
namespace {

const std::string kTid = R"("trace_id":"1-5759e988-bd862e3fe1be46a994272793")";
const std::string kId = R"("id":"defdfd9912dc5a56")";
const std::string kName = R"("name":"web")";
const std::string kStart = R"("start_time":1461096053.37518)";

// {trace_id, id, name, <extra>}
std::string Doc(const std::string& extra) { return "{" + kTid + "," + kId + "," + kName + "," + extra + "}"; }

// Validates with the padding the receiver guarantees, and checks the unpadded overload agrees.
Verdict Check(const std::string& text) {
  Parser p;
  std::string padded = text;
  padded.append(kPadding, '\0');
  Verdict v = p.Validate(padded.data(), text.size());
  Facts facts;
  Verdict unpadded = p.Parse(std::string_view(text), &facts);
  EXPECT_EQ(v.reject, unpadded.reject) << text;
  return v;
}

void ExpectReject(const std::string& text, RejectReason want, const char* why) {
  Verdict v = Check(text);
  ASSERT_TRUE(v.reject) << why << ": " << text;
  EXPECT_EQ(*v.reject, want) << why << ": " << v.detail;
  EXPECT_FALSE(v.detail.empty()) << why;
}

TEST(SegmentRules, AcceptsWhatXrayAccepts) {
  std::string unicode_name;
  for (int i = 0; i < 200; ++i) unicode_name += "\xc3\xa9";
  for (const std::string& ok : {
           Doc(kStart + R"(,"end_time":1461096053.4042)"),
           "{" + kTid + "," + kId + R"(,"name":")" + unicode_name + "\"," + kStart + "}",  // 200 characters
           Doc(R"("start_time":1461096053,"in_progress":true)"),                         // integer start
           Doc(kStart + R"(,"type":"subsegment","parent_id":"53995c3f42cd8ad8","end_time":1461096054)"),
           Doc(kStart + R"(,"end_time":null,"in_progress":true)"),  // null end: absent
           Doc(kStart + R"(,"end_time":1461096053.37518)"),         // zero duration
           Doc(R"("start_time":946684800)"),                        // 2000-01-01, the lower bound
           Doc(R"("start_time":253402300799)"),                     // 9999-12-31T23:59:59, the upper bound
       }) {
    Verdict v = Check(ok);
    EXPECT_FALSE(v.reject) << ok << ": " << v.detail;
  }
}

TEST(SegmentRules, RejectsIdentityXrayWouldRefuse) {
  const std::string st = kStart;
  struct Case {
    std::string doc;
    const char* why;
  } cases[] = {
      {"[1,2]", "not an object"},
      {"{" + kId + "," + kName + "," + st + "}", "no trace_id"},
      {R"({"trace_id":"1-5759e98-bd862e3fe1be46a994272793",)" + kId + "," + kName + "," + st + "}", "short epoch"},
      {R"({"trace_id":"2-5759e988-bd862e3fe1be46a994272793",)" + kId + "," + kName + "," + st + "}", "version 2"},
      {R"({"trace_id":"1-5759e988-bd862e3fe1be46a99427279z",)" + kId + "," + kName + "," + st + "}", "non-hex"},
      {"{" + kTid + "," + kName + "," + st + "}", "no id"},
      {"{" + kTid + R"(,"id":"defdfd9912dc5a5",)" + kName + "," + st + "}", "15-digit id"},
      {"{" + kTid + R"(,"id":12,)" + kName + "," + st + "}", "numeric id"},
      {"{" + kTid + "," + kId + "," + st + "}", "no name"},
      {"{" + kTid + "," + kId + R"(,"name":"",)" + st + "}", "empty name"},
      {"{" + kTid + "," + kId + R"(,"name":")" + std::string(201, 'a') + "\"," + st + "}", "201-char name"},
      {"{" + kTid + "," + kId + "," + kName + "}", "no start_time"},
      {Doc(R"("start_time":"1461096053")"), "string start_time"},
      {Doc(st + R"(,"type":"subsegment")"), "subsegment without parent"},
      {Doc(st + R"(,"type":"subsegment","parent_id":"xyz")"), "subsegment with a bad parent"},
  };
  for (const auto& c : cases) ExpectReject(c.doc, RejectReason::kInvalidSegment, c.why);
}

TEST(SegmentRules, RejectsTimesThatCannotBeRight) {
  struct Case {
    std::string extra;
    const char* why;
  } cases[] = {
      {R"("start_time":1461096053375)", "milliseconds (year 48000)"},
      {R"("start_time":1461096053375180)", "microseconds"},
      {R"("start_time":946684799.9)", "before 2000"},
      {R"("start_time":0)", "zero"},
      {R"("start_time":-1461096053)", "negative"},
      {R"("start_time":253402300800)", "year 10000"},
      {R"("start_time":1e300)", "huge double"},
      {R"("start_time":18446744073709551615)", "largest uint64"},
      {kStart + R"(,"end_time":1461096053375)", "end_time in milliseconds"},
      {kStart + R"(,"end_time":1461096053.3)", "end before start"},
      {kStart + R"(,"end_time":"soon")", "string end_time"},
      {kStart + R"(,"end_time":true)", "boolean end_time"},
      {kStart + R"(,"end_time":1)", "end_time 1"},
  };
  for (const auto& c : cases) ExpectReject(Doc(c.extra), RejectReason::kInvalidTime, c.why);
  // Nested subsegments: times may be absent, but given ones obey the bounds, at any depth.
  const std::string nested_ok = kStart + R"(,"subsegments":[{"id":"bbbbbbbbbbbbbbb1","name":"a","start_time":1461096053.4,)"
                                         R"("in_progress":true,"subsegments":[{"id":"bbbbbbbbbbbbbbb2","name":"b"}]}])";
  EXPECT_TRUE(Check(Doc(nested_ok)).ok());
  ExpectReject(Doc(kStart + R"(,"subsegments":[{"id":"bbbbbbbbbbbbbbb1","name":"a","start_time":1461096053400}])"),
               RejectReason::kInvalidTime, "nested start in milliseconds");
  ExpectReject(Doc(kStart + R"(,"subsegments":[{"id":"b1","name":"a","subsegments":[{"id":"b2","name":"b",)"
                            R"("start_time":1461096053.4,"end_time":"x"}]}])"),
               RejectReason::kInvalidTime, "deeper nested end_time not a number");
  // JSON has no NaN or Infinity, and numbers past a double's range are refused by the JSON parser:
  // such documents never reach the time rules.
  for (const char* not_json : {R"("start_time":NaN)", R"("start_time":Infinity)", R"("start_time":1e400)"})
    ExpectReject(Doc(not_json), RejectReason::kBadJson, not_json);
}

TEST(SegmentRules, RejectsMalformedDocuments) {
  ExpectReject("", RejectReason::kBadJson, "empty");
  ExpectReject(" \n\t", RejectReason::kBadJson, "whitespace");
  ExpectReject("{\"trace_id\": ", RejectReason::kBadJson, "truncated");
  ExpectReject("{\"a\":1}}", RejectReason::kBadJson, "trailing brace");
  ExpectReject(Doc(kStart + R"(,"metadata":{"x":")" + std::string(kMaxDocumentBytes, 'x') + "\"}"),
               RejectReason::kTooLarge, "over 64 KB");
}

// Duplicate members: the first one is the one the rules read (at every level), as a lookup by key
// finds it; a later copy neither rescues nor spoils a document.
TEST(SegmentRules, TheFirstOfDuplicateMembersCounts) {
  EXPECT_TRUE(Check(Doc(kStart + R"(,"start_time":"late")")).ok());
  ExpectReject(Doc(R"("start_time":"early",)" + kStart), RejectReason::kInvalidSegment, "first start_time a string");
  ExpectReject("{" + kTid + R"(,"id":"nothex",)" + kId + "," + kName + "," + kStart + "}",
               RejectReason::kInvalidSegment, "first id malformed");
  EXPECT_TRUE(Check("{" + kTid + "," + kId + "," + kName + R"(,"name":"",)" + kStart + "}").ok());
  ExpectReject(Doc(kStart + R"(,"end_time":1.0,"end_time":1461096053.5)"), RejectReason::kInvalidTime,
               "first end_time out of range");
  ExpectReject(Doc(kStart + R"(,"type":"subsegment","type":"segment")"), RejectReason::kInvalidSegment,
               "first type says subsegment, no parent_id");
  const std::string nested_bad = R"({"id":"53995c3f42cd8ad8","name":"db","start_time":1,"start_time":1461096053.4})";
  const std::string nested_ok = R"({"id":"53995c3f42cd8ad8","name":"db","start_time":1461096053.4,"start_time":1})";
  ExpectReject(Doc(kStart + R"(,"subsegments":[)" + nested_bad + "]"), RejectReason::kInvalidTime,
               "nested first start_time out of range");
  EXPECT_TRUE(Check(Doc(kStart + R"(,"subsegments":[)" + nested_ok + "]")).ok());
  EXPECT_TRUE(Check(Doc(kStart + R"(,"subsegments":[)" + nested_ok + R"(],"subsegments":[)" + nested_bad + "]")).ok());
}

TEST(SegmentRules, TrimsTrailingWhitespace) {
  const std::string doc = Doc(kStart);
  std::string padded = doc + "\r\n \t";
  const size_t len = padded.size();
  padded.append(kPadding, '\0');
  Parser p;
  Verdict v = p.Validate(padded.data(), len);
  ASSERT_TRUE(v.ok()) << v.detail;
  EXPECT_EQ(v.document, doc);
  Facts f;
  const std::string with_newline = doc + "\n";
  v = p.Parse(std::string_view(with_newline), &f);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.document, doc);
}

TEST(SegmentFacts, ExtractsEverythingInOneParse) {
  const std::string doc = R"({"trace_id":"1-5759e988-bd862e3fe1be46a994272793","id":"aaaaaaaaaaaaaaa1",
    "name":"shop","origin":"AWS::EC2::Instance","user":"alice","start_time":1461096053.5,"end_time":1461096054,
    "fault":true,"http":{"request":{"method":"POST","url":"http://x/cart","user_agent":"curl","client_ip":"10.0.0.1"},
                         "response":{"status":502}},
    "annotations":{"tier":"gold","n":3,"ok":false,"skip":{"a":1}},
    "subsegments":[
      {"id":"bbbbbbbbbbbbbbb1","name":"DynamoDB","namespace":"aws","start_time":1461096053.6,"end_time":1461096053.7,
       "throttle":true,"error":true},
      {"id":"bbbbbbbbbbbbbbb2","name":"payments","namespace":"remote","start_time":1461096053.7,"in_progress":true,
       "subsegments":[{"id":"ccccccccccccccc1","name":"inner","annotations":{"deep":1.5},"start_time":1461096053.8,
                       "end_time":1461096053.9}]},
      {"id":"bbbbbbbbbbbbbbb3","name":"local","start_time":1461096053.7,"end_time":1461096053.8}]})";
  Parser p;
  Facts f;
  Verdict v = p.Parse(std::string_view(doc), &f);
  ASSERT_TRUE(v.ok()) << v.detail;
  EXPECT_EQ(f.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_EQ(f.id, "aaaaaaaaaaaaaaa1");
  EXPECT_EQ(f.parent_id, "");
  EXPECT_EQ(f.name, "shop");
  EXPECT_EQ(f.origin, "AWS::EC2::Instance");
  EXPECT_EQ(f.user, "alice");
  EXPECT_FALSE(f.independent_subsegment);
  EXPECT_FALSE(f.in_progress);
  EXPECT_DOUBLE_EQ(f.start_time, 1461096053.5);
  ASSERT_TRUE(f.end_time);
  EXPECT_DOUBLE_EQ(*f.end_time, 1461096054);
  EXPECT_TRUE(f.fault && f.error && f.throttle);  // error and throttle only in a subsegment
  EXPECT_TRUE(f.own_fault);
  EXPECT_FALSE(f.own_error || f.own_throttle);
  EXPECT_EQ(f.http_method, "POST");
  EXPECT_EQ(f.http_url, "http://x/cart");
  EXPECT_EQ(f.user_agent, "curl");
  EXPECT_EQ(f.client_ip, "10.0.0.1");
  EXPECT_EQ(f.http_status, 502);
  ASSERT_EQ(f.annotations.size(), 4u);  // objects are not annotation values
  EXPECT_EQ(f.annotations[0].key, "tier");
  EXPECT_EQ(f.annotations[0].value_json, "\"gold\"");
  EXPECT_EQ(f.annotations[1].value_json, "3");
  EXPECT_EQ(f.annotations[2].value_json, "false");
  EXPECT_EQ(f.annotations[3].key, "deep");
  EXPECT_EQ(f.annotations[3].value_json, "1.5");
  // Complete nested subsegments; bbbbbbbbbbbbbbb2 is still in progress.
  EXPECT_EQ(f.embedded_complete_ids,
            (std::vector<std::string>{"bbbbbbbbbbbbbbb1", "ccccccccccccccc1", "bbbbbbbbbbbbbbb3"}));
  ASSERT_EQ(f.called_services.size(), 2u);
  EXPECT_EQ(f.called_services[0].name, "DynamoDB");
  EXPECT_EQ(f.called_services[0].type, "AWS::DynamoDB");
  EXPECT_TRUE(f.called_services[0].throttle && f.called_services[0].error);
  EXPECT_FALSE(f.called_services[0].fault);
  EXPECT_EQ(f.called_services[1].name, "payments");
  EXPECT_EQ(f.called_services[1].type, "remote");
}

TEST(SegmentFacts, IndependentSubsegment) {
  Parser p;
  Facts f;
  ASSERT_TRUE(p.Parse(std::string_view(Doc(kStart + R"(,"type":"subsegment","parent_id":"53995c3f42cd8ad8","in_progress":true)")), &f).ok());
  EXPECT_TRUE(f.independent_subsegment);
  EXPECT_TRUE(f.in_progress);
  EXPECT_EQ(f.parent_id, "53995c3f42cd8ad8");
  EXPECT_FALSE(f.end_time);
}

TEST(SegmentFacts, ParserIsReusableAndFactsAreReset) {
  Parser p;
  Facts f;
  ASSERT_TRUE(p.Parse(std::string_view(Doc(kStart + R"(,"annotations":{"a":1},"fault":true)")), &f).ok());
  ASSERT_TRUE(p.Parse(std::string_view(Doc(kStart)), &f).ok());
  EXPECT_TRUE(f.annotations.empty());
  EXPECT_FALSE(f.fault);
}

TEST(SegmentRules, InferredServiceNaming) {
  EXPECT_TRUE(IsCallNamespace("remote"));
  EXPECT_TRUE(IsCallNamespace("aws"));
  EXPECT_FALSE(IsCallNamespace("local"));
  EXPECT_FALSE(IsCallNamespace(""));
  EXPECT_EQ(InferredServiceType("aws", "DynamoDB"), "AWS::DynamoDB");
  EXPECT_EQ(InferredServiceType("remote", "payments"), "remote");
}

TEST(SegmentRules, TraceIdsAndTimes) {
  EXPECT_TRUE(IsValidTraceId("1-65e1d287-5fc6f0f34b4fb2120da8bbec"));
  EXPECT_TRUE(IsValidTraceId("1-65E1D287-5FC6F0F34B4FB2120DA8BBEC"));
  EXPECT_FALSE(IsValidTraceId("1-65e1d287-5fc6f0f34b4fb2120da8bbe"));
  EXPECT_FALSE(IsValidTraceId("1_65e1d287-5fc6f0f34b4fb2120da8bbec"));
  EXPECT_FALSE(IsValidTraceId(""));
  EXPECT_TRUE(IsHexId("53995c3f42cd8ad8", 16));
  EXPECT_FALSE(IsHexId("53995c3f42cd8ad", 16));
  EXPECT_EQ(TraceIdEpoch("1-65e1d287-5fc6f0f34b4fb2120da8bbec"), 0x65e1d287);
  EXPECT_EQ(TraceIdEpoch("1-65E1D287-5fc6f0f34b4fb2120da8bbec"), 0x65e1d287);
  EXPECT_EQ(TraceIdEpoch("1-zz"), 0);
  EXPECT_TRUE(IsPlausibleTime(1.7e9));
  EXPECT_FALSE(IsPlausibleTime(1.7e12));
  EXPECT_FALSE(IsPlausibleTime(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_FALSE(IsPlausibleTime(std::numeric_limits<double>::infinity()));
}

}  // namespace
}  // namespace xrayd::segment

// The service graph's rules (segment/graph.h) over facts.
namespace xrayd::segment {
namespace {

constexpr double kG0 = 1700000000;

std::vector<Call> CallsOf(const std::vector<std::string>& docs, std::vector<Facts>& facts) {
  Parser parser;
  facts.resize(docs.size());
  std::vector<const Facts*> ptrs;
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_TRUE(parser.FactsOf(docs[i], &facts[i]).ok()) << docs[i];
    ptrs.push_back(&facts[i]);
  }
  return TraceCalls(ptrs);
}

int Count(const std::vector<Call>& calls, Call::Kind kind, const std::string& to, const std::string& from = "") {
  int n = 0;
  for (const auto& c : calls) n += c.kind == kind && c.to.name == to && c.from.name == from;
  return n;
}

TEST(TraceCalls, SegmentsEdgesInferredAndStreamedCalls) {
  const std::string tid = "1-6553f100-000000000000000000000001";
  const std::string web = R"({"trace_id":")" + tid + R"(","id":"00000000000000a1","name":"web","start_time":1700000000,
    "end_time":1700000001,"subsegments":[{"id":"00000000000000c1","name":"api","namespace":"remote",
    "start_time":1700000000.1,"end_time":1700000000.5,"subsegments":[{"id":"00000000000000c2","name":"S3",
    "namespace":"aws","start_time":1700000000.2,"end_time":1700000000.3,"throttle":true}]}]})";
  const std::string api = R"({"trace_id":")" + tid + R"(","id":"00000000000000b1","parent_id":"00000000000000c1",
    "name":"api","start_time":1700000000.15,"end_time":1700000000.45,"fault":true})";
  const std::string streamed = R"({"trace_id":")" + tid + R"(","id":"00000000000000d1","type":"subsegment",
    "parent_id":"00000000000000b1","name":"ledger","namespace":"remote","start_time":1700000000.2,
    "end_time":1700000000.25})";
  std::vector<Facts> facts;
  const auto calls = CallsOf({web, api, streamed}, facts);
  EXPECT_EQ(Count(calls, Call::Kind::kNode, "web"), 1);
  EXPECT_EQ(Count(calls, Call::Kind::kEntry, "web"), 1);
  EXPECT_EQ(Count(calls, Call::Kind::kEdge, "api", "web"), 1);  // through parent_id, not inferred
  EXPECT_EQ(Count(calls, Call::Kind::kNode, "api"), 1);
  EXPECT_EQ(Count(calls, Call::Kind::kEdge, "S3", "web"), 1);  // nested below the api call
  EXPECT_EQ(Count(calls, Call::Kind::kEdge, "ledger", "api"), 1);  // a streamed subsegment's own call
  for (const auto& c : calls) {
    if (c.kind == Call::Kind::kNode && c.to.name == "S3") {
      EXPECT_EQ(c.to.type, "AWS::S3");
      EXPECT_TRUE(c.throttle);
    }
    if (c.kind == Call::Kind::kNode && c.to.name == "api") EXPECT_TRUE(c.fault);
    if (c.kind == Call::Kind::kNode && c.to.name == "web") EXPECT_TRUE(c.root);
  }
}

TEST(GraphStats, RollupAddsSubtractsAndEncodes) {
  Call c;
  c.to = {"web", ""};
  c.start = kG0 + 59.9;
  c.end = kG0 + 60.15;
  c.fault = true;
  Rollup r;
  AddToRollup({c}, +1, &r);
  AddToRollup({c}, +1, &r);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r.begin()->first.minute, MinuteOf(kG0 + 59.9));
  EXPECT_EQ(MinuteOf(kG0 + 59.9) % 60, 0);
  const Stats& s = r.begin()->second;
  EXPECT_EQ(s.total, 2);
  EXPECT_EQ(s.fault, 2);
  EXPECT_EQ(s.histogram, (std::map<int64_t, int64_t>{{250, 2}}));
  std::map<int64_t, int64_t> back;
  ASSERT_TRUE(Stats::DecodeHistogram(s.EncodeHistogram(), &back));
  EXPECT_EQ(back, s.histogram);
  EXPECT_FALSE(Stats::DecodeHistogram("\xff", &back));  // truncated varint
  AddToRollup({c}, -1, &r);
  EXPECT_EQ(r.begin()->second.total, 1);
  AddToRollup({c}, -1, &r);
  EXPECT_EQ(r.begin()->second.total, 0);
  EXPECT_TRUE(r.begin()->second.histogram.empty());
}

}  // namespace
}  // namespace xrayd::segment
