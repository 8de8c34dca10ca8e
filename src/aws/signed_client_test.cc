// SignedClient against a real local HTTP server that verifies SigV4: what is sent, where, and
// what happens without credentials (the one missing-credentials policy).
#include "aws/signed_client.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "tests/support/fake_aws.h"

namespace xrayd::aws {
namespace {

class FailingProvider final : public CredentialsProvider {
 public:
  Result<Credentials> Get() override { return Error::Retryable("metadata service unreachable"); }
  std::string Describe() const override { return "failing test provider"; }
};

class SignedClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.server().Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      requests_.push_back(req);
      res.set_content("{\"ok\":true}", "application/json");
    });
    server_.Start();
  }
  std::string Endpoint(const std::string& prefix = "") const {
    return "http://127.0.0.1:" + std::to_string(server_.port()) + prefix;
  }
  std::vector<httplib::Request> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

  const Credentials creds_{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"};
  testing::LocalHttpServer server_;
  std::mutex mu_;
  std::vector<httplib::Request> requests_;
};

// PostLent sends the caller's buffer, signed like Post, and leaves it as it was (bytes and capacity)
// for the next request, twice over one kept-alive connection.
TEST_F(SignedClientTest, PostLentGivesTheBodyBack) {
  StaticCredentialsProvider provider(creds_, "test");
  auto client = SignedClient::Create({Endpoint(), "us-east-1"}, &provider);
  ASSERT_TRUE(client.ok()) << client.error().message;
  http::Client http({});
  std::string body = "{\"TraceSegmentDocuments\":[\"one\"]}";
  body.reserve(4096);
  const char* storage = body.data();
  for (int i = 0; i < 2; ++i) {
    auto r = (*client)->PostLent(http, "/TraceSegments", body);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(body, "{\"TraceSegmentDocuments\":[\"one\"]}");
    EXPECT_GE(body.capacity(), 4096u);
    EXPECT_EQ(body.data(), storage);
  }
  auto reqs = Requests();
  ASSERT_EQ(reqs.size(), 2u);
  for (const auto& req : reqs) {
    EXPECT_EQ(req.body, body);
    EXPECT_EQ(testing::VerifySigV4(req, creds_, "us-east-1", "xray"), "");
  }
}

TEST_F(SignedClientTest, SignsAndPostsUnderTheEndpointsPathPrefix) {
  StaticCredentialsProvider provider(creds_, "test");
  auto client = SignedClient::Create({Endpoint("/prefix"), "eu-west-1"}, &provider);
  ASSERT_TRUE(client.ok()) << client.error().message;
  http::Client http({});
  auto r = (*client)->Post(http, "/TraceSegments", "{\"TraceSegmentDocuments\":[]}", {{"X-Extra", "1"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  auto reqs = Requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].path, "/prefix/TraceSegments");
  EXPECT_EQ(reqs[0].get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(reqs[0].get_header_value("User-Agent"), "xrayd/" XRAYD_VERSION);
  EXPECT_NE(reqs[0].get_header_value("Authorization").find("x-extra"), std::string::npos) << "extra headers are signed";
  EXPECT_EQ(testing::VerifySigV4(reqs[0], creds_, "eu-west-1", "xray"), "");
  EXPECT_EQ((*client)->UrlFor("/TraceSegments"), Endpoint("/prefix") + "/TraceSegments");
}

TEST_F(SignedClientTest, NoProviderMeansUnsignedByConfiguration) {
  auto client = SignedClient::Create({Endpoint(), "us-east-1"}, nullptr);
  ASSERT_TRUE(client.ok());
  http::Client http({});
  ASSERT_TRUE((*client)->Post(http, "/TelemetryRecords", "{}").ok());
  auto reqs = Requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].get_header_value("Authorization"), "");
}

TEST_F(SignedClientTest, MissingCredentialsDoNotSendByDefault) {
  FailingProvider provider;
  auto client = SignedClient::Create({Endpoint(), "us-east-1"}, &provider);
  ASSERT_TRUE(client.ok());
  http::Client http({});
  auto r = (*client)->Post(http, "/TraceSegments", "{}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().transport, TransportError::kNoCredentials);
  EXPECT_TRUE(r.error().IsRetryable()) << "the caller keeps the data and tries again";
  EXPECT_NE(r.error().message.find("metadata service unreachable"), std::string::npos) << r.error().message;
  EXPECT_TRUE(Requests().empty()) << "an unsigned request to AWS would only be refused";
}

TEST_F(SignedClientTest, MissingCredentialsSendUnsignedWhenThePolicySaysSo) {
  FailingProvider provider;
  SignedClientOptions options{Endpoint(), "us-east-1"};
  options.on_missing_credentials = MissingCredentials::kSendUnsigned;
  auto client = SignedClient::Create(options, &provider);
  ASSERT_TRUE(client.ok());
  http::Client http({});
  auto r = (*client)->Post(http, "/TraceSegments", "{}");
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto reqs = Requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].get_header_value("Authorization"), "");
}

TEST_F(SignedClientTest, PostWithSignsWithTheCallersKeysForAnotherService) {
  SignedClientOptions options{Endpoint(), "us-west-2"};
  options.service = "sts";
  options.content_type = "application/x-www-form-urlencoded; charset=utf-8";
  auto client = SignedClient::Create(options, nullptr);
  ASSERT_TRUE(client.ok());
  http::Client http({});
  ASSERT_TRUE((*client)->PostWith(http, &creds_, "/", "Action=AssumeRole").ok());
  auto reqs = Requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(testing::VerifySigV4(reqs[0], creds_, "us-west-2", "sts"), "");
}

TEST_F(SignedClientTest, BadEndpointIsRefusedAtCreate) {
  auto client = SignedClient::Create({"not a url", "us-east-1"}, nullptr);
  ASSERT_FALSE(client.ok());
}

}  // namespace
}  // namespace xrayd::aws
