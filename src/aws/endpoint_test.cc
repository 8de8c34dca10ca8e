#include "aws/endpoint.h"

#include <gtest/gtest.h>

namespace xrayd::aws {
namespace {

std::string Ep(const std::string& region, bool fips = false, bool dual = false) {
  auto r = ServiceEndpoint("xray", region, {fips, dual});
  return r ? *r : "error: " + r.error().message;
}

TEST(Endpoint, Partitions) {
  EXPECT_EQ(Ep("us-east-1"), "https://xray.us-east-1.amazonaws.com");
  EXPECT_EQ(Ep("eu-central-1"), "https://xray.eu-central-1.amazonaws.com");
  EXPECT_EQ(Ep("cn-north-1"), "https://xray.cn-north-1.amazonaws.com.cn");
  EXPECT_EQ(Ep("cn-northwest-1"), "https://xray.cn-northwest-1.amazonaws.com.cn");
  EXPECT_EQ(Ep("us-gov-west-1"), "https://xray.us-gov-west-1.amazonaws.com");
  EXPECT_EQ(Ep("us-iso-east-1"), "https://xray.us-iso-east-1.c2s.ic.gov");
  EXPECT_EQ(Ep("us-isob-east-1"), "https://xray.us-isob-east-1.sc2s.sgov.gov");
}

TEST(Endpoint, FipsAndDualStack) {
  EXPECT_EQ(Ep("us-east-1", true), "https://xray-fips.us-east-1.amazonaws.com");
  EXPECT_EQ(Ep("fips-us-east-1"), "https://xray-fips.us-east-1.amazonaws.com");
  EXPECT_EQ(Ep("us-gov-west-1-fips"), "https://xray-fips.us-gov-west-1.amazonaws.com");
  EXPECT_EQ(Ep("us-east-1", false, true), "https://xray.us-east-1.api.aws");
}

TEST(Endpoint, RejectsGarbageRegion) {
  EXPECT_FALSE(ServiceEndpoint("xray", "", {}));
  EXPECT_FALSE(ServiceEndpoint("xray", "us-east-1/../evil", {}));
  EXPECT_FALSE(ServiceEndpoint("xray", "US_EAST", {}));
}

TEST(Endpoint, ParseUrl) {
  auto u = ParseUrl("http://127.0.0.1:2020/prefix/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->authority, "127.0.0.1:2020");
  EXPECT_EQ(u->path, "/prefix");
  auto v6 = ParseUrl("https://[::1]:443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->authority, "[::1]");
  EXPECT_FALSE(ParseUrl("ftp://x"));
  EXPECT_FALSE(ParseUrl("127.0.0.1:2000"));
  EXPECT_FALSE(ParseUrl("http://"));
}

}  // namespace
}  // namespace xrayd::aws
