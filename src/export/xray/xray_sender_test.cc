// XraySender inside a pipeline::Exporter against a real local HTTP server (cpp-httplib) that plays
// PutTraceSegments, including its failure modes.
#include "export/xray/xray_sender.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <set>

#include "pipeline/exporter.h"
#include "telemetry/metrics.h"

namespace xrayd::xray {
namespace {

using namespace std::chrono_literals;

class FakeXray {
 public:
  // `respond(n)` decides the answer to the n-th request (0-based); it may sleep to stall.
  explicit FakeXray(std::function<void(int, const httplib::Request&, httplib::Response&)> respond)
      : respond_(std::move(respond)) {
    server_.Post("/TraceSegments", [this](const httplib::Request& req, httplib::Response& res) {
      int n;
      {
        std::lock_guard lock(mu_);
        n = requests_++;
        auth_headers_.push_back(req.get_header_value("Authorization"));
      }
      respond_(n, req, res);
      if (res.status == 200 || res.status == -1) {
        res.status = 200;
        std::lock_guard lock(mu_);
        const auto body = nlohmann::json::parse(req.body);
        for (const auto& d : body["TraceSegmentDocuments"]) docs_.push_back(d.get<std::string>());
        if (res.body.empty()) res.set_content(R"({"UnprocessedTraceSegments":[]})", "application/json");
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeXray() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> docs() {
    std::lock_guard lock(mu_);
    return docs_;
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<std::string> auth_headers() {
    std::lock_guard lock(mu_);
    return auth_headers_;
  }

 private:
  std::function<void(int, const httplib::Request&, httplib::Response&)> respond_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  int requests_ = 0;
  std::vector<std::string> docs_;
  std::vector<std::string> auth_headers_;
};

std::vector<std::string> Segments(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(R"({"name":"s)" + std::to_string(i) + R"(","id":"x"})");
  return v;
}

struct ExporterOptions {
  int concurrency = 2;
  SenderOptions sender;
  pipeline::RetryOptions retry;
  std::chrono::milliseconds flush = 10ms;
};

ExporterOptions Options(const std::string& url) {
  ExporterOptions o;
  o.concurrency = 2;
  o.sender.xray.endpoint = url;
  o.sender.xray.region = "us-east-1";
  o.sender.http.timeout = 500ms;
  o.retry.initial_backoff = 10ms;
  o.retry.max_backoff = 50ms;
  o.retry.max_attempts = 5;
  return o;
}

// The sender in the pipeline's exporter, as the daemon runs it.
class XrayExporter {
 public:
  XrayExporter(const ExporterOptions& o, aws::CredentialsProvider* creds)
      : sender_(Make(o.sender, creds)), exporter_(PipelineOptions(o), *sender_) {}
  void Start() { exporter_.Start(); }
  void Offer(std::vector<std::string>& docs) { exporter_.Offer(docs); }
  void Stop(std::chrono::milliseconds grace) { exporter_.Stop(grace); }
  int64_t queued() const { return exporter_.metrics().Get().queued; }

 private:
  static std::unique_ptr<XraySender> Make(const SenderOptions& o, aws::CredentialsProvider* creds) {
    auto created = XraySender::Create(o, creds);
    EXPECT_TRUE(created);
    return created ? std::move(*created) : nullptr;
  }
  static pipeline::ExporterOptions PipelineOptions(const ExporterOptions& o) {
    pipeline::ExporterOptions p;
    p.queue_bytes = 1 << 20;
    p.flush_interval = o.flush;
    p.senders = o.concurrency;
    p.retry = o.retry;
    return p;
  }
  std::unique_ptr<XraySender> sender_;
  pipeline::Exporter exporter_;
};

class XraySenderTest : public ::testing::Test {
 protected:
  void SetUp() override { GlobalMetrics().ResetForTest(); }
};

TEST_F(XraySenderTest, DeliversEverythingInBatchesOfFifty) {
  FakeXray server([](int, const httplib::Request&, httplib::Response& res) { res.status = 200; });
  aws::StaticCredentialsProvider creds({"AK", "SK", ""}, "test");
  XrayExporter exporter(Options(server.url()), &creds);
  exporter.Start();
  auto segs = Segments(120);
  exporter.Offer(segs);
  exporter.Stop(5s);
  auto docs = server.docs();
  ASSERT_EQ(docs.size(), 120u) << server.requests();
  EXPECT_EQ(std::set<std::string>(docs.begin(), docs.end()).size(), 120u);
  EXPECT_EQ(server.requests(), 3);  // 50 + 50 + 20
  EXPECT_EQ(GlobalMetrics().segments_sent.load(), 120u);
  EXPECT_EQ(exporter.queued(), 0);
  for (const auto& a : server.auth_headers())
    EXPECT_EQ(a.rfind("AWS4-HMAC-SHA256 Credential=AK/", 0), 0u) << a;
}

TEST_F(XraySenderTest, RetriesServerErrorsThrottlingAndStallsUntilDelivered) {
  // 500, throttle, stall past the client timeout, then success: nothing is lost.
  FakeXray server([](int n, const httplib::Request&, httplib::Response& res) {
    switch (n) {
      case 0: res.status = 500; break;
      case 1:
        res.status = 429;
        res.set_content(R"({"__type":"ThrottledException","message":"Rate exceeded"})", "application/json");
        break;
      case 2: std::this_thread::sleep_for(800ms); res.status = 200; break;
      default: res.status = 200;
    }
  });
  auto opts = Options(server.url());
  opts.concurrency = 1;
  XrayExporter exporter(opts, nullptr);
  exporter.Start();
  auto segs = Segments(10);
  exporter.Offer(segs);
  exporter.Stop(10s);
  EXPECT_GE(server.requests(), 4);
  EXPECT_EQ(GlobalMetrics().segments_sent.load(), 10u);
  EXPECT_EQ(GlobalMetrics().export_retries.load(), 3u);
  EXPECT_EQ(GlobalMetrics().export_requests_throttled.load(), 1u);
}

TEST_F(XraySenderTest, NeverRetriesValidationErrors) {
  FakeXray server([](int, const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    res.set_content(R"({"__type":"InvalidRequestException","message":"nope"})", "application/json");
  });
  XrayExporter exporter(Options(server.url()), nullptr);
  exporter.Start();
  auto segs = Segments(3);
  exporter.Offer(segs);
  exporter.Stop(5s);
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(GlobalMetrics().Failed(FailReason::kPermanentError), 3u);
}

TEST_F(XraySenderTest, GivesUpAfterMaxAttempts) {
  FakeXray server([](int, const httplib::Request&, httplib::Response& res) { res.status = 503; });
  XrayExporter exporter(Options(server.url()), nullptr);
  exporter.Start();
  auto segs = Segments(4);
  exporter.Offer(segs);
  exporter.Stop(10s);
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(GlobalMetrics().Failed(FailReason::kRetriesExhausted), 4u);
  EXPECT_EQ(exporter.queued(), 0);
}

TEST_F(XraySenderTest, UnprocessedAreCountedNotRetried) {
  FakeXray server([](int, const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(R"({"UnprocessedTraceSegments":[{"Id":"x","ErrorCode":"InvalidTraceId","Message":"bad"}]})",
                    "application/json");
  });
  XrayExporter exporter(Options(server.url()), nullptr);
  exporter.Start();
  auto segs = Segments(5);
  exporter.Offer(segs);
  exporter.Stop(5s);
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(GlobalMetrics().segments_sent.load(), 4u);
  EXPECT_EQ(GlobalMetrics().Failed(FailReason::kUnprocessed), 1u);
}

TEST_F(XraySenderTest, ShutdownIsBoundedWhenTheApiHangs) {
  FakeXray server([](int, const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(3s);
    res.status = 200;
  });
  auto opts = Options(server.url());
  opts.sender.http.timeout = 10s;
  XrayExporter exporter(opts, nullptr);
  exporter.Start();
  auto segs = Segments(200);
  exporter.Offer(segs);
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  exporter.Stop(300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // Every segment is accounted for: nothing vanished without a counter.
  EXPECT_EQ(GlobalMetrics().segments_sent.load() + GlobalMetrics().Failed(FailReason::kShutdown), 200u);
  EXPECT_EQ(exporter.queued(), 0);
}

// Fails the first `failures` calls, then hands out keys.
class FlakyCredentials final : public aws::CredentialsProvider {
 public:
  explicit FlakyCredentials(int failures) : failures_(failures) {}
  Result<aws::Credentials> Get() override {
    if (failures_.fetch_sub(1) > 0) return Error::Retryable("STS unreachable");
    return aws::Credentials{"AK", "SK", ""};
  }
  std::string Describe() const override { return "flaky"; }

 private:
  std::atomic<int> failures_;
};

TEST_F(XraySenderTest, NeverSendsUnsignedWhenCredentialsAreMissing) {
  FakeXray server([](int, const httplib::Request&, httplib::Response& res) { res.status = 200; });
  FlakyCredentials creds(2);
  auto opts = Options(server.url());
  opts.concurrency = 1;
  XrayExporter exporter(opts, &creds);
  exporter.Start();
  auto segs = Segments(7);
  exporter.Offer(segs);
  exporter.Stop(5s);
  EXPECT_EQ(GlobalMetrics().segments_sent.load(), 7u);
  ASSERT_EQ(server.requests(), 1);  // the two credential failures never reached the API
  for (const auto& a : server.auth_headers()) EXPECT_EQ(a.rfind("AWS4-HMAC-SHA256 Credential=AK/", 0), 0u) << a;
}

}  // namespace
}  // namespace xrayd::xray
