#include "api/request_auth.h"

#include <gtest/gtest.h>

#include "aws/sigv4.h"

namespace xrayd::api {
namespace {

constexpr double kNow = 1440938160;  // 2015-08-30T12:36:00Z

std::vector<std::pair<std::string, std::string>> Signed(const std::string& body, const std::string& key_id,
                                                        const std::string& secret, double at,
                                                        const std::string& service = "xray") {
  aws::SignableRequest r{"POST", "/TraceSummaries", "", {{"Host", "127.0.0.1:2020"}, {"Content-Type", "application/json"}}};
  aws::Sign(r, body, {key_id, secret, ""},
            {"eu-west-1", service, std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<int64_t>(at)))});
  return r.headers;
}

TEST(RequestAuth, ParsesKeys) {
  auto k = ParseAccessKeys("AK1:s1,AK2:s:2");
  ASSERT_TRUE(k);
  ASSERT_EQ(k->size(), 2u);
  EXPECT_EQ((*k)[1].secret, "s:2");
  EXPECT_TRUE(ParseAccessKeys("")->empty());
  EXPECT_FALSE(ParseAccessKeys("nocolon"));
  EXPECT_FALSE(ParseAccessKeys("AK:"));
}

TEST(RequestAuth, AcceptsAValidSignatureAndRefusesTampering) {
  RequestVerifier v(std::vector<AccessKey>{{"AK1", "secret1"}});
  const std::string body = R"({"StartTime":1,"EndTime":2})";
  auto headers = Signed(body, "AK1", "secret1", kNow);
  EXPECT_FALSE(v.Verify("POST", "/TraceSummaries", "", headers, body, kNow + 60));

  auto f = v.Verify("POST", "/TraceSummaries", "", headers, body + " ", kNow);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, "InvalidSignatureException");
  EXPECT_TRUE(v.Verify("POST", "/Traces", "", headers, body, kNow));               // other path
  EXPECT_TRUE(v.Verify("POST", "/TraceSummaries", "", Signed(body, "AK1", "wrong", kNow), body, kNow));
  auto unknown = v.Verify("POST", "/TraceSummaries", "", Signed(body, "AK9", "secret1", kNow), body, kNow);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->type, "UnrecognizedClientException");
  auto stale = v.Verify("POST", "/TraceSummaries", "", headers, body, kNow + 3600);
  ASSERT_TRUE(stale);
  EXPECT_NE(stale->message.find("expired"), std::string::npos);
  EXPECT_TRUE(v.Verify("POST", "/TraceSummaries", "", Signed(body, "AK1", "secret1", kNow, "s3"), body, kNow));
  auto none = v.Verify("POST", "/TraceSummaries", "", {{"Host", "x"}}, body, kNow);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->type, "MissingAuthenticationTokenException");
}

}  // namespace
}  // namespace xrayd::api
