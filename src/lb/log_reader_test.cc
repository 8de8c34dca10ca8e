#include "lb/log_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "segment/segment.h"

namespace xrayd::lb {
namespace {

using nlohmann::json;

class CollectingSink : public pipeline::SegmentSink {
 public:
  size_t Offer(std::vector<std::string>& docs) override {
    for (auto& d : docs) this->docs.push_back(std::move(d));
    const size_t n = docs.size();
    docs.clear();
    return n;
  }
  std::vector<std::string> docs;
};

std::string Example(const char* file) {
  std::ifstream in(std::string(XRAYD_SOURCE_DIR) + "/fuzz/corpus/fuzz_lb_log/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Gzip(std::string_view text) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, text.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct Read {
  CollectingSink sink;
  LbCounters counters;
  Status status = OkStatus();
};

// Feeds `bytes` in pieces of `piece` bytes.
void ReadObject(Read& r, std::string_view bytes, size_t piece, SynthesisOptions options = {}) {
  LogReader reader(r.sink, options, r.counters);
  reader.Begin("test.log");
  for (size_t i = 0; i < bytes.size(); i += piece) {
    if (auto st = reader.Feed(bytes.substr(i, piece)); !st) r.status = st;
  }
  if (auto st = reader.Finish(); !st) r.status = st;
}

void ExpectValid(const std::vector<std::string>& docs) {
  segment::Parser parser;
  for (const auto& d : docs) {
    segment::Facts f;
    EXPECT_TRUE(parser.Parse(d, &f).ok()) << d;
  }
}

TEST(LogReader, AwsExamplesBecomeValidSegments) {
  Read r;
  ReadObject(r, Example("aws_alb_examples.log") + Example("aws_clb_examples.log"), 37);
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.counters.lines.load(), 10u);
  EXPECT_EQ(r.counters.malformed.load(), 0u);
  EXPECT_EQ(r.counters.segments.load(), 10u);
  EXPECT_EQ(r.counters.accepted.load(), 10u);
  ASSERT_EQ(r.sink.docs.size(), 10u);
  ExpectValid(r.sink.docs);

  json https = json::parse(r.sink.docs[1]);
  EXPECT_EQ(https["trace_id"], "1-58337281-1d84f3d73c47ec4e58577259");
  EXPECT_EQ(https["name"], "my-loadbalancer");
  EXPECT_EQ(https["origin"], "AWS::ElasticLoadBalancingV2::LoadBalancer");
  EXPECT_DOUBLE_EQ(https["start_time"].get<double>(), 1530570168.364);
  EXPECT_DOUBLE_EQ(https["end_time"].get<double>(), 1530570180.186641);
  EXPECT_EQ(https["http"]["request"]["method"], "GET");
  EXPECT_EQ(https["http"]["request"]["url"], "https://www.example.com:443/");
  EXPECT_EQ(https["http"]["request"]["client_ip"], "192.168.131.39");
  EXPECT_EQ(https["http"]["request"]["user_agent"], "curl/7.46.0");
  EXPECT_EQ(https["http"]["response"]["status"], 200);
  EXPECT_FALSE(https.contains("fault"));
  EXPECT_EQ(https["aws"]["elastic_load_balancing"]["ssl_protocol"], "TLSv1.2");
  EXPECT_EQ(https["aws"]["elastic_load_balancing"]["actions_executed"], "authenticate,forward");
  const json& target = https["subsegments"][0];
  EXPECT_EQ(target["name"], "10.0.0.1:80");
  EXPECT_EQ(target["namespace"], "remote");
  EXPECT_DOUBLE_EQ(target["start_time"].get<double>(), 1530570168.364 + 0.086);
  EXPECT_NEAR(target["end_time"].get<double>(), 1530570168.364 + 0.086 + 0.048, 1e-6);
  EXPECT_EQ(target["http"]["response"]["status"], 200);

  json lambda_failed = json::parse(r.sink.docs[5]);  // 502 from the load balancer, no target
  EXPECT_EQ(lambda_failed["fault"], true);
  EXPECT_FALSE(lambda_failed.contains("subsegments"));
  EXPECT_EQ(lambda_failed["aws"]["elastic_load_balancing"]["error_reason"], "LambdaInvalidResponse");

  json clb = json::parse(r.sink.docs[6]);
  EXPECT_EQ(clb["origin"], "AWS::ElasticLoadBalancing::LoadBalancer");
  EXPECT_TRUE(segment::IsValidTraceId(clb["trace_id"].get<std::string>()));
  EXPECT_EQ(segment::TraceIdEpoch(clb["trace_id"].get<std::string>()), 1431560383);
  EXPECT_NEAR(clb["end_time"].get<double>() - clb["start_time"].get<double>(), 0.000073 + 0.001048 + 0.000057, 1e-6);
}

TEST(LogReader, IdsAreDerivedFromTheLine) {
  Read a, b;
  ReadObject(a, Example("aws_alb_examples.log"), 1000);
  ReadObject(b, Gzip(Example("aws_alb_examples.log")), 13);
  ASSERT_TRUE(b.status);
  EXPECT_EQ(a.sink.docs, b.sink.docs);  // same lines, same documents, whatever the packaging
  std::set<std::string> ids;
  for (const auto& d : a.sink.docs) ids.insert(json::parse(d)["id"].get<std::string>());
  EXPECT_EQ(ids.size(), a.sink.docs.size());
}

TEST(LogReader, StatusCodesSetFaultErrorThrottle) {
  const std::string base = R"(http 2024-03-01T10:00:01.000000Z app/my-alb/1 10.1.2.3:4000 10.0.0.9:5000 0.001 0.010 0.001 )";
  const std::string tail = R"( 10 20 "GET http://a/ HTTP/1.1" "ua" - - arn:tg "Root=1-65e1a8d1-5fc6f0f34b4fb2120da8bbec" "-" "-" 0 2024-03-01T10:00:00.900000Z "forward" "-" "-" "10.0.0.9:5000" "-" "-" "-")";
  Read r;
  ReadObject(r, base + "500 500" + tail + "\n" + base + "429 429" + tail + "\n" + base + "404 404" + tail + "\n" +
                    R"(http 2024-03-01T10:00:01.000000Z app/my-alb/1 10.1.2.3:4000 10.0.0.9:5000 0.001 -1 -1 504 - 10 20 "GET http://a/ HTTP/1.1" "ua" - - arn:tg "Root=1-65e1a8d1-5fc6f0f34b4fb2120da8bbec" "-" "-" 0 2024-03-01T10:00:00.900000Z "forward" "-" "-" "10.0.0.9:5000" "-" "-" "-")" + "\n",
             4096, {"edge-alb"});
  ASSERT_EQ(r.sink.docs.size(), 4u);
  ExpectValid(r.sink.docs);
  json fault = json::parse(r.sink.docs[0]), throttle = json::parse(r.sink.docs[1]), error = json::parse(r.sink.docs[2]);
  json timeout = json::parse(r.sink.docs[3]);
  EXPECT_EQ(fault["name"], "edge-alb");
  EXPECT_EQ(fault["fault"], true);
  EXPECT_EQ(fault["subsegments"][0]["fault"], true);
  EXPECT_EQ(throttle["error"], true);
  EXPECT_EQ(throttle["throttle"], true);
  EXPECT_EQ(error["error"], true);
  EXPECT_FALSE(error.contains("fault"));
  EXPECT_EQ(timeout["fault"], true);  // the target never answered: the load balancer's own 504
  EXPECT_EQ(timeout["subsegments"][0]["fault"], true);
  EXPECT_DOUBLE_EQ(timeout["subsegments"][0]["end_time"].get<double>(), timeout["end_time"].get<double>());
  EXPECT_FALSE(timeout["subsegments"][0]["http"].contains("response"));
}

TEST(LogReader, MalformedAndOverlongLinesAreCountedAndSkipped) {
  const std::string good = Example("aws_clb_examples.log");
  Read r;
  ReadObject(r, "garbage line\n" + std::string(kMaxLineBytes + 10, 'x') + "\n\n" + good + "1999-01-01T00:00:00Z lb 1.2.3.4:5 - 0 0 0 200 200 0 0 \"a\" \"b\" - -", 4000);
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.counters.lines.load(), 7u);
  EXPECT_EQ(r.counters.malformed.load(), 3u);  // garbage, too long, and a time before 2000
  EXPECT_EQ(r.sink.docs.size(), 4u);
}

TEST(LogReader, BytesThatAreNotUtf8StillMakeValidSegments) {
  std::string line = R"(http 2024-03-01T10:00:01.000000Z app/my-alb/1 10.1.2.3:4000 - 0.001 -1 -1 503 - 10 0 "GET http://a/caf)";
  line += "\xe9 HTTP/1.1\" \"agent \xff\xfe \xe2\x82\" - -\n";  // Latin-1 e-acute, stray bytes, a cut sequence
  Read r;
  ReadObject(r, line, 4096);
  ASSERT_EQ(r.sink.docs.size(), 1u);
  ExpectValid(r.sink.docs);
  json doc = json::parse(r.sink.docs[0]);
  EXPECT_EQ(doc["http"]["request"]["url"], "http://a/caf\xef\xbf\xbd");
  EXPECT_EQ(doc["http"]["request"]["user_agent"], "agent \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd");
  Read odd;  // an elb field whose name part is empty still names the segment
  ReadObject(odd, R"(http 2024-03-01T10:00:01.000000Z app//1 10.1.2.3:4000 - 0.001 -1 -1 503 - 10 0 "-" "-" - -)", 4096);
  ASSERT_EQ(odd.sink.docs.size(), 1u);
  ExpectValid(odd.sink.docs);
  EXPECT_EQ(json::parse(odd.sink.docs[0])["name"], "app//1");
}

TEST(LogReader, CorruptAndTruncatedGzipAreErrorsAfterTheLinesBefore) {
  std::string gz = Gzip(Example("aws_alb_examples.log"));
  Read truncated;
  ReadObject(truncated, std::string_view(gz).substr(0, gz.size() - 12), 50);
  EXPECT_FALSE(truncated.status);
  EXPECT_EQ(truncated.counters.object_errors.load(), 1u);
  std::string corrupt = gz;
  for (size_t i = 20; i < corrupt.size(); i += 7) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  Read bad;
  ReadObject(bad, corrupt, 50);
  EXPECT_FALSE(bad.status);
  // Two gzip members back to back (concatenated files) read as one log.
  Read two;
  ReadObject(two, gz + Gzip(Example("aws_clb_examples.log")), 64);
  ASSERT_TRUE(two.status);
  EXPECT_EQ(two.sink.docs.size(), 10u);
}

}  // namespace
}  // namespace xrayd::lb
