#include "xray/segment.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "xray/ids.h"
#include "xray/log.h"

namespace xray {
namespace {

constexpr const char* kTrace = "1-5759e988-bd862e3fe1be46a994272793";

TEST(Segment, MinimalDocument) {
  auto seg = Segment::Create("hello", kTrace);
  seg->Close();
  Json j = Json::parse(seg->Serialize());
  EXPECT_EQ(j["name"], "hello");
  EXPECT_EQ(j["trace_id"], kTrace);
  EXPECT_TRUE(IsValidSegmentId(j["id"].get<std::string>()));
  EXPECT_TRUE(j["start_time"].is_number_float());
  EXPECT_GE(j["end_time"].get<double>(), j["start_time"].get<double>());
  for (const char* absent : {"in_progress", "parent_id", "http", "annotations", "metadata", "error", "fault",
                             "throttle", "cause", "subsegments", "type", "origin", "user", "service"})
    EXPECT_FALSE(j.contains(absent)) << absent;
  // The SDK names itself, as every AWS X-Ray SDK does.
  EXPECT_EQ(j["aws"], (Json{{"xray", {{"sdk", "X-Ray for C++"}, {"sdk_version", std::string(kSdkVersion)}}}}));
}

TEST(Segment, SdkNameKeptBesideApplicationAwsData) {
  auto seg = Segment::Create("svc", kTrace);
  seg->SetAws(Json{{"ecs", {{"container", "c1"}}}});
  Json j = seg->ToJson();
  EXPECT_EQ(j["aws"]["ecs"]["container"], "c1");
  EXPECT_EQ(j["aws"]["xray"]["sdk"], "X-Ray for C++");
  // An application's own aws.xray fields win; the missing one is still filled in.
  seg->SetAws(Json{{"xray", {{"sdk", "custom"}, {"auto_instrumentation", false}}}});
  j = seg->ToJson();
  EXPECT_EQ(j["aws"]["xray"]["sdk"], "custom");
  EXPECT_EQ(j["aws"]["xray"]["auto_instrumentation"], false);
  EXPECT_EQ(j["aws"]["xray"]["sdk_version"], std::string(kSdkVersion));
  // Subsegments do not repeat it (the other SDKs put it on the segment only).
  Subsegment* sub = seg->AddSubsegment("work");
  sub->Close();
  EXPECT_FALSE(sub->ToStandaloneJson().contains("aws"));
  EXPECT_FALSE(seg->ToJson()["subsegments"][0].contains("aws"));
}

TEST(Segment, InProgressHasNoEndTime) {
  auto seg = Segment::Create("svc");
  Json j = seg->ToJson();
  EXPECT_EQ(j["in_progress"], true);
  EXPECT_FALSE(j.contains("end_time"));
  EXPECT_TRUE(IsValidTraceId(j["trace_id"].get<std::string>()));  // a new trace when none given
}

TEST(Segment, FullShape) {
  auto seg = Segment::Create("svc", kTrace, "53995c3f42cd8ad8");
  seg->SetOrigin("AWS::EC2::Instance");
  seg->SetUser("alice");
  seg->SetServiceVersion("1.2.3");
  seg->SetHttpRequest({"GET", "http://example.com/x?y=1", "curl/8", "10.0.0.1", true, false});
  seg->SetHttpResponse(200, 42);
  seg->SetAws(Json{{"ec2", {{"instance_id", "i-123"}}}});
  EXPECT_TRUE(seg->PutAnnotation("user_id", "u1"));
  EXPECT_TRUE(seg->PutAnnotation("count", 3));
  EXPECT_TRUE(seg->PutAnnotation("ratio", 0.5));
  EXPECT_TRUE(seg->PutAnnotation("ok", true));
  EXPECT_TRUE(seg->PutMetadata("payload", Json{{"a", 1}}));
  EXPECT_TRUE(seg->PutMetadata("k", "v", "app"));
  seg->Close(seg->start_time() + 0.25);

  Json j = seg->ToJson();
  EXPECT_EQ(j["parent_id"], "53995c3f42cd8ad8");
  EXPECT_EQ(j["origin"], "AWS::EC2::Instance");
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["service"]["version"], "1.2.3");
  EXPECT_EQ(j["http"]["request"]["method"], "GET");
  EXPECT_EQ(j["http"]["request"]["url"], "http://example.com/x?y=1");
  EXPECT_EQ(j["http"]["request"]["user_agent"], "curl/8");
  EXPECT_EQ(j["http"]["request"]["client_ip"], "10.0.0.1");
  EXPECT_EQ(j["http"]["request"]["x_forwarded_for"], true);
  EXPECT_FALSE(j["http"]["request"].contains("traced"));
  EXPECT_EQ(j["http"]["response"]["status"], 200);
  EXPECT_EQ(j["http"]["response"]["content_length"], 42);
  EXPECT_EQ(j["aws"]["ec2"]["instance_id"], "i-123");
  EXPECT_EQ(j["annotations"]["user_id"], "u1");
  EXPECT_EQ(j["annotations"]["count"], 3);
  EXPECT_EQ(j["annotations"]["ratio"], 0.5);
  EXPECT_EQ(j["annotations"]["ok"], true);
  EXPECT_EQ(j["metadata"]["default"]["payload"]["a"], 1);
  EXPECT_EQ(j["metadata"]["app"]["k"], "v");
  EXPECT_NEAR(j["end_time"].get<double>() - j["start_time"].get<double>(), 0.25, 1e-5);
  EXPECT_FALSE(j.contains("error"));
  EXPECT_FALSE(j.contains("fault"));
}

TEST(Segment, AnnotationKeysAreChecked) {
  std::vector<std::string> logged;
  Logger previous = SetLogger([&](LogLevel, std::string_view m) { logged.emplace_back(m); });
  auto seg = Segment::Create("svc");
  EXPECT_FALSE(seg->PutAnnotation("bad-key", "x"));
  EXPECT_FALSE(seg->PutAnnotation("", "x"));
  EXPECT_FALSE(seg->PutAnnotation("with space", 1));
  EXPECT_FALSE(seg->PutAnnotation("dot.ted", true));
  EXPECT_FALSE(seg->PutAnnotation("nan", std::numeric_limits<double>::quiet_NaN()));
  EXPECT_TRUE(seg->PutAnnotation("Good_Key_1", "x"));
  SetLogger(previous);
  EXPECT_EQ(logged.size(), 5u);
  Json j = seg->ToJson();
  EXPECT_EQ(j["annotations"].size(), 1u);
  EXPECT_FALSE(seg->PutMetadata("k", 1, "AWS.reserved"));
}

TEST(Segment, StatusFlags) {
  struct Case { int status; bool error, throttle, fault; };
  for (Case c : {Case{200, false, false, false}, Case{404, true, false, false}, Case{429, true, true, false},
                 Case{503, false, false, true}}) {
    auto seg = Segment::Create("svc");
    seg->SetHttpResponse(c.status);
    Json j = seg->ToJson();
    EXPECT_EQ(j.value("error", false), c.error) << c.status;
    EXPECT_EQ(j.value("throttle", false), c.throttle) << c.status;
    EXPECT_EQ(j.value("fault", false), c.fault) << c.status;
    EXPECT_FALSE(j["http"]["response"].contains("content_length"));
  }
}

TEST(Segment, CauseWithExceptions) {
  auto seg = Segment::Create("svc");
  seg->SetCauseContext("/srv/app", {"/srv/app/main.cc"});
  ExceptionInfo e;
  e.message = "boom";
  e.type = "std::runtime_error";
  e.remote = true;
  e.stack = {{"main.cc", 12, "Handle"}, {"lib.cc", 0, "Run"}};
  e.truncated = 3;
  seg->AddException(e);
  Json j = seg->ToJson();
  EXPECT_EQ(j["fault"], true);
  EXPECT_EQ(j["cause"]["working_directory"], "/srv/app");
  EXPECT_EQ(j["cause"]["paths"][0], "/srv/app/main.cc");
  const Json& ex = j["cause"]["exceptions"][0];
  EXPECT_TRUE(IsValidSegmentId(ex["id"].get<std::string>()));
  EXPECT_EQ(ex["message"], "boom");
  EXPECT_EQ(ex["type"], "std::runtime_error");
  EXPECT_EQ(ex["remote"], true);
  EXPECT_EQ(ex["truncated"], 3);
  EXPECT_EQ(ex["stack"][0]["path"], "main.cc");
  EXPECT_EQ(ex["stack"][0]["line"], 12);
  EXPECT_EQ(ex["stack"][0]["label"], "Handle");
  EXPECT_FALSE(ex["stack"][1].contains("line"));

  auto seg2 = Segment::Create("svc");
  seg2->SetError();
  seg2->AddException(e);
  EXPECT_FALSE(seg2->ToJson().contains("fault"));  // an error stays an error
}

TEST(Segment, ExceptionInfoFromStdException) {
  std::out_of_range e("index 7");
  ExceptionInfo info = MakeExceptionInfo(e, true);
  EXPECT_EQ(info.message, "index 7");
  EXPECT_EQ(info.type, "std::out_of_range");
  EXPECT_TRUE(info.remote);
}

TEST(Segment, SubsegmentsNestAndCarryTheirFields) {
  auto seg = Segment::Create("svc", kTrace);
  Subsegment* db = seg->AddSubsegment("orders-db");
  db->SetNamespace("remote");
  db->SetSql({"", "postgresql://db:5432/orders", "SELECT * FROM orders WHERE id = ?", "PostgreSQL", "15", "libpq 15",
              "app", "statement"});
  Subsegment* inner = db->AddSubsegment("fetch");
  inner->Close();
  db->Close();
  Subsegment* aws = seg->AddSubsegment("DynamoDB");
  aws->SetNamespace("aws");
  aws->SetAws(Json{{"operation", "GetItem"}, {"table_name", "t"}, {"region", "us-east-1"}});
  aws->AddPrecursorId(db->id());
  seg->Close();

  Json j = Json::parse(seg->Serialize());
  ASSERT_EQ(j["subsegments"].size(), 2u);
  const Json& s0 = j["subsegments"][0];
  EXPECT_EQ(s0["name"], "orders-db");
  EXPECT_EQ(s0["namespace"], "remote");
  EXPECT_EQ(s0["sql"]["url"], "postgresql://db:5432/orders");
  EXPECT_EQ(s0["sql"]["sanitized_query"], "SELECT * FROM orders WHERE id = ?");
  EXPECT_EQ(s0["sql"]["preparation"], "statement");
  EXPECT_FALSE(s0["sql"].contains("connection_string"));
  EXPECT_FALSE(s0.contains("trace_id"));
  EXPECT_EQ(s0["subsegments"][0]["name"], "fetch");
  const Json& s1 = j["subsegments"][1];
  EXPECT_EQ(s1["namespace"], "aws");
  EXPECT_EQ(s1["aws"]["operation"], "GetItem");
  EXPECT_EQ(s1["precursor_ids"][0], db->id());
  EXPECT_EQ(s1["in_progress"], true);  // never closed

  Json standalone = db->ToStandaloneJson();
  EXPECT_EQ(standalone["type"], "subsegment");
  EXPECT_EQ(standalone["trace_id"], kTrace);
  EXPECT_EQ(standalone["parent_id"], seg->id());
}

TEST(Segment, NamesAreSanitized) {
  EXPECT_EQ(SanitizeName("my service:8080/path"), "my service:8080/path");
  EXPECT_EQ(SanitizeName("a*b?c<d>"), "a_b_c_d_");
  EXPECT_EQ(SanitizeName(std::string(300, 'x')).size(), 200u);
  EXPECT_EQ(SanitizeName("сервіс"), "сервіс");  // Unicode letters pass
  std::string cyr;
  for (int i = 0; i < 250; ++i) cyr += "ї";
  EXPECT_EQ(SanitizeName(cyr).size(), 400u);  // 200 two-byte characters, none cut in half
  EXPECT_EQ(SanitizeName(""), "_");
}

TEST(Segment, InvalidUtf8DoesNotBreakSerialization) {
  auto seg = Segment::Create("svc");
  seg->PutAnnotation("s", std::string_view("bad \xff\xfe utf8"));
  EXPECT_NO_THROW(Json::parse(seg->Serialize()));
}

TEST(Segment, ConcurrentSubsegments) {
  auto seg = Segment::Create("svc");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&seg, t] {
      for (int i = 0; i < 200; ++i) {
        Subsegment* s = seg->AddSubsegment("work" + std::to_string(t));
        s->PutAnnotation("i", i);
        s->Close();
        if (i % 50 == 0) (void)seg->Serialize();
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(seg->ToJson()["subsegments"].size(), 800u);
}

}  // namespace
}  // namespace xray
