// The OTLP exporter's sender and the OTLP receiver over real sockets: the sender against the real
// receiver (http::Server) and against a cpp-httplib stand-in that answers with OTLP's faults.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "common/thread_annotations.h"
#include "otlp/otlp_json.h"
#include "otlp/otlp_receiver.h"
#include "otlp/otlp_sender.h"
#include "otlp/test_data.h"
#include "otlp/xray_to_otlp.h"
#include "segment/segment.h"
#include "tests/support/local_http_server.h"

namespace xrayd::otlp {
namespace {

using pipeline::SendOutcome;

// A SegmentSink that keeps what it is offered, up to `capacity` documents per Offer.
class CollectingSink : public pipeline::SegmentSink {
 public:
  explicit CollectingSink(size_t capacity = SIZE_MAX) : capacity_(capacity) {}
  size_t Offer(std::vector<std::string>& docs) override {
    MutexLock lock(mu_);
    size_t n = std::min(capacity_, docs.size());
    for (size_t i = 0; i < n; ++i) docs_.push_back(std::move(docs[i]));
    docs.clear();
    return n;
  }
  std::vector<std::string> docs() {
    MutexLock lock(mu_);
    return docs_;
  }

 private:
  const size_t capacity_;
  Mutex mu_;
  std::vector<std::string> docs_ XRAYD_GUARDED_BY(mu_);
};

// Real SDK documents re-stamped with a trace id of now (the receiver checks trace-id age).
std::vector<std::string> FreshSdkSegments() {
  std::vector<std::string> out;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  char epoch[9];
  snprintf(epoch, sizeof epoch, "%08llx", static_cast<unsigned long long>(now));
  for (const auto& text : testing::AllSdkSegments()) {
    auto j = nlohmann::json::parse(text);
    if (j.value("in_progress", false)) continue;
    std::string tid = j["trace_id"];
    j["trace_id"] = "1-" + std::string(epoch) + tid.substr(10);
    out.push_back(j.dump());
  }
  return out;
}

// Spans in documents (each document and every nested subsegment).
size_t CountSpans(const std::vector<std::string>& docs) {
  std::function<size_t(const nlohmann::json&)> count = [&](const nlohmann::json& d) {
    size_t n = 1;
    for (const auto& s : d.value("subsegments", nlohmann::json::array())) n += count(s);
    return n;
  };
  size_t total = 0;
  for (const auto& d : docs) total += count(nlohmann::json::parse(d));
  return total;
}

http::IncomingRequest Post(std::string body, std::string type = "application/x-protobuf") {
  http::IncomingRequest r;
  r.method = "POST";
  r.path = r.target = "/v1/traces";
  r.headers = {{"Content-Type", type}};
  r.body = std::move(body);
  return r;
}

// Length-delimited field `field` holding `payload`, in protobuf's wire format.
std::string Nested(int field, const std::string& payload) {
  std::string out(1, static_cast<char>(field << 3 | 2));
  for (size_t v = payload.size(); ; v >>= 7) {
    out.push_back(static_cast<char>(v < 0x80 ? v : (v & 0x7f) | 0x80));
    if (v < 0x80) break;
  }
  return out + payload;
}

// A protobuf body is weighed from its wire format before it is parsed: 8 MB of empty spans took
// 812 MB as messages (two bytes each). Such a body is refused; real exports, however large, are not.
TEST(OtlpReceiver, ABodyOfTinyMessagesIsRefusedBeforeItIsParsed) {
  CollectingSink sink;
  OtlpReceiver receiver({}, sink);
  std::string empty_spans;
  for (int i = 0; i < 500000; ++i) empty_spans += std::string("\x12\x00", 2);
  const auto flood = receiver.Handle(Post(Nested(1, Nested(2, empty_spans))));
  EXPECT_EQ(flood.status, 400);
  pb::RpcStatus why;
  ASSERT_TRUE(why.ParseFromString(flood.body));
  EXPECT_NE(why.message().find("too many messages"), std::string::npos) << why.message();
  EXPECT_EQ(receiver.counters().requests_malformed.load(), 1u);

  std::string attrs;  // one span with 200,000 empty attributes: KeyValue messages
  for (int i = 0; i < 200000; ++i) attrs += std::string("\x4a\x00", 2);
  EXPECT_EQ(receiver.Handle(Post(Nested(1, Nested(2, Nested(2, attrs))))).status, 400);

  ToOtlpStats stats;
  const std::string one = SegmentsToRequest(FreshSdkSegments(), &stats).SerializeAsString();
  std::string many;  // concatenated messages merge: 60 exports' resource spans in one request
  for (int i = 0; i < 60; ++i) many += one;
  EXPECT_EQ(receiver.Handle(Post(many)).status, 200);
  EXPECT_EQ(receiver.counters().spans_received.load(), 60 * stats.spans);
}

TEST(OtlpReceiver, HandlerAnswersAsOtlpHttpSpecifies) {
  CollectingSink sink;
  OtlpReceiver receiver({}, sink);
  std::vector<std::string> segs = FreshSdkSegments();
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest req = SegmentsToRequest(segs, &stats);

  auto ok = receiver.Handle(Post(req.SerializeAsString()));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.content_type, "application/x-protobuf");
  pb::ExportTraceServiceResponse resp;
  ASSERT_TRUE(resp.ParseFromString(ok.body));
  EXPECT_FALSE(resp.has_partial_success());
  EXPECT_EQ(sink.docs().size(), segs.size());  // subsegments nested in their segments again
  EXPECT_EQ(CountSpans(sink.docs()), stats.spans);

  auto ok_json = receiver.Handle(Post(EncodeJson(req), "application/json; charset=utf-8"));
  EXPECT_EQ(ok_json.status, 200);
  EXPECT_EQ(ok_json.content_type, "application/json");
  EXPECT_EQ(CountSpans(sink.docs()), 2 * stats.spans);

  EXPECT_EQ(receiver.Handle(Post("\x0a\xff\xff\xff\xff\x0f garbage")).status, 400);
  EXPECT_EQ(receiver.Handle(Post("{\"resourceSpans\": 3}", "application/json")).status, 400);
  EXPECT_EQ(receiver.Handle(Post("x", "text/plain")).status, 415);
  auto get = Post("");
  get.method = "GET";
  EXPECT_EQ(receiver.Handle(get).status, 405);
  auto other = Post("");
  other.path = "/v1/metrics";
  EXPECT_EQ(receiver.Handle(other).status, 404);
  EXPECT_EQ(receiver.counters().requests_ok.load(), 2u);
  EXPECT_EQ(receiver.counters().requests_malformed.load(), 2u);
  EXPECT_EQ(receiver.counters().requests_unsupported.load(), 3u);
  for (const auto& d : sink.docs()) {
    segment::Parser parser;
    segment::Facts facts;
    EXPECT_TRUE(parser.Parse(d, &facts).ok()) << d;
  }
}

TEST(OtlpReceiver, RandomTraceIdsArePartialSuccessAndAFullPipelineIs503) {
  CollectingSink sink(0);
  OtlpReceiver receiver({}, sink);
  ToOtlpStats stats;
  pb::ExportTraceServiceRequest req = SegmentsToRequest(FreshSdkSegments(), &stats);
  auto full = receiver.Handle(Post(req.SerializeAsString()));
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(receiver.counters().requests_overloaded.load(), 1u);

  CollectingSink roomy;
  OtlpReceiver r2({}, roomy);
  pb::ExportTraceServiceRequest bad = req;
  auto* span = bad.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(0);
  span->set_trace_id(std::string("\xf0\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16));
  auto partial = r2.Handle(Post(bad.SerializeAsString()));
  EXPECT_EQ(partial.status, 200);
  pb::ExportTraceServiceResponse resp;
  ASSERT_TRUE(resp.ParseFromString(partial.body));
  EXPECT_EQ(resp.partial_success().rejected_spans(), 1);
  EXPECT_NE(resp.partial_success().error_message().find("trace ids"), std::string::npos);
  EXPECT_EQ(r2.counters().spans_invalid_trace_id.load(), 1u);
  EXPECT_EQ(CountSpans(roomy.docs()), stats.spans - 1);
}

// The sender against the real receiver over loopback: protobuf and JSON, gzip on and off; every
// document arrives as an X-Ray segment with the same id.
TEST(OtlpTransport, SenderToReceiverOverSockets) {
  CollectingSink sink;
  OtlpReceiverConfig rc;
  rc.listen = "127.0.0.1:0";
  OtlpReceiver receiver(rc, sink);
  Result<int> port = receiver.Start();
  ASSERT_TRUE(port.ok()) << port.error().message;
  std::vector<std::string> segs = FreshSdkSegments();
  size_t sent_spans = 0;
  for (auto enc : {OtlpExporterConfig::Encoding::kProtobuf, OtlpExporterConfig::Encoding::kJson})
    for (bool gzip : {true, false}) {
      OtlpExporterConfig cfg;
      cfg.endpoint = "http://127.0.0.1:" + std::to_string(*port);
      cfg.encoding = enc;
      cfg.gzip = gzip;
      cfg.headers = {{"X-Tenant", "t1"}};
      auto sender = MakeOtlpSender(cfg);
      ASSERT_TRUE(sender.ok());
      SendOutcome o = (*sender)->Send(segs);
      EXPECT_EQ(o.kind, SendOutcome::Kind::kDelivered) << o.message;
      EXPECT_EQ(o.refused, 0u);
      sent_spans += static_cast<OtlpSender&>(**sender).counters().spans_sent.load();
      const std::string text = GlobalMetrics().RenderPrometheus();
      EXPECT_NE(text.find("xrayd_otlp_exporter_requests_total{result=\"ok\"} 1\n"), std::string::npos) << text;
    }
  const std::string before_stop = GlobalMetrics().RenderPrometheus();
  EXPECT_NE(before_stop.find("xrayd_otlp_receiver_requests_total{result=\"ok\"} 4\n"), std::string::npos)
      << before_stop;
  EXPECT_NE(before_stop.find("xrayd_http_refused_total{listener=\"otlp\",reason=\"body_too_large\"}"),
            std::string::npos);
  EXPECT_EQ(before_stop.find("xrayd_otlp_exporter_requests_total"), std::string::npos) << "senders are gone";
  receiver.Stop();
  EXPECT_EQ(CountSpans(sink.docs()), sent_spans);
  EXPECT_EQ(receiver.counters().requests_ok.load(), 4u);
  EXPECT_EQ(GlobalMetrics().RenderPrometheus().find("xrayd_otlp_receiver_"), std::string::npos);
}

TEST(OtlpTransport, TenMegabyteBodyIsRefusedBeforeTheHandler) {
  CollectingSink sink;
  OtlpReceiverConfig rc;
  rc.listen = "127.0.0.1:0";
  OtlpReceiver receiver(rc, sink);
  Result<int> port = receiver.Start();
  ASSERT_TRUE(port.ok());
  http::Client client({});
  http::Request req;
  req.url = "http://127.0.0.1:" + std::to_string(*port) + "/v1/traces";
  req.headers = {{"Content-Type", "application/x-protobuf"}};
  req.body.assign(10 * 1024 * 1024, '\x0a');
  Result<http::Response> resp = client.Send(req);
  if (resp.ok()) { EXPECT_EQ(resp->status, 413); }  // or the connection closed mid-upload: also a refusal
  EXPECT_EQ(receiver.counters().requests_ok.load() + receiver.counters().requests_malformed.load(), 0u);
  EXPECT_TRUE(sink.docs().empty());
}

TEST(OtlpSender, OtlpRetryRulesAndPartialSuccess) {
  xrayd::testing::LocalHttpServer fake;
  std::atomic<int> mode{0};
  fake.server().Post("/v1/traces", [&](const httplib::Request& req, httplib::Response& res) {
    switch (mode.load()) {
      case 0: res.status = 429; res.set_header("Retry-After", "7"); break;
      case 1: res.status = 503; break;
      case 2: res.status = 400; res.set_content("bad", "text/plain"); break;
      case 3: {
        pb::ExportTraceServiceResponse r;
        r.mutable_partial_success()->set_rejected_spans(2);
        r.mutable_partial_success()->set_error_message("two bad spans");
        res.status = 200;
        res.set_content(r.SerializeAsString(), "application/x-protobuf");
        break;
      }
      case 4:
        res.status = 200;
        res.set_content(R"({"partialSuccess":{"rejectedSpans":"1","errorMessage":"x"}})", "application/json");
        break;
      default: res.status = 502; res.set_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT");
    }
  });
  fake.Start();
  OtlpExporterConfig cfg;
  cfg.endpoint = fake.url() + "/";
  OtlpSender sender(cfg);
  std::vector<std::string> segs = FreshSdkSegments();

  SendOutcome o = sender.Send(segs);
  EXPECT_EQ(o.kind, SendOutcome::Kind::kRetryable);
  ASSERT_TRUE(o.retry_after.has_value());
  EXPECT_EQ(o.retry_after->count(), 7000);
  mode = 1;
  o = sender.Send(segs);
  EXPECT_EQ(o.kind, SendOutcome::Kind::kRetryable);
  EXPECT_FALSE(o.retry_after.has_value());
  mode = 2;
  EXPECT_EQ(sender.Send(segs).kind, SendOutcome::Kind::kPermanent);
  mode = 3;
  o = sender.Send(segs);
  EXPECT_EQ(o.kind, SendOutcome::Kind::kDelivered);
  EXPECT_EQ(o.refused, 2u);
  mode = 4;
  o = sender.Send(segs);
  EXPECT_EQ(o.refused, 1u);
  mode = 5;
  o = sender.Send(segs);
  EXPECT_EQ(o.kind, SendOutcome::Kind::kRetryable);
  ASSERT_TRUE(o.retry_after.has_value());
  EXPECT_EQ(o.retry_after->count(), 0);  // a date in the past: no wait
  EXPECT_EQ(sender.counters().requests_retryable.load(), 3u);
  EXPECT_EQ(sender.counters().requests_throttled.load(), 1u);
  EXPECT_EQ(sender.counters().requests_permanent.load(), 1u);
  EXPECT_EQ(sender.counters().spans_rejected.load(), 3u);
}

TEST(OtlpSender, ReceiverDownIsRetryableAndAbortFailsFast) {
  xrayd::testing::LocalHttpServer fake;
  fake.Start();
  std::string url = fake.url();
  fake.Stop();  // nothing listens there any more
  OtlpExporterConfig cfg;
  cfg.endpoint = url;
  cfg.timeout = std::chrono::milliseconds(2000);
  OtlpSender sender(cfg);
  SendOutcome o = sender.Send(FreshSdkSegments());
  EXPECT_EQ(o.kind, SendOutcome::Kind::kRetryable);
  EXPECT_FALSE(o.message.empty());
  sender.Abort();
  EXPECT_EQ(sender.Send(FreshSdkSegments()).kind, SendOutcome::Kind::kRetryable);
}

TEST(OtlpSender, ConfigValidation) {
  OtlpExporterConfig cfg;
  cfg.endpoint = "ftp://x";
  cfg.timeout = std::chrono::milliseconds(0);
  cfg.headers = {{"Bad Header", "v"}};
  Status s = cfg.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("http://"), std::string::npos);
  EXPECT_NE(s.error().message.find("timeout"), std::string::npos);
  EXPECT_NE(s.error().message.find("Bad Header"), std::string::npos);
  EXPECT_FALSE(MakeOtlpSender(cfg).ok());
  cfg.endpoint = "https://collector:4318";
  EXPECT_EQ(cfg.TracesUrl(), "https://collector:4318/v1/traces");
  cfg.endpoint = "https://collector:4318/custom/path";
  EXPECT_EQ(cfg.TracesUrl(), "https://collector:4318/custom/path");
  EXPECT_TRUE(ParseEncoding("json").ok());
  EXPECT_FALSE(ParseEncoding("xml").ok());
}

TEST(OtlpSender, InProgressDocumentsAreNotSent) {
  OtlpExporterConfig cfg;
  cfg.endpoint = "http://127.0.0.1:9";  // never contacted: nothing to send
  OtlpSender sender(cfg);
  SendOutcome o = sender.Send({R"({"trace_id":"1-5f84c7a1-e7d1852db8c4fd35d88bf49a","id":"0123456789abcdef",
      "name":"s","start_time":1700000000,"in_progress":true})", "not json"});
  EXPECT_EQ(o.kind, SendOutcome::Kind::kDelivered);
  EXPECT_EQ(o.refused, 1u);
  EXPECT_EQ(sender.counters().documents_in_progress.load(), 1u);
  EXPECT_EQ(sender.counters().documents_invalid.load(), 1u);
}

}  // namespace
}  // namespace xrayd::otlp
