// PutTelemetryRecords against a local X-Ray stand-in: content, timing rules, retries of unsent
// records, the final record, and the backend error counts the exporter feeds it.
#include "telemetry/telemetry_reporter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "aws/imds.h"
#include "tests/support/fake_aws.h"
#include "export/xray/xray_sender.h"
#include "pipeline/exporter.h"

namespace xrayd {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// POST /TelemetryRecords; answers with `status_for(n)` for the n-th call (0-based).
class FakeTelemetryApi {
 public:
  explicit FakeTelemetryApi(std::function<int(int)> status_for = [](int) { return 200; })
      : status_for_(std::move(status_for)) {
    http_.server().Post("/TelemetryRecords", [this](const httplib::Request& req, httplib::Response& res) {
      int n;
      {
        std::lock_guard lock(mu_);
        n = static_cast<int>(requests_.size());
        requests_.push_back(req);
      }
      cv_.notify_all();
      res.status = status_for_(n);
      {
        std::lock_guard lock(mu_);
        statuses_.push_back(res.status);
      }
      res.set_content(res.status == 200 ? "{}" : R"({"__type":"InternalFailure","message":"boom"})", "application/json");
    });
    http_.Start();
  }
  std::string url() const { return http_.url(); }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }
  std::vector<httplib::Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<int> statuses() {
    std::lock_guard lock(mu_);
    return statuses_;
  }

 private:
  std::function<int(int)> status_for_;
  testing::LocalHttpServer http_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<httplib::Request> requests_;
  std::vector<int> statuses_;
};

class TelemetryTest : public ::testing::Test {
 protected:
  void SetUp() override { GlobalMetrics().ResetForTest(); }
  void TearDown() override { GlobalMetrics().ResetForTest(); }

  TelemetryOptions Options(const std::string& url, std::chrono::milliseconds interval = 200ms) {
    TelemetryOptions o;
    o.xray.endpoint = url;
    o.xray.region = "eu-west-1";
    o.interval = interval;
    o.http.timeout = 2s;
    o.resource_arn = "arn:aws:ecs:eu-west-1:123456789012:task/abc";
    o.hostname = "host-1";
    o.instance_id = "i-0abc";
    return o;
  }
};

TEST_F(TelemetryTest, RequestBodyShape) {
  TelemetryRecord r;
  r.timestamp = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000250));
  r.received = 10;
  r.sent = 8;
  r.spillover = 1;
  r.rejected = 1;
  r.backend_errors[static_cast<size_t>(BackendError::kHttp5xx)] = 2;
  r.backend_errors[static_cast<size_t>(BackendError::kUnknownHost)] = 3;
  const json body = json::parse(TelemetryReporter::BuildRequestBody("i-1", "h\"q", "arn:x", {r, TelemetryRecord{}}));
  EXPECT_EQ(body["EC2InstanceId"], "i-1");
  EXPECT_EQ(body["Hostname"], "h\"q");
  EXPECT_EQ(body["ResourceARN"], "arn:x");
  ASSERT_EQ(body["TelemetryRecords"].size(), 2u);
  const json& rec = body["TelemetryRecords"][0];
  EXPECT_DOUBLE_EQ(rec["Timestamp"].get<double>(), 1700000000.25);
  EXPECT_EQ(rec["SegmentsReceivedCount"], 10);
  EXPECT_EQ(rec["SegmentsSentCount"], 8);
  EXPECT_EQ(rec["SegmentsSpilloverCount"], 1);
  EXPECT_EQ(rec["SegmentsRejectedCount"], 1);
  EXPECT_EQ(rec["BackendConnectionErrors"],
            json::parse(R"({"TimeoutCount":0,"ConnectionRefusedCount":0,"HTTPCode4XXCount":0,"HTTPCode5XXCount":2,
                            "UnknownHostCount":3,"OtherCount":0})"));
}

TEST_F(TelemetryTest, NothingUntilTheFirstSegmentThenEveryIntervalAndAFinalRecord) {
  FakeTelemetryApi api;
  const aws::Credentials creds{"AKTELEMETRY", "telemetry-secret", "telemetry-token"};
  aws::StaticCredentialsProvider provider(creds, "test");
  TelemetryReporter reporter(Options(api.url()), &provider);
  ASSERT_TRUE(reporter.Start());
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(api.requests().empty()) << "no datagram yet: no telemetry";

  auto& m = GlobalMetrics();
  m.segments_received += 6;
  m.segments_sent += 3;
  m.Fail(FailReason::kUnprocessed, 1);
  m.segments_spilled += 1;
  m.Reject(RejectReason::kBadHeader, 1);
  m.CountBackendError(BackendError::kHttp5xx);
  m.CountBackendError(BackendError::kTimeout);
  ASSERT_TRUE(api.WaitFor(1, 2s));
  ASSERT_TRUE(api.WaitFor(2, 2s)) << "a record every interval, zeros included";
  const auto t_stop = std::chrono::steady_clock::now();
  reporter.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t_stop, 1s);
  auto reqs = api.requests();
  ASSERT_GE(reqs.size(), 3u) << "a final record at shutdown";

  const json first = json::parse(reqs[0].body);
  EXPECT_EQ(first["EC2InstanceId"], "i-0abc");
  EXPECT_EQ(first["Hostname"], "host-1");
  EXPECT_EQ(first["ResourceARN"], "arn:aws:ecs:eu-west-1:123456789012:task/abc");
  ASSERT_EQ(first["TelemetryRecords"].size(), 1u);
  const json& r = first["TelemetryRecords"][0];
  EXPECT_EQ(r["SegmentsReceivedCount"], 6);
  EXPECT_EQ(r["SegmentsSentCount"], 4) << "AWS's daemon counts unprocessed segments as sent";
  EXPECT_EQ(r["SegmentsSpilloverCount"], 1);
  EXPECT_EQ(r["SegmentsRejectedCount"], 2) << "ingest rejects + unprocessed";
  EXPECT_EQ(r["BackendConnectionErrors"]["HTTPCode5XXCount"], 1);
  EXPECT_EQ(r["BackendConnectionErrors"]["TimeoutCount"], 1);
  const double ts = r["Timestamp"].get<double>();
  EXPECT_NEAR(ts, std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(), 5);

  const json second = json::parse(reqs[1].body)["TelemetryRecords"][0];
  EXPECT_EQ(second["SegmentsReceivedCount"], 0) << "each record holds one interval's counts";
  EXPECT_EQ(second["BackendConnectionErrors"]["HTTPCode5XXCount"], 0);

  for (const auto& req : reqs) {
    EXPECT_EQ(req.get_header_value("Content-Type"), "application/json");
    EXPECT_EQ(testing::VerifySigV4(req, creds, "eu-west-1", "xray"), "");
  }
}

TEST_F(TelemetryTest, FailedCallsKeepTheirRecordsForTheNextInterval) {
  FakeTelemetryApi api([](int n) { return n == 0 ? 500 : 200; });
  TelemetryReporter reporter(Options(api.url()), nullptr);
  GlobalMetrics().segments_received += 1;
  ASSERT_TRUE(reporter.Start());
  ASSERT_TRUE(api.WaitFor(2, 3s));
  reporter.Stop();
  auto reqs = api.requests();
  EXPECT_EQ(json::parse(reqs[0].body)["TelemetryRecords"].size(), 1u);
  const json retry = json::parse(reqs[1].body)["TelemetryRecords"];
  ASSERT_EQ(retry.size(), 2u) << "the unsent record goes again with the new one";
  EXPECT_EQ(retry[0]["SegmentsReceivedCount"], 1);
  EXPECT_EQ(retry[1]["BackendConnectionErrors"]["HTTPCode5XXCount"], 1) << "its own failure is a backend error";
  EXPECT_EQ(reqs[0].get_header_value("Authorization"), "") << "no credentials provider: unsigned";
}

TEST_F(TelemetryTest, AtMostThirtyRecordsTenPerCall) {
  std::atomic<bool> up{false};
  FakeTelemetryApi api([&](int) { return up ? 200 : 503; });
  TelemetryReporter reporter(Options(api.url(), 20ms), nullptr);
  GlobalMetrics().segments_received += 1;
  ASSERT_TRUE(reporter.Start());
  ASSERT_TRUE(api.WaitFor(40, 5s));  // 40 intervals' records, none delivered
  up = true;
  auto successes = [&] {
    auto st = api.statuses();
    return std::count(st.begin(), st.end(), 200);
  };
  for (int i = 0; i < 300 && successes() < 3; ++i) std::this_thread::sleep_for(10ms);
  reporter.Stop();
  auto reqs = api.requests();
  auto st = api.statuses();
  size_t delivered = 0;
  int seen = 0;
  for (size_t i = 0; i < st.size() && seen < 3; ++i) {
    if (st[i] != 200) continue;
    ++seen;
    const size_t n = json::parse(reqs[i].body)["TelemetryRecords"].size();
    EXPECT_EQ(n, 10u) << "a full queue goes out in calls of 10";
    delivered += n;
  }
  EXPECT_EQ(delivered, 30u) << "the queue keeps the newest 30";
}

TEST_F(TelemetryTest, HostnameAndInstanceIdFromInstanceMetadata) {
  FakeTelemetryApi api;
  testing::FakeImds imds_server({.require_token = true});
  aws::ImdsOptions io;
  io.endpoint = imds_server.url();
  auto o = Options(api.url(), 10s);
  o.hostname.clear();
  o.instance_id.clear();
  o.imds = std::make_shared<aws::ImdsClient>(io);
  TelemetryReporter reporter(o, nullptr);
  GlobalMetrics().segments_received += 1;
  ASSERT_TRUE(reporter.Start());
  reporter.Stop();  // the final record carries what the thread looked up first
  auto reqs = api.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const json body = json::parse(reqs[0].body);
  EXPECT_EQ(body["EC2InstanceId"], "i-0123456789abcdef0");
  EXPECT_EQ(body["Hostname"], "ip-10-0-0-1.eu-central-1.compute.internal");
  EXPECT_EQ(imds_server.token_requests(), 1);
}

TEST_F(TelemetryTest, ExporterCountsBackendErrorsByKind) {
  EXPECT_EQ(BackendErrorForStatus(503), BackendError::kHttp5xx);
  EXPECT_EQ(BackendErrorForStatus(429), BackendError::kHttp4xx);
  EXPECT_EQ(BackendErrorForStatus(302), BackendError::kOther);
  EXPECT_EQ(BackendErrorForTransport(TransportError::kDns), BackendError::kUnknownHost);
  EXPECT_EQ(BackendErrorForTransport(TransportError::kTimeout), BackendError::kTimeout);
  EXPECT_EQ(BackendErrorForTransport(TransportError::kConnectRefused), BackendError::kConnectionRefused);
  EXPECT_EQ(BackendErrorForTransport(TransportError::kTls), BackendError::kOther);
  EXPECT_EQ(BackendErrorForTransport(TransportError::kNoCredentials), BackendError::kOther);

  // A real exporter against a server that fails twice with 500, stalls past the client timeout
  // once, then accepts; and against a closed port.
  std::atomic<int> n{0};
  testing::LocalHttpServer xray;
  xray.server().Post("/TraceSegments", [&](const httplib::Request&, httplib::Response& res) {
    const int i = n++;
    if (i < 2) {
      res.status = 500;
      return;
    }
    if (i == 2) std::this_thread::sleep_for(700ms);
    res.set_content(R"({"UnprocessedTraceSegments":[]})", "application/json");
  });
  xray.Start();
  auto run = [](const std::string& url, int attempts) {
    xray::SenderOptions so;
    so.xray.endpoint = url;
    so.xray.region = "us-east-1";
    so.http.timeout = 300ms;
    so.http.connect_timeout = 300ms;
    auto sender = xray::XraySender::Create(so, nullptr);
    ASSERT_TRUE(sender);
    pipeline::ExporterOptions o;
    o.flush_interval = 10ms;
    o.retry.initial_backoff = 1ms;
    o.retry.max_backoff = 5ms;
    o.retry.max_attempts = attempts;
    pipeline::Exporter exporter(o, **sender);
    exporter.Start();
    std::vector<std::string> segs = {R"({"id":"a"})"};
    exporter.Offer(segs);
    exporter.Stop(5s);
  };
  run(xray.url(), 5);
  auto& m = GlobalMetrics();
  EXPECT_EQ(m.BackendErrors(BackendError::kHttp5xx), 2u);
  EXPECT_EQ(m.BackendErrors(BackendError::kTimeout), 1u);
  EXPECT_EQ(m.segments_sent.load(), 1u);
  run("http://127.0.0.1:1", 2);
  EXPECT_EQ(m.BackendErrors(BackendError::kConnectionRefused), 2u);
  const std::string prom = m.RenderPrometheus();
  EXPECT_NE(prom.find("xrayd_export_connection_errors_total{kind=\"connection_refused\"} 2\n"), std::string::npos);
}

}  // namespace
}  // namespace xrayd
