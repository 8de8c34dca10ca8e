// STS: the XML wire format, endpoint selection, and both calls against a local STS.
#include "aws/sts.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "tests/support/fake_aws.h"
#include "tests/support/map_env.h"

namespace xrayd::aws {
namespace {

using namespace std::chrono_literals;
using testing::FakeSts;

using testing::MapEnv;

std::string TempFile(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / ("xrayd-sts-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(p) << text;
  return p.string();
}

// The documented AssumeRoleWithWebIdentity answer shape.
constexpr const char* kWebIdentityAnswer = R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&amp;x=&lt;y&gt;</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <SourceIdentity>SourceIdentityValue</SourceIdentity>
    <Provider>www.amazon.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>)";

TEST(StsWire, ParsesCredentialsAndDecodesEntities) {
  auto c = ParseStsCredentials(kWebIdentityAnswer);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->credentials.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(c->credentials.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  EXPECT_EQ(c->credentials.session_token, "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&x=<y>");
  ASSERT_TRUE(c->expiration);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(c->expiration->time_since_epoch()).count(), 1414191623);
  EXPECT_EQ(XmlText(kWebIdentityAnswer, {"AssumedRoleUser", "Arn"}),
            "arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1");
  EXPECT_EQ(XmlText("<a><b x=\"1\">&#65;&#x42;&#x20AC;</b><c/></a>", {"a", "b"}), "AB\xE2\x82\xAC");
  EXPECT_EQ(XmlText("<a><c/></a>", {"c"}), "");
  EXPECT_FALSE(XmlText("<a><bb>1</bb></a>", {"b"}));
  EXPECT_FALSE(ParseStsCredentials("<Response><Credentials><AccessKeyId>A</AccessKeyId></Credentials></Response>"));
  EXPECT_FALSE(ParseStsCredentials("not xml"));
}

TEST(StsWire, ErrorResponses) {
  const std::string body =
      "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n"
      "    <Code>InvalidIdentityToken</Code>\n    <Message>Couldn't retrieve verification key &amp; more</Message>\n"
      "  </Error>\n  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n</ErrorResponse>\n";
  std::string code;
  Error e = StsError(400, body, &code);
  EXPECT_EQ(code, "InvalidIdentityToken");
  EXPECT_EQ(e.kind, Error::Kind::kPermanent);
  EXPECT_EQ(e.message, "HTTP 400 InvalidIdentityToken: Couldn't retrieve verification key & more");
  EXPECT_EQ(StsError(400, "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>").kind,
            Error::Kind::kThrottled);
  EXPECT_EQ(StsError(400, "<ErrorResponse><Error><Code>IDPCommunicationError</Code></Error></ErrorResponse>").kind,
            Error::Kind::kRetryable);
  EXPECT_EQ(StsError(503, "").kind, Error::Kind::kRetryable);
  EXPECT_EQ(FormEncode("arn:aws:iam::1:role/a b+c~d_e.f-g"), "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b%2Bc~d_e.f-g");
}

TEST(StsEndpoint, RegionalGlobalFipsAndOverrides) {
  auto ep = [](std::map<std::string, std::string> env, std::string region, bool regional = false) {
    env.emplace("HOME", "/nonexistent");
    auto r = ResolveStsEndpoint(MapEnv(env), region, regional);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->url + " " + r->signing_region : "";
  };
  EXPECT_EQ(ep({}, "eu-west-1"), "https://sts.eu-west-1.amazonaws.com eu-west-1");
  EXPECT_EQ(ep({}, "cn-north-1"), "https://sts.cn-north-1.amazonaws.com.cn cn-north-1");
  EXPECT_EQ(ep({}, "us-gov-west-1"), "https://sts.us-gov-west-1.amazonaws.com us-gov-west-1");
  EXPECT_EQ(ep({}, ""), "https://sts.amazonaws.com us-east-1");
  EXPECT_EQ(ep({}, "aws-global"), "https://sts.amazonaws.com us-east-1");
  EXPECT_EQ(ep({{"AWS_STS_REGIONAL_ENDPOINTS", "legacy"}}, "eu-west-1"), "https://sts.amazonaws.com us-east-1");
  EXPECT_EQ(ep({{"AWS_STS_REGIONAL_ENDPOINTS", "legacy"}}, "eu-west-1", true), "https://sts.eu-west-1.amazonaws.com eu-west-1");
  EXPECT_EQ(ep({{"AWS_STS_REGIONAL_ENDPOINTS", "legacy"}}, "af-south-1"), "https://sts.af-south-1.amazonaws.com af-south-1");
  EXPECT_EQ(ep({{"AWS_STS_REGIONAL_ENDPOINTS", "regional"}}, "us-east-1"), "https://sts.us-east-1.amazonaws.com us-east-1");
  EXPECT_EQ(ep({{"AWS_USE_FIPS_ENDPOINT", "true"}}, "us-east-2"), "https://sts-fips.us-east-2.amazonaws.com us-east-2");
  EXPECT_EQ(ep({{"AWS_USE_DUALSTACK_ENDPOINT", "true"}}, "us-east-2"), "https://sts.us-east-2.api.aws us-east-2");
  EXPECT_EQ(ep({{"AWS_ENDPOINT_URL", "http://127.0.0.1:1"}}, "eu-west-1"), "http://127.0.0.1:1 eu-west-1");
  EXPECT_EQ(ep({{"AWS_ENDPOINT_URL", "http://127.0.0.1:1"}, {"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2"}}, "eu-west-1"),
            "http://127.0.0.1:2 eu-west-1");
  EXPECT_EQ(ep({{"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2"}, {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}}, "eu-west-1"),
            "https://sts.eu-west-1.amazonaws.com eu-west-1");
  EXPECT_EQ(ep({{"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2"}}, ""), "http://127.0.0.1:2 us-east-1");
  EXPECT_FALSE(ResolveStsEndpoint(MapEnv({{"AWS_ENDPOINT_URL_STS", "ftp://x"}}), "eu-west-1"));
}

TEST(Sts, AssumeRoleWithWebIdentityOverTheWire) {
  FakeSts sts;
  const std::string token_file = TempFile("token", "eyJhbGciOiJSUzI1NiJ9.payload.sig\n");
  StsClient client({sts.url(), "eu-west-1", true}, {});
  auto c = client.AssumeRoleWithWebIdentity({"arn:aws:iam::123456789012:role/xray", "my-session", token_file});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->credentials.access_key_id, FakeSts::Issued(1).access_key_id);
  EXPECT_EQ(c->credentials.secret_access_key, FakeSts::Issued(1).secret_access_key);
  EXPECT_EQ(c->credentials.session_token, FakeSts::Issued(1).session_token);
  ASSERT_TRUE(c->expiration);
  EXPECT_NEAR(std::chrono::duration<double>(*c->expiration - std::chrono::system_clock::now()).count(), 3600, 5);
  auto calls = sts.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].action, "AssumeRoleWithWebIdentity");
  EXPECT_EQ(calls[0].form["Version"], "2011-06-15");
  EXPECT_EQ(calls[0].form["RoleArn"], "arn:aws:iam::123456789012:role/xray");
  EXPECT_EQ(calls[0].form["RoleSessionName"], "my-session");
  EXPECT_EQ(calls[0].form["WebIdentityToken"], "eyJhbGciOiJSUzI1NiJ9.payload.sig");
  EXPECT_EQ(calls[0].request.get_header_value("Content-Type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(calls[0].request.get_header_value("Authorization"), "") << "AssumeRoleWithWebIdentity is unsigned";
  std::filesystem::remove(token_file);
}

TEST(Sts, AssumeRoleIsSignedWithTheCallersCredentials) {
  FakeSts sts;
  StsClient client({sts.url() + "/", "ap-southeast-2", true}, {});
  const Credentials caller{"AKIDCALLER", "caller/secret+key", "caller-session-token"};
  auto c = client.AssumeRole({"arn:aws:iam::210987654321:role/cross-account", "xrayd-test", "ext-id-1", 1800}, caller);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->credentials.access_key_id, FakeSts::Issued(1).access_key_id);
  auto calls = sts.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].action, "AssumeRole");
  EXPECT_EQ(calls[0].form["RoleArn"], "arn:aws:iam::210987654321:role/cross-account");
  EXPECT_EQ(calls[0].form["RoleSessionName"], "xrayd-test");
  EXPECT_EQ(calls[0].form["ExternalId"], "ext-id-1");
  EXPECT_EQ(calls[0].form["DurationSeconds"], "1800");
  EXPECT_EQ(testing::VerifySigV4(calls[0].request, caller, "ap-southeast-2", "sts"), "");
  const Credentials other{"AKIDCALLER", "another secret", "caller-session-token"};
  EXPECT_NE(testing::VerifySigV4(calls[0].request, other, "ap-southeast-2", "sts"), "");
}

TEST(Sts, ErrorAnswersBecomeErrorsWithCodeAndMessage) {
  FakeSts sts;
  sts.FailNext({403, "AccessDenied", "User is not authorized to perform: sts:AssumeRole"});
  sts.FailNext({400, "ExpiredTokenException", "Token expired: current date/time 1 must be before the expiration"});
  StsClient client({sts.url(), "us-east-1", true}, {});
  auto denied = client.AssumeRole({"arn:aws:iam::1:role/r", "s", "", 0}, {"AK", "SK", ""});
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().kind, Error::Kind::kPermanent);
  EXPECT_NE(denied.error().message.find("HTTP 403 AccessDenied: User is not authorized"), std::string::npos)
      << denied.error().message;
  const std::string token_file = TempFile("token2", "jwt");
  auto expired = client.AssumeRoleWithWebIdentity({"arn:aws:iam::1:role/r", "s", token_file});
  ASSERT_FALSE(expired);
  EXPECT_NE(expired.error().message.find("ExpiredTokenException"), std::string::npos);
  auto missing = client.AssumeRoleWithWebIdentity({"arn:aws:iam::1:role/r", "s", "/nonexistent/token"});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/token"), std::string::npos);
  EXPECT_EQ(sts.calls().size(), 2u);
  std::filesystem::remove(token_file);
}

TEST(Sts, AssumeRoleProviderRefreshesWithFreshSourceCredentials) {
  FakeSts sts;
  sts.set_lifetime(1200ms);
  auto source = std::make_shared<StaticCredentialsProvider>(Credentials{"AKSRC", "source-secret", ""}, "test source");
  RefreshOptions fast;
  fast.refresh_before = 800ms;
  fast.expiry_margin = 100ms;
  auto provider = NewAssumeRoleProvider(source, {"arn:aws:iam::1:role/r", "", "", 0},
                                        std::make_shared<StsClient>(StsEndpoint{sts.url(), "eu-west-1", true}, http::ClientOptions{}),
                                        fast);
  EXPECT_NE(provider->Describe().find("arn:aws:iam::1:role/r"), std::string::npos);
  EXPECT_NE(provider->Describe().find("test source"), std::string::npos);
  EXPECT_EQ(provider->Get()->access_key_id, FakeSts::Issued(1).access_key_id);
  std::this_thread::sleep_for(600ms);  // inside the refresh window
  EXPECT_EQ(provider->Get()->access_key_id, FakeSts::Issued(2).access_key_id);
  auto calls = sts.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].form["RoleSessionName"], calls[1].form["RoleSessionName"]) << "one session name per process";
  EXPECT_EQ(calls[0].form["RoleSessionName"].rfind("xrayd-", 0), 0u);
  for (const auto& c : calls) EXPECT_EQ(testing::VerifySigV4(c.request, {"AKSRC", "source-secret", ""}, "eu-west-1", "sts"), "");
}

}  // namespace
}  // namespace xrayd::aws
