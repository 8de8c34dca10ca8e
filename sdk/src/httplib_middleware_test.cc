// The middleware in-process: a real cpp-httplib server, real HTTP requests, segments sent over a real
// UDP socket to a listener standing in for the daemon.
#include "xray/httplib_middleware.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <stdexcept>
#include <thread>

#include "test_udp_listener.h"
#include "xray/curl_helper.h"
#include "xray/ids.h"
#include "xray/log.h"

namespace xray {
namespace {

class AlwaysSampler : public Sampler {
 public:
  bool ShouldSample(const SamplingRequest&) override { return true; }
};

// Every request sampled, segments sent from the calling thread to a local UDP listener.
RecorderConfig SampleEverything(const std::string& service, uint16_t daemon_port) {
  RecorderConfig c;
  c.service_name = service;
  c.sampler = std::make_shared<AlwaysSampler>();
  DaemonAddress a;
  a.udp_port = daemon_port;
  c.emitter = std::make_shared<UdpEmitter>(a);
  return c;
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

class MiddlewareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    recorder_ = std::make_unique<Recorder>(SampleEverything("front", daemon_.port()));

    HttpServerTracingOptions opts;
    opts.segment_name = [](const httplib::Request& req) {
      return req.path == "/downstream" ? std::string("back") : std::string();
    };
    InstrumentServer(server_, *recorder_, opts);
    server_.Get("/downstream", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server_.Get("/boom", [](const httplib::Request&, httplib::Response&) -> void {
      throw std::runtime_error("kaput");
    });
    server_.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      CURL* easy = curl_easy_init();
      curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, Discard);
      CURLcode rc = TracedPerform(*recorder_, easy, "http://127.0.0.1:" + std::to_string(port_) + "/downstream");
      curl_easy_cleanup(easy);
      res.set_content(std::string("trace ") + recorder_->CurrentSegment()->trace_id() +
                          (rc == CURLE_OK ? " ok" : " failed"),
                      "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Json NextSegment() {
    auto got = daemon_.Receive();
    if (!got) {
      ADD_FAILURE() << "no datagram";
      return Json();
    }
    EXPECT_EQ(got->substr(0, kDaemonHeader.size()), kDaemonHeader);
    return Json::parse(got->substr(kDaemonHeader.size()));
  }

  httplib::Client Client() { return httplib::Client("127.0.0.1", port_); }

  testing::UdpListener daemon_;
  std::unique_ptr<Recorder> recorder_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(MiddlewareTest, ContinuesIncomingTraceAndSendsSegment) {
  const std::string root = "1-5759e988-bd862e3fe1be46a994272793";
  auto res = Client().Get("/downstream?x=1", {{"X-Amzn-Trace-Id", "Root=" + root + ";Parent=53995c3f42cd8ad8;Sampled=1"},
                                              {"User-Agent", "sdk-test"},
                                              {"X-Forwarded-For", "203.0.113.7, 10.0.0.1"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("X-Amzn-Trace-Id"), "Root=" + root);

  Json seg = NextSegment();
  EXPECT_EQ(seg["name"], "back");
  EXPECT_EQ(seg["trace_id"], root);
  EXPECT_EQ(seg["parent_id"], "53995c3f42cd8ad8");
  EXPECT_TRUE(IsValidSegmentId(seg["id"].get<std::string>()));
  EXPECT_TRUE(seg.contains("end_time"));
  EXPECT_FALSE(seg.contains("in_progress"));
  EXPECT_EQ(seg["http"]["request"]["method"], "GET");
  EXPECT_EQ(seg["http"]["request"]["url"], "http://127.0.0.1:" + std::to_string(port_) + "/downstream?x=1");
  EXPECT_EQ(seg["http"]["request"]["user_agent"], "sdk-test");
  EXPECT_EQ(seg["http"]["request"]["client_ip"], "203.0.113.7");
  EXPECT_EQ(seg["http"]["request"]["x_forwarded_for"], true);
  EXPECT_EQ(seg["http"]["response"]["status"], 200);
  EXPECT_EQ(seg["http"]["response"]["content_length"], 2);
}

TEST_F(MiddlewareTest, DownstreamCallMakesTwoLinkedSegments) {
  auto res = Client().Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  auto header = TraceHeader::Parse(res->get_header_value("X-Amzn-Trace-Id"));
  ASSERT_FALSE(header.root.empty());
  EXPECT_EQ(res->body, "trace " + header.root + " ok");

  std::map<std::string, Json> by_name;
  for (int i = 0; i < 2; ++i) {
    Json s = NextSegment();
    by_name[s["name"].get<std::string>()] = s;
  }
  ASSERT_EQ(by_name.count("front"), 1u);
  ASSERT_EQ(by_name.count("back"), 1u);
  const Json& front = by_name["front"];
  const Json& back = by_name["back"];
  EXPECT_EQ(front["trace_id"], header.root);
  EXPECT_EQ(back["trace_id"], header.root);
  EXPECT_FALSE(front.contains("parent_id"));
  const Json& call = front["subsegments"][0];
  EXPECT_EQ(call["name"], "127.0.0.1");
  EXPECT_EQ(call["namespace"], "remote");
  EXPECT_EQ(call["http"]["request"]["method"], "GET");
  EXPECT_EQ(call["http"]["request"]["traced"], true);
  EXPECT_EQ(call["http"]["response"]["status"], 200);
  EXPECT_EQ(back["parent_id"], call["id"]);  // the downstream segment hangs off the call
}

TEST_F(MiddlewareTest, SampledRequestIsAnswered) {
  auto res = Client().Get("/downstream", {{"X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("X-Amzn-Trace-Id"), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
  NextSegment();
}

TEST_F(MiddlewareTest, ErrorsAndFaults) {
  auto missing = Client().Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  Json seg = NextSegment();
  EXPECT_EQ(seg["error"], true);
  EXPECT_EQ(seg["http"]["response"]["status"], 404);

  auto boom = Client().Get("/boom");
  ASSERT_TRUE(boom);
  EXPECT_EQ(boom->status, 500);
  seg = NextSegment();
  EXPECT_EQ(seg["fault"], true);
  EXPECT_EQ(seg["cause"]["exceptions"][0]["message"], "kaput");
}

TEST_F(MiddlewareTest, UnsampledRequestIsNotSentButStillPropagates) {
  auto res = Client().Get("/", {{"X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "trace 1-5759e988-bd862e3fe1be46a994272793 ok");
  EXPECT_FALSE(daemon_.Receive(300));  // neither front nor back (the call carried Sampled=0)
}

// The application's own pre/post-routing handlers keep working, inside the traced request.
TEST(Middleware, ChainsTheApplicationsRoutingHandlers) {
  testing::UdpListener daemon;
  Recorder recorder(SampleEverything("gate", daemon.port()));

  httplib::Server server;
  HttpServerTracingOptions opts;
  opts.pre_routing = [&recorder](const httplib::Request& req, httplib::Response& res) {
    recorder.CurrentSegment()->PutAnnotation("gate", req.path);  // the segment already exists
    if (req.path != "/blocked") return httplib::Server::HandlerResponse::Unhandled;
    res.status = 403;
    res.set_content("no", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  };
  opts.post_routing = [](const httplib::Request&, httplib::Response& res) { res.set_header("X-Post", "1"); };
  InstrumentServer(server, recorder, opts);
  server.Get("/open", [](const httplib::Request&, httplib::Response& res) { res.set_content("yes", "text/plain"); });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread listener([&server] { server.listen_after_bind(); });
  for (int i = 0; i < 500 && !server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));

  httplib::Client client("127.0.0.1", port);
  for (const char* path : {"/blocked", "/open"}) {
    auto res = client.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, std::string(path) == "/blocked" ? 403 : 200);
    EXPECT_EQ(res->get_header_value("X-Post"), "1") << path;
    auto got = daemon.Receive();
    ASSERT_TRUE(got) << path;
    Json seg = Json::parse(got->substr(kDaemonHeader.size()));
    EXPECT_EQ(seg["annotations"]["gate"], path);
    EXPECT_EQ(seg["http"]["response"]["status"], res->status);
    EXPECT_EQ(seg.value("error", false), std::string(path) == "/blocked");  // 4xx: error
  }
  server.stop();
  listener.join();
}

TEST(CurlHelper, TransportErrorIsAFault) {
  class Capture : public Emitter {
   public:
    void Send(const Segment& s) noexcept override { doc = s.ToJson(); }
    Json doc;
  };
  auto emitter = std::make_shared<Capture>();
  RecorderConfig c;
  c.emitter = emitter;
  c.sampler = std::make_shared<AlwaysSampler>();
  Recorder recorder(c);
  recorder.BeginSegment("svc");
  CURL* easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  testing::UdpListener taken;  // a port with no TCP listener
  CURLcode rc = TracedPerform(recorder, easy, "http://127.0.0.1:" + std::to_string(taken.port()) + "/", nullptr, "nowhere");
  curl_easy_cleanup(easy);
  recorder.EndSegment();
  EXPECT_NE(rc, CURLE_OK);
  const Json& call = emitter->doc["subsegments"][0];
  EXPECT_EQ(call["name"], "nowhere");
  EXPECT_EQ(call["fault"], true);
  EXPECT_EQ(call["cause"]["exceptions"][0]["remote"], true);
}

}  // namespace
}  // namespace xray
