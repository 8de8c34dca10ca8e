// The "Otlp" section of the config file (cli/config_file.cc) and the --otlp-* flags.
#include <gtest/gtest.h>

#include "cli/config.h"

namespace xrayd::otlp {
namespace {

TEST(OtlpConfig, FileSectionAndFlags) {
  cli::Config c;
  Status s = cli::ApplyConfigFile(R"(Version: 2
Otlp:
  Endpoint: https://tempo.example:4318
  Encoding: json
  Compression: none
  TimeoutSeconds: 3
  InsecureSkipVerify: true
  IndexedAttributes: customer.tier,region
  Listen: 0.0.0.0:4318
  Headers:
    Authorization: Bearer abc
    X-Scope-OrgID: team-a
)", "cfg.yaml", c);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(c.otlp_endpoint, "https://tempo.example:4318");
  EXPECT_EQ(c.otlp_encoding, "json");
  EXPECT_FALSE(c.otlp_gzip);
  EXPECT_EQ(c.otlp_timeout_ms, 3000);
  EXPECT_TRUE(c.otlp_insecure_skip_verify);
  EXPECT_EQ(c.otlp_indexed_attributes, "customer.tier,region");
  EXPECT_EQ(c.otlp_listen, "0.0.0.0:4318");
  ASSERT_EQ(c.otlp_headers.size(), 2u);
  EXPECT_EQ(c.otlp_headers[1].first, "X-Scope-OrgID");
  EXPECT_EQ(c.otlp_headers[1].second, "team-a");

  cli::Config bad;
  Status e = cli::ApplyConfigFile("Version: 2\nOtlp:\n  Compression: zstd\n  Headers: [a]\n  Bogus: 1\n", "cfg.yaml", bad);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("Otlp.Compression"), std::string::npos);
  EXPECT_NE(e.error().message.find("Otlp.Headers"), std::string::npos);
  EXPECT_NE(e.error().message.find("Otlp.Bogus"), std::string::npos);
}

TEST(OtlpConfig, BareOtlpListenMeansTheDefaultPort) {
  aws::EnvLookup none = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  auto c = cli::LoadConfig({"serve", "--otlp-listen", "--listen", "127.0.0.1:2020"}, none);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->otlp_listen, "127.0.0.1:4318");
  auto d = cli::LoadConfig({"serve", "--otlp-listen", "127.0.0.1:5555", "--otlp-endpoint", "http://c:4318"}, none);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->otlp_listen, "127.0.0.1:5555");
  EXPECT_EQ(d->otlp_endpoint, "http://c:4318");
  EXPECT_FALSE(cli::LoadConfig({"serve", "--otlp-encoding", "xml"}, none).ok());
  EXPECT_FALSE(cli::LoadConfig({"serve", "--otlp-endpoint", "ftp://x"}, none).ok());
  auto last = cli::LoadConfig({"serve", "--otlp-listen"}, none);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->otlp_listen, "127.0.0.1:4318");
}

}  // namespace
}  // namespace xrayd::otlp
