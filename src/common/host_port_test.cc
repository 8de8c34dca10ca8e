#include "common/host_port.h"

#include <gtest/gtest.h>

namespace xrayd {
namespace {

TEST(SplitHostPort, HostAndPort) {
  auto hp = SplitHostPort("127.0.0.1:2000");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, "2000");
}

TEST(SplitHostPort, BracketedIpv6AndEmptyHost) {
  auto v6 = SplitHostPort("[::1]:2000");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  auto any = SplitHostPort(":0");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->host, "");
  EXPECT_EQ(any->port, "0");
}

TEST(SplitHostPort, BadInputsNameTheAddress) {
  for (const char* bad : {"localhost", "host:", "host:http", "host:65536", "host:99999999999999999999"}) {
    auto hp = SplitHostPort(bad);
    ASSERT_FALSE(hp.ok()) << bad;
    EXPECT_EQ(hp.error().kind, Error::Kind::kInvalidArgument);
    EXPECT_NE(hp.error().message.find(bad), std::string::npos) << hp.error().message;
  }
}

}  // namespace
}  // namespace xrayd
