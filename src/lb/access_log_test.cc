#include "lb/access_log.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace xrayd::lb {
namespace {

// The example entries of AWS's "Access logs for your Application/Classic Load Balancer" pages,
// kept as the fuzz seeds (fuzz/corpus/fuzz_lb_log/).
std::vector<std::string> ExampleLines(const char* file) {
  std::ifstream in(std::string(XRAYD_SOURCE_DIR) + "/fuzz/corpus/fuzz_lb_log/" + file);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(AccessLog, EveryAwsAlbExampleParses) {
  auto lines = ExampleLines("aws_alb_examples.log");
  ASSERT_EQ(lines.size(), 6u);
  for (const auto& l : lines) {
    LogEntry e;
    auto st = ParseLogLine(l, &e);
    EXPECT_TRUE(st) << l << ": " << (st ? "" : st.error().message);
    EXPECT_EQ(e.format, LogFormat::kAlb);
    EXPECT_EQ(e.conn_trace_id, "TID_1234abcd5678ef90");
  }
}

TEST(AccessLog, AlbHttpsExampleFieldByField) {
  LogEntry e;
  ASSERT_TRUE(ParseLogLine(ExampleLines("aws_alb_examples.log")[1], &e));
  EXPECT_EQ(e.type, "https");
  EXPECT_DOUBLE_EQ(e.time, 1530570180.186641);  // 2018-07-02T22:23:00.186641Z
  EXPECT_EQ(e.elb, "app/my-loadbalancer/50dc6c495c0c9188");
  EXPECT_EQ(e.client_ip, "192.168.131.39");
  EXPECT_EQ(e.client_port, 2817);
  EXPECT_EQ(e.target, "10.0.0.1:80");
  EXPECT_DOUBLE_EQ(e.request_processing_time, 0.086);
  EXPECT_DOUBLE_EQ(e.target_processing_time, 0.048);
  EXPECT_DOUBLE_EQ(e.response_processing_time, 0.037);
  EXPECT_EQ(e.elb_status_code, 200);
  EXPECT_EQ(e.target_status_code, 200);
  EXPECT_EQ(e.received_bytes, 0);
  EXPECT_EQ(e.sent_bytes, 57);
  EXPECT_EQ(e.request, "GET https://www.example.com:443/ HTTP/1.1");
  EXPECT_EQ(e.user_agent, "curl/7.46.0");
  EXPECT_EQ(e.ssl_cipher, "ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(e.ssl_protocol, "TLSv1.2");
  EXPECT_EQ(e.target_group_arn, "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067");
  EXPECT_EQ(e.trace_id, "Root=1-58337281-1d84f3d73c47ec4e58577259");
  EXPECT_EQ(e.domain_name, "www.example.com");
  EXPECT_EQ(e.chosen_cert_arn, "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012");
  EXPECT_EQ(e.matched_rule_priority, "1");
  ASSERT_TRUE(e.request_creation_time);
  EXPECT_DOUBLE_EQ(*e.request_creation_time, 1530570168.364);
  EXPECT_EQ(e.actions_executed, "authenticate,forward");
  EXPECT_EQ(e.redirect_url, "");
  EXPECT_EQ(e.error_reason, "");
  EXPECT_EQ(e.target_port_list, "10.0.0.1:80");
  EXPECT_EQ(e.target_status_code_list, "200");
}

TEST(AccessLog, LambdaFailureHasNoTargetAnswer) {
  LogEntry e;
  ASSERT_TRUE(ParseLogLine(ExampleLines("aws_alb_examples.log")[5], &e));
  EXPECT_EQ(e.target, "");
  EXPECT_EQ(e.elb_status_code, 502);
  EXPECT_EQ(e.target_status_code, 0);
  EXPECT_EQ(e.error_reason, "LambdaInvalidResponse");
}

TEST(AccessLog, EveryAwsClbExampleParses) {
  auto lines = ExampleLines("aws_clb_examples.log");
  ASSERT_EQ(lines.size(), 4u);
  LogEntry e;
  for (const auto& l : lines) EXPECT_TRUE(ParseLogLine(l, &e)) << l;
  ASSERT_TRUE(ParseLogLine(lines[0], &e));
  EXPECT_EQ(e.format, LogFormat::kClb);
  EXPECT_EQ(e.elb, "my-loadbalancer");
  EXPECT_DOUBLE_EQ(e.time, 1431560383.945958);
  EXPECT_DOUBLE_EQ(e.target_processing_time, 0.001048);
  EXPECT_EQ(e.user_agent, "curl/7.38.0");
  EXPECT_EQ(e.trace_id, "");
  ASSERT_TRUE(ParseLogLine(lines[2], &e));  // TCP listener
  EXPECT_EQ(e.elb_status_code, 0);
  EXPECT_EQ(e.request, "- - - ");
  RequestLine r = SplitRequest(e.request);
  EXPECT_EQ(r.method, "");
  EXPECT_EQ(r.url, "");
  EXPECT_EQ(r.protocol, "");
  ASSERT_TRUE(ParseLogLine(lines[3], &e));
  EXPECT_EQ(e.ssl_cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
}

TEST(AccessLog, QuotedFieldsKeepSpacesAndUnescape) {
  LogEntry e;
  ASSERT_TRUE(ParseLogLine(R"x(http 2018-07-02T22:23:00Z app/a/b 1.2.3.4:5 - -1 -1 -1 502 - 0 0 "GET http://x/a%20b HTTP/1.1" "Mozilla/5.0 (X11; \"quoted\" \\ end)" - -)x", &e));
  EXPECT_EQ(e.user_agent, R"x(Mozilla/5.0 (X11; "quoted" \ end))x");
  EXPECT_EQ(e.request_processing_time, -1);
  EXPECT_EQ(e.target, "");
  EXPECT_EQ(e.trace_id, "");
  EXPECT_FALSE(e.request_creation_time);
}

TEST(AccessLog, FieldsAddedLaterAreIgnored) {
  std::string l = ExampleLines("aws_alb_examples.log")[0] + R"( "transformed" "-" "-" extra)";
  LogEntry e;
  ASSERT_TRUE(ParseLogLine(l, &e));
  EXPECT_EQ(e.conn_trace_id, "TID_1234abcd5678ef90");
}

TEST(AccessLog, MalformedLinesAreErrorsNotCrashes) {
  const std::string good = ExampleLines("aws_alb_examples.log")[0];
  LogEntry e;
  for (std::string bad : {std::string(""), std::string("http"), good.substr(0, 100),
                          std::string("http 2018-07-02T22:23:00Z app/a/b 1.2.3.4:5 - 0 0 0 200 200 0 0 \"GET x HTTP/1.1"),
                          std::string("http 2018-07-02T22:23:00Z app/a/b 1.2.3.4:5 - 0 0 0 200 200 0 0 \"a\"b \"c\" - -"),
                          std::string("ftp 2018-07-02T22:23:00Z app/a/b 1.2.3.4:5 - 0 0 0 200 200 0 0 \"a\" \"c\" - -"),
                          std::string("http 2018-13-02T22:23:00Z app/a/b 1.2.3.4:5 - 0 0 0 200 200 0 0 \"a\" \"c\" - -"),
                          std::string("http 2018-07-02T22:23:00Z app/a/b 1.2.3.4:5 - 0 0 0 20x 200 0 0 \"a\" \"c\" - -"),
                          std::string("http 2018-07-02T22:23:00Z app/a/b 1.2.3.4 - 0 0 0 200 200 0 0 \"a\" \"c\" - -"),
                          std::string("http 2018-07-02T22:23:00Z app/a/b 1.2.3.4:5 - 0 nan 0 200 200 0 0 \"a\" \"c\" - -"),
                          std::string("2015-05-13T23:39:43.945958Z my-lb 1.2.3.4:5 10.0.0.1:80 0 0 0 200 200 0 -5 \"a\" \"c\" - -")})
    EXPECT_FALSE(ParseLogLine(bad, &e)) << bad;
}

TEST(AccessLog, Helpers) {
  EXPECT_EQ(LoadBalancerName("app/my-alb/50dc6c495c0c9188"), "my-alb");
  EXPECT_EQ(LoadBalancerName("my-classic"), "my-classic");
  EXPECT_EQ(TraceRoot("Root=1-58337262-36d228ad5d99923122bbe354"), "1-58337262-36d228ad5d99923122bbe354");
  EXPECT_EQ(TraceRoot("Self=1-67891234-12456789abcdef012345678;Root=1-58337262-36d228ad5d99923122bbe354;Sampled=1"),
            "1-58337262-36d228ad5d99923122bbe354");
  EXPECT_EQ(TraceRoot("Root=1-5833726-36d228ad5d99923122bbe354"), "");
  EXPECT_EQ(TraceRoot(""), "");
  EXPECT_EQ(ParseLogTime("1970-01-01T00:00:00Z"), 0.0);
  EXPECT_EQ(ParseLogTime("2000-03-01T00:00:01.5Z"), 951868801.5);
  EXPECT_FALSE(ParseLogTime("2000-03-01 00:00:01Z"));
  RequestLine r = SplitRequest("GET http://www.example.com:80/a b HTTP/1.1");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url, "http://www.example.com:80/a b");
  EXPECT_EQ(r.protocol, "HTTP/1.1");
}

}  // namespace
}  // namespace xrayd::lb
