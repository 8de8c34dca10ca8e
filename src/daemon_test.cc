// Region, endpoint and metadata wiring of the daemon: what is looked up where, and that local
// mode (-o) makes no instance metadata lookups at all.
#include "daemon.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/support/fake_aws.h"
#include "tests/support/map_env.h"

namespace xrayd {
namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;

// The daemon's environment: only `m`, with HOME pointing nowhere so no real ~/.aws files are read.
aws::EnvLookup MapEnv(Env m) {
  m.emplace("HOME", "/nonexistent");
  return testing::MapEnv(std::move(m));
}

cli::Config LocalConfig(std::string region = "") {
  cli::Config c;
  c.local_mode = true;
  c.region = std::move(region);
  return c;
}

std::string Url(const cli::Config& c, const Env& env) {
  auto r = ResolveXrayEndpoint(c, MapEnv(env));
  return r ? r->url + " " + r->signing_region : "error: " + r.error().message;
}

TEST(ResolveXrayEndpoint, OverridesInSdkOrderButTheConfigFileWins) {
  EXPECT_EQ(Url(LocalConfig("eu-west-1"), {}), "https://xray.eu-west-1.amazonaws.com eu-west-1");
  EXPECT_EQ(Url(LocalConfig("eu-west-1"), {{"AWS_ENDPOINT_URL", "http://127.0.0.1:1"}}), "http://127.0.0.1:1 eu-west-1");
  EXPECT_EQ(Url(LocalConfig("eu-west-1"), {{"AWS_ENDPOINT_URL", "http://127.0.0.1:1"}, {"AWS_ENDPOINT_URL_XRAY", "http://127.0.0.1:2"}}),
            "http://127.0.0.1:2 eu-west-1");
  auto with_config = LocalConfig("eu-west-1");
  with_config.endpoint = "http://127.0.0.1:3/prefix";
  EXPECT_EQ(Url(with_config, {{"AWS_ENDPOINT_URL_XRAY", "http://127.0.0.1:2"}}), "http://127.0.0.1:3/prefix eu-west-1");
  EXPECT_EQ(Url(LocalConfig("eu-west-1"), {{"AWS_ENDPOINT_URL_XRAY", "http://127.0.0.1:2"},
                                           {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}}),
            "https://xray.eu-west-1.amazonaws.com eu-west-1");
  EXPECT_EQ(Url(LocalConfig(), {{"AWS_ENDPOINT_URL_XRAY", "http://127.0.0.1:2"}}), "http://127.0.0.1:2 us-east-1");
  EXPECT_EQ(Url(LocalConfig("us-east-1-fips"), {}), "https://xray-fips.us-east-1.amazonaws.com us-east-1");
  EXPECT_EQ(Url(LocalConfig(), {{"AWS_DEFAULT_REGION", "ap-south-1"}}), "https://xray.ap-south-1.amazonaws.com ap-south-1");
  EXPECT_NE(Url(LocalConfig(), {}).find("Cannot fetch region variable"), std::string::npos);
}

// -m is a total (issue #12): with several exporters each queue gets an even share, never -m each.
TEST(ExporterOptionsFor, TheMemoryBoundIsSplitEvenlyOverTheExporters) {
  auto c = LocalConfig("eu-west-1");
  c.buffer_memory_mb = 30;
  ASSERT_EQ(ExporterNames(c), std::vector<std::string>{"xray"});
  EXPECT_EQ(ExporterOptionsFor(c, "xray", true).queue_bytes, 30u << 20);
  c.serve = true;
  c.forward = true;
  ASSERT_EQ(ExporterNames(c), (std::vector<std::string>{"store", "xray"}));
  c.otlp_endpoint = "http://127.0.0.1:1";
  const auto names = ExporterNames(c);
  ASSERT_EQ(names.size(), 3u);
  uint64_t total = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto o = ExporterOptionsFor(c, names[i], i == 0);
    EXPECT_EQ(o.queue_bytes, (30u << 20) / 3) << names[i];
    total += o.queue_bytes;
  }
  EXPECT_LE(total, 30u << 20);
  const std::string described = DescribePipeline(c, "http://127.0.0.1:2");
  EXPECT_NE(described.find("memory: 30 MB (-m) split evenly over the 3 exporters"), std::string::npos) << described;
  EXPECT_NE(described.find("exporter xray -> http://127.0.0.1:2: queue 10.0 MB"), std::string::npos) << described;
}

TEST(ResolveXrayEndpoint, RegionFromInstanceMetadataOnlyOutsideLocalMode) {
  testing::FakeImds imds({.require_token = true, .region = "me-central-1"});
  const Env env = {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()}, {"AWS_DEFAULT_REGION", "sa-east-1"}};
  cli::Config ec2;  // not local mode
  EXPECT_EQ(Url(ec2, env), "https://xray.me-central-1.amazonaws.com me-central-1");
  EXPECT_EQ(imds.token_requests(), 1);
  const int before = imds.requests();
  EXPECT_EQ(Url(LocalConfig(), env), "https://xray.sa-east-1.amazonaws.com sa-east-1");
  EXPECT_EQ(imds.requests(), before);
  Env disabled = env;
  disabled["AWS_EC2_METADATA_DISABLED"] = "true";
  EXPECT_NE(Url(ec2, disabled).find("Cannot fetch region variable"), std::string::npos);
  EXPECT_EQ(imds.requests(), before);
}

// A whole daemon on loopback ports against a fake X-Ray (PutTelemetryRecords only here).
class DaemonMetadataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GlobalMetrics().ResetForTest();
    xray_.server().Post("/TelemetryRecords", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      telemetry_.push_back(req.body);
      res.set_content("{}", "application/json");
    });
    xray_.Start();
  }
  void TearDown() override { GlobalMetrics().ResetForTest(); }

  cli::Config Config(bool local_mode) {
    cli::Config c;
    c.local_mode = local_mode;
    c.endpoint = xray_.url();
    c.udp_address = "127.0.0.1:0";
    c.tcp_address = "127.0.0.1:0";
    c.buffer_memory_mb = 3;
    c.concurrency = 1;
    c.telemetry_interval_ms = 100;
    c.shutdown_grace_ms = 100;
    return c;
  }

  void SendDatagram(int port) {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const std::string d = "{\"format\":\"json\",\"version\":1}\nnot json";
    sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    close(fd);
  }

  std::vector<std::string> telemetry() {
    std::lock_guard lock(mu_);
    return telemetry_;
  }

  testing::LocalHttpServer xray_;
  std::mutex mu_;
  std::vector<std::string> telemetry_;
};

TEST_F(DaemonMetadataTest, LocalModeMakesNoMetadataLookups) {
  testing::FakeImds imds({});
  Daemon daemon(Config(true), MapEnv({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()},
                                      {"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                                      {"AWS_REGION", "eu-west-1"}}));
  auto cfg = Config(true);
  ASSERT_TRUE(daemon.Start());
  SendDatagram(daemon.udp_port());
  std::this_thread::sleep_for(400ms);
  daemon.Shutdown();
  EXPECT_EQ(imds.requests(), 0);
  auto records = telemetry();
  ASSERT_FALSE(records.empty());
  const auto body = nlohmann::json::parse(records.back());
  EXPECT_EQ(body["EC2InstanceId"], "");
  EXPECT_EQ(body["Hostname"], "");
}

TEST_F(DaemonMetadataTest, OutsideLocalModeRegionAndTelemetryIdentityComeFromInstanceMetadata) {
  testing::FakeImds imds({.require_token = true, .region = "eu-south-2"});
  auto config = Config(false);
  config.resource_arn = "arn:aws:ec2:eu-south-2:123456789012:instance/i-0123456789abcdef0";
  Daemon daemon(config, MapEnv({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()},
                                {"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                                {"AWS_HOSTNAME", "my-host"}}));
  ASSERT_TRUE(daemon.Start());
  SendDatagram(daemon.udp_port());
  std::this_thread::sleep_for(400ms);
  daemon.Shutdown();
  const auto paths = imds.paths();
  EXPECT_NE(std::find(paths.begin(), paths.end(), "/latest/meta-data/placement/region"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "/latest/meta-data/instance-id"), paths.end());
  EXPECT_EQ(std::find(paths.begin(), paths.end(), "/latest/meta-data/hostname"), paths.end()) << "AWS_HOSTNAME given";
  auto records = telemetry();
  ASSERT_FALSE(records.empty());
  const auto body = nlohmann::json::parse(records.back());
  EXPECT_EQ(body["EC2InstanceId"], "i-0123456789abcdef0");
  EXPECT_EQ(body["Hostname"], "my-host");
  EXPECT_EQ(body["ResourceARN"], config.resource_arn);
}

// `xrayd serve --forward`: every UDP segment reaches both exporters, each counted under its name.
TEST_F(DaemonMetadataTest, ServeForwardStoresLocallyAndSendsToXray) {
  std::vector<std::string> forwarded;
  testing::LocalHttpServer aws;
  aws.server().Post("/TraceSegments", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu_);
    const auto body = nlohmann::json::parse(req.body);
    for (const auto& d : body["TraceSegmentDocuments"]) forwarded.push_back(d.get<std::string>());
    res.set_content(R"({"UnprocessedTraceSegments":[]})", "application/json");
  });
  aws.Start();
  auto config = Config(true);
  config.endpoint = aws.url();
  config.serve = true;
  config.forward = true;
  config.region = "eu-west-1";
  config.listen_address = "127.0.0.1:0";
  config.data_dir = (std::filesystem::temp_directory_path() / ("xrayd-daemon-forward-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(config.data_dir);
  Daemon daemon(config, MapEnv({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"}}));
  ASSERT_TRUE(daemon.Start());
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string doc = nlohmann::json{{"trace_id", "1-5759e988-bd862e3fe1be46a994272793"}, {"id", "70de5b6f19ff9a0a"},
                                         {"name", "fwd"}, {"start_time", now - 1}, {"end_time", now}}
                              .dump();
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(daemon.udp_port()));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string d = "{\"format\":\"json\",\"version\":1}\n" + doc;
  sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  close(fd);
  auto& store = GlobalMetrics().ForExporter("store");
  auto& xray = GlobalMetrics().ForExporter("xray");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((store.Get().delivered < 1 || xray.Get().delivered < 1) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  daemon.Shutdown();
  EXPECT_EQ(store.Get().delivered, 1u);
  EXPECT_EQ(xray.Get().delivered, 1u);
  std::lock_guard lock(mu_);
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(forwarded[0], doc);
  EXPECT_EQ(GlobalMetrics().segments_sent.load(), 1u) << "the first exporter (store) keeps the global counters";
  std::filesystem::remove_all(config.data_dir);
}

}  // namespace
}  // namespace xrayd
