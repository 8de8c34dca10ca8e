#include "cli/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "tests/support/map_env.h"

namespace xrayd::cli {
namespace {

using testing::MapEnv;

std::string WriteTemp(const std::string& text) {
  static int n = 0;
  auto p = std::filesystem::temp_directory_path() / ("xrayd-cfg-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".yaml");
  std::ofstream(p) << text;
  return p.string();
}

constexpr char kFullV2[] = R"(Version: 2
TotalBufferSizeMB: 24
Concurrency: 4
Region: "eu-west-1"
Endpoint: "http://127.0.0.1:2020"
Socket:
  UDPAddress: "0.0.0.0:3000"
  TCPAddress: "0.0.0.0:3001"
Logging:
  LogRotation: false
  LogLevel: "warn"
  LogPath: "/tmp/xrayd.log"
LocalMode: true
ResourceARN: "arn:aws:ec2:eu-west-1:123:instance/i-1"
RoleARN: "arn:aws:iam::123:role/xray"
NoVerifySSL: true
ProxyAddress: "http://proxy:3128"
)";

TEST(ConfigFile, ReadsEveryVersion2Key) {
  Config c;
  ASSERT_TRUE(ApplyConfigFile(kFullV2, "cfg.yaml", c));
  EXPECT_EQ(c.buffer_memory_mb, 24);
  EXPECT_EQ(c.concurrency, 4);
  EXPECT_EQ(c.region, "eu-west-1");
  EXPECT_EQ(c.endpoint, "http://127.0.0.1:2020");
  EXPECT_EQ(c.udp_address, "0.0.0.0:3000");
  EXPECT_EQ(c.tcp_address, "0.0.0.0:3001");
  EXPECT_FALSE(c.log_rotation);
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_EQ(c.log_file, "/tmp/xrayd.log");
  EXPECT_TRUE(c.local_mode);
  EXPECT_EQ(c.resource_arn, "arn:aws:ec2:eu-west-1:123:instance/i-1");
  EXPECT_EQ(c.role_arn, "arn:aws:iam::123:role/xray");
  EXPECT_TRUE(c.no_verify_ssl);
  EXPECT_EQ(c.proxy_address, "http://proxy:3128");
}

TEST(ConfigFile, Version1ReadsTheSame) {
  Config c;
  ASSERT_TRUE(ApplyConfigFile("Version: 1\nRegion: us-west-2\nSocket:\n  UDPAddress: 0.0.0.0:2000\n", "v1", c));
  EXPECT_EQ(c.region, "us-west-2");
  EXPECT_EQ(c.udp_address, "0.0.0.0:2000");
}

TEST(ConfigFile, ZeroAndEmptyMeanDefault) {
  Config c;
  ASSERT_TRUE(ApplyConfigFile("Version: 2\nConcurrency: 0\nRegion: \"\"\nSocket:\n  UDPAddress: \"\"\n", "z", c));
  EXPECT_EQ(c.concurrency, 8);
  EXPECT_EQ(c.udp_address, "127.0.0.1:2000");
}

TEST(ConfigFile, ErrorsNameTheKey) {
  struct Case {
    const char* yaml;
    const char* must_mention;
  } cases[] = {
      {"Version: 2\nRegoin: us-east-1\n", "Regoin: unknown key"},
      {"Version: 2\nSocket:\n  UDPAdress: x:1\n", "Socket.UDPAdress: unknown key"},
      {"Version: 2\nConcurrency: lots\n", "Concurrency: must be an integer"},
      {"Version: 2\nLocalMode: maybe\n", "LocalMode: must be true or false"},
      {"Version: 3\n", "Version: must be 1 or 2"},
      {"Region: us-east-1\n", "Version: missing"},
      {"Version: 2\nMemoryLimit: 10\n", "MemoryLimit: is from the X-Ray daemon 2.x"},
      {"Version: 2\nSocket: 5\n", "Socket: must be a mapping"},
      {"Version: 2\n  bad: [indent\n", "not valid YAML"},
  };
  for (const auto& c : cases) {
    Config cfg;
    auto st = ApplyConfigFile(c.yaml, "cfg.yaml", cfg);
    ASSERT_FALSE(st) << c.yaml;
    EXPECT_NE(st.error().message.find(c.must_mention), std::string::npos) << st.error().message;
  }
  Config lenient;  // a default-location file ignores unknown keys, as AWS's daemon does
  EXPECT_TRUE(ApplyConfigFile("Version: 2\nRegoin: x\n", "cfg.yaml", lenient, false));
}

TEST(LoadConfig, DefaultsMatchAwsDaemon) {
  auto c = LoadConfig({}, MapEnv({}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->udp_address, "127.0.0.1:2000");
  EXPECT_EQ(c->tcp_address, "127.0.0.1:2000");
  EXPECT_EQ(c->concurrency, 8);
  EXPECT_EQ(c->log_level, "prod");
  EXPECT_TRUE(c->log_rotation);
  EXPECT_FALSE(c->local_mode);
  EXPECT_TRUE(c->health_address.empty());  // off by default
  EXPECT_EQ(c->BufferBytes(0), 3u << 20);                  // never under 3 MB
  EXPECT_EQ(c->BufferBytes(24ull << 30), 245ull << 20);    // 1% of 24 GiB, whole MB
}

TEST(LoadConfig, FlagsOverrideFileWhichOverridesEnvironment) {
  const auto path = WriteTemp("Version: 2\nRegion: eu-west-1\nTotalBufferSizeMB: 10\nSocket:\n  UDPAddress: 0.0.0.0:2000\n");
  auto env = MapEnv({{"AWS_REGION", "ap-south-1"}});
  auto from_file = LoadConfig({"-c", path}, env);
  ASSERT_TRUE(from_file) << from_file.error().message;
  EXPECT_EQ(from_file->region, "eu-west-1");
  EXPECT_EQ(from_file->buffer_memory_mb, 10);
  auto flags = LoadConfig({"--config=" + path, "-n", "us-west-2", "-m=20", "-bind", "127.0.0.1:4000"}, env);
  ASSERT_TRUE(flags);
  EXPECT_EQ(flags->region, "us-west-2");
  EXPECT_EQ(flags->buffer_memory_mb, 20);
  EXPECT_EQ(flags->udp_address, "127.0.0.1:4000");
  auto env_only = LoadConfig({}, env);
  ASSERT_TRUE(env_only);
  EXPECT_EQ(env_only->region, "ap-south-1");
  std::remove(path.c_str());
}

TEST(LoadConfig, ProxyFromHttpsProxyUnlessSet) {
  auto env = MapEnv({{"HTTPS_PROXY", "http://envproxy:3128"}});
  EXPECT_EQ(LoadConfig({}, env)->proxy_address, "http://envproxy:3128");
  EXPECT_EQ(LoadConfig({"-p", "http://flag:1"}, env)->proxy_address, "http://flag:1");
}

TEST(LoadConfig, BadValuesAreClearErrors) {
  auto m = LoadConfig({"-m", "2"}, MapEnv({}));
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("at least 3"), std::string::npos);
  auto l = LoadConfig({"-l", "loud"}, MapEnv({}));
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().message.find("log level"), std::string::npos);
  auto i = LoadConfig({"-m", "ten"}, MapEnv({}));
  ASSERT_FALSE(i);
  EXPECT_NE(i.error().message.find("-m"), std::string::npos);
  auto f = LoadConfig({"-c", "/nonexistent/cfg.yaml"}, MapEnv({}));
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("/nonexistent/cfg.yaml"), std::string::npos);
  EXPECT_FALSE(LoadConfig({"--endpoint", "ftp://x"}, MapEnv({})));
}

TEST(LoadConfig, HelpVersionAndStrayArguments) {
  EXPECT_TRUE(LoadConfig({"-h"}, MapEnv({}))->show_help);
  EXPECT_TRUE(LoadConfig({"--version"}, MapEnv({}))->show_version);
  auto stray = LoadConfig({"-o", "stray", "-v"}, MapEnv({}));
  ASSERT_TRUE(stray);
  EXPECT_FALSE(stray->show_version);  // Go's flag stops at "stray"
  EXPECT_EQ(stray->ignored_arguments.size(), 2u);
}

TEST(LoadConfig, CheckConfigRoundTrips) {
  auto c = LoadConfig({"-n", "eu-west-1", "--health-address", "127.0.0.1:9100", "--check-config"}, MapEnv({}));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->check_config);
  Config again;
  ASSERT_TRUE(ApplyConfigFile(c->ToYaml(), "roundtrip", again)) ;
  EXPECT_EQ(again.region, "eu-west-1");
  EXPECT_EQ(again.health_address, "127.0.0.1:9100");
}

TEST(Duration, UnitsAndErrors) {
  EXPECT_EQ(*ParseDuration("30s"), 30'000);
  EXPECT_EQ(*ParseDuration("5m"), 300'000);
  EXPECT_EQ(*ParseDuration("2h"), 7'200'000);
  EXPECT_EQ(*ParseDuration("1d"), 86'400'000);
  EXPECT_EQ(*ParseDuration("250ms"), 250);
  EXPECT_EQ(*ParseDuration("1.5s"), 1500);
  EXPECT_EQ(*ParseDuration("90"), 90'000);  // a bare number is seconds
  for (const char* bad : {"", "5x", "m", "-1s", "1e9h", "nan", "5 m"}) EXPECT_FALSE(ParseDuration(bad)) << bad;
  EXPECT_EQ(FormatDuration(300'000), "5m");
  EXPECT_EQ(FormatDuration(86'400'000), "24h");
  EXPECT_EQ(FormatDuration(1500), "1500ms");
}

TEST(LoadConfig, PipelineFlagsAndKeys) {
  auto d = LoadConfig({}, MapEnv({}));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->spool_dir, "");
  EXPECT_EQ(d->spool_max_mb, 1024);
  EXPECT_EQ(d->spool_max_age_ms, 24LL * 3600 * 1000);
  EXPECT_EQ(d->retry_max_elapsed_ms, 5LL * 60 * 1000);
  EXPECT_EQ(d->max_attempts, 0) << "elapsed time, not attempts, bounds retries by default";
  EXPECT_FALSE(d->forward);

  const auto file = WriteTemp("Version: 2\nXrayd:\n  SpoolDir: /var/spool/xrayd\n  SpoolMaxMB: 64\n  SpoolMaxAge: 2h\n"
                              "  RetryMaxElapsed: 30s\n  Forward: true\n  MaxAttempts: 3\n");
  auto f = LoadConfig({"serve", "-c", file}, MapEnv({}));
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->spool_dir, "/var/spool/xrayd");
  EXPECT_EQ(f->spool_max_mb, 64);
  EXPECT_EQ(f->spool_max_age_ms, 2 * 3600 * 1000);
  EXPECT_EQ(f->retry_max_elapsed_ms, 30'000);
  EXPECT_TRUE(f->forward);
  EXPECT_EQ(f->max_attempts, 3);

  auto flags = LoadConfig({"serve", "-c", file, "--spool-dir", "/tmp/s", "--spool-max-mb", "8", "--spool-max-age", "10m",
                           "--retry-max-elapsed", "1m", "--forward=false"},
                          MapEnv({}));
  ASSERT_TRUE(flags) << flags.error().message;
  EXPECT_EQ(flags->spool_dir, "/tmp/s");
  EXPECT_EQ(flags->spool_max_mb, 8);
  EXPECT_EQ(flags->spool_max_age_ms, 600'000);
  EXPECT_EQ(flags->retry_max_elapsed_ms, 60'000);
  EXPECT_FALSE(flags->forward);

  auto again = Config();
  ASSERT_TRUE(ApplyConfigFile(f->ToYaml(), "roundtrip", again));
  EXPECT_EQ(again.spool_max_age_ms, f->spool_max_age_ms);
  EXPECT_EQ(again.retry_max_elapsed_ms, f->retry_max_elapsed_ms);
  EXPECT_EQ(again.spool_dir, f->spool_dir);
  std::filesystem::remove(file);
}

TEST(LoadConfig, PipelineMistakesNameTheSetting) {
  auto age = LoadConfig({"--spool-max-age", "soon"}, MapEnv({}));
  ASSERT_FALSE(age);
  EXPECT_NE(age.error().message.find("spool-max-age"), std::string::npos) << age.error().message;
  auto forward = LoadConfig({"--forward"}, MapEnv({}));
  ASSERT_FALSE(forward);
  EXPECT_NE(forward.error().message.find("--forward is for `xrayd serve`"), std::string::npos);
  const auto file = WriteTemp("Version: 2\nXrayd:\n  RetryMaxElapsed: forever\n");
  auto key = LoadConfig({"-c", file}, MapEnv({}));
  ASSERT_FALSE(key);
  EXPECT_NE(key.error().message.find("Xrayd.RetryMaxElapsed"), std::string::npos) << key.error().message;
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace xrayd::cli
