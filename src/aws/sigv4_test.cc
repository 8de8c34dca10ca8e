// Checks the signer against AWS's published SigV4 test suite (tests/data/sigv4-vectors.json:
// request, canonical request, string to sign and Authorization header for each case).
#include "aws/sigv4.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

namespace xrayd::aws {
namespace {

const Credentials kCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

std::chrono::system_clock::time_point SuiteTime() {
  // 2015-08-30T12:36:00Z
  return std::chrono::system_clock::time_point(std::chrono::seconds(1440938160));
}

nlohmann::json LoadVectors() {
  std::ifstream in(std::string(XRAYD_SOURCE_DIR) + "/tests/data/sigv4-vectors.json");
  return nlohmann::json::parse(in);
}

TEST(SigV4, AmzDate) { EXPECT_EQ(FormatAmzDate(SuiteTime()), "20150830T123600Z"); }

TEST(SigV4, PublishedTestSuite) {
  const auto vectors = LoadVectors();
  ASSERT_GE(vectors.size(), 20u);
  int checked = 0;
  for (const auto& v : vectors) {
    const std::string name = v["name"];
    if (name == "get-header-value-multiline") continue;  // folded headers: not produced by any client of ours
    SignableRequest r;
    r.method = v["method"];
    const std::string target = v["path"];
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    for (const auto& h : v["headers"]) r.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
    const std::string body = v["body"];
    const SigningScope scope{"us-east-1", "service", SuiteTime()};
    const std::string creq = CanonicalRequest(r, Sha256Hex(body));
    EXPECT_EQ(creq, v["canonical_request"].get<std::string>()) << name;
    EXPECT_EQ(StringToSign(creq, scope), v["string_to_sign"].get<std::string>()) << name;
    EXPECT_EQ(AuthorizationHeader(r, Sha256Hex(body), kCreds, scope), v["authorization"].get<std::string>()) << name;
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(SigV4, SignAddsDateTokenAndAuthorization) {
  SignableRequest r{"POST", "/TraceSegments", "", {{"Host", "xray.us-east-1.amazonaws.com"}}};
  Credentials creds = kCreds;
  creds.session_token = "token123";
  Sign(r, "{}", creds, {"us-east-1", "xray", SuiteTime()});
  ASSERT_EQ(r.headers.size(), 4u);
  EXPECT_EQ(r.headers[1].first, "X-Amz-Date");
  EXPECT_EQ(r.headers[2], (std::pair<std::string, std::string>{"X-Amz-Security-Token", "token123"}));
  EXPECT_EQ(r.headers[3].first, "Authorization");
  EXPECT_NE(r.headers[3].second.find("SignedHeaders=host;x-amz-date;x-amz-security-token,"), std::string::npos);
  EXPECT_NE(r.headers[3].second.find("/20150830/us-east-1/xray/aws4_request"), std::string::npos);
}

// Each thread keeps the last signing key it derived: a change of secret, day, region or service
// must derive a new one. Every signature is compared with one from a fresh thread (empty cache).
TEST(SigV4, SigningKeyFollowsSecretDayRegionAndService) {
  const auto day = std::chrono::hours(24);
  Credentials other = kCreds;
  other.secret_access_key = "another-secret";
  const std::vector<std::pair<Credentials, SigningScope>> cases = {
      {kCreds, {"us-east-1", "xray", SuiteTime()}},       {other, {"us-east-1", "xray", SuiteTime()}},
      {kCreds, {"us-east-1", "xray", SuiteTime() + day}}, {kCreds, {"eu-west-1", "xray", SuiteTime()}},
      {kCreds, {"us-east-1", "sts", SuiteTime()}},        {kCreds, {"us-east-1", "xray", SuiteTime()}}};
  std::vector<std::string> seen;
  for (const auto& [creds, scope] : cases) {
    const std::string here = SignatureHex("string to sign", creds, scope);
    std::string fresh;
    std::thread([&, &creds = creds, &scope = scope] { fresh = SignatureHex("string to sign", creds, scope); }).join();
    EXPECT_EQ(here, fresh);
    seen.push_back(here);
  }
  EXPECT_EQ(seen.front(), seen.back());
  for (size_t i = 1; i + 1 < seen.size(); ++i) EXPECT_NE(seen[i], seen.front()) << i;
  // The published suite's signature for get-vanilla, after the cache held other keys.
  SignableRequest r{"GET", "/", "", {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}}};
  EXPECT_NE(AuthorizationHeader(r, Sha256Hex(""), kCreds, {"us-east-1", "service", SuiteTime()})
                .find("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            std::string::npos);
}

TEST(SigV4, Sha256) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace xrayd::aws
