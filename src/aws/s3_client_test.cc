#include "aws/s3_client.h"

#include <gtest/gtest.h>

#include <mutex>

#include "tests/support/local_http_server.h"

namespace xrayd::aws {
namespace {

// A two-page bucket listing, an object, and S3's error answers, on a local server.
class S3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.server().Get(R"(/logs-bucket)", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      if (req.get_param_value("continuation-token").empty()) {
        res.set_content("<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>"
                        "<Contents><Key>AWSLogs/a&amp;b.log.gz</Key><ETag>&quot;e1&quot;</ETag><Size>12</Size></Contents>"
                        "<Contents><Key>AWSLogs/dir/</Key><ETag>\"e0\"</ETag><Size>0</Size></Contents>"
                        "<NextContinuationToken>tok/+=1</NextContinuationToken></ListBucketResult>",
                        "application/xml");
      } else if (req.get_param_value("continuation-token") == "tok/+=1") {
        res.set_content("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>AWSLogs/c.log</Key>"
                        "<ETag>\"e2\"</ETag><Size>34</Size></Contents></ListBucketResult>",
                        "application/xml");
      } else {
        res.status = 400;
      }
    });
    server_.server().Get(R"(/logs-bucket/(.*))", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      const std::string key = req.matches[1];
      if (key == "AWSLogs/c.log") return res.set_content("line\n", "application/octet-stream");
      if (key == "slow-down") {
        res.status = 503;
        return res.set_content("<Error><Code>SlowDown</Code></Error>", "application/xml");
      }
      if (key == "denied") {
        res.status = 403;
        return res.set_content("<Error><Code>AccessDenied</Code></Error>", "application/xml");
      }
      res.status = 404;
      res.set_content("<Error><Code>NoSuchKey</Code></Error>", "application/xml");
    });
    server_.Start();
  }
  void Record(const httplib::Request& req) {
    std::lock_guard lock(mu_);
    requests_.push_back(req);
  }
  std::vector<httplib::Request> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  S3Client Client(CredentialsProvider* creds) {
    auto c = S3Client::Create({server_.url(), "eu-west-1"}, creds);
    EXPECT_TRUE(c);
    return std::move(*c);
  }

  testing::LocalHttpServer server_;
  std::mutex mu_;
  std::vector<httplib::Request> requests_;
  StaticCredentialsProvider creds_{Credentials{"AKIDEXAMPLE", "secret", "tok"}, "test"};
};

TEST_F(S3ClientTest, ListsEveryPageSigned) {
  S3Client s3 = Client(&creds_);
  http::Client http({});
  auto first = s3.ListObjectsV2(http, "logs-bucket", "AWSLogs/", "");
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->objects.size(), 2u);
  EXPECT_EQ(first->objects[0].key, "AWSLogs/a&b.log.gz");
  EXPECT_EQ(first->objects[0].etag, "\"e1\"");
  EXPECT_EQ(first->objects[0].size, 12u);
  EXPECT_EQ(first->next_token, "tok/+=1");
  auto second = s3.ListObjectsV2(http, "logs-bucket", "AWSLogs/", first->next_token);
  ASSERT_TRUE(second) << second.error().message;
  ASSERT_EQ(second->objects.size(), 1u);
  EXPECT_EQ(second->next_token, "");
  auto reqs = Requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].get_param_value("prefix"), "AWSLogs/");
  EXPECT_EQ(reqs[0].get_param_value("list-type"), "2");
  EXPECT_EQ(reqs[1].get_param_value("continuation-token"), "tok/+=1");  // '+' arrived as '+', not ' '
  for (const auto& r : reqs) {
    EXPECT_EQ(r.get_header_value("x-amz-content-sha256"),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_NE(r.get_header_value("Authorization").find("/eu-west-1/s3/aws4_request"), std::string::npos);
    EXPECT_NE(r.get_header_value("Authorization").find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"),
              std::string::npos);
    EXPECT_EQ(r.get_header_value("X-Amz-Security-Token"), "tok");
  }
}

TEST_F(S3ClientTest, GetsObjectsAndClassifiesErrors) {
  S3Client s3 = Client(nullptr);  // unsigned by configuration
  http::Client http({});
  auto body = s3.GetObject(http, "logs-bucket", "AWSLogs/c.log");
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "line\n");
  EXPECT_EQ(Requests().back().get_header_value("Authorization"), "");
  auto missing = s3.GetObject(http, "logs-bucket", "gone");
  ASSERT_FALSE(missing);
  EXPECT_FALSE(missing.error().IsRetryable());
  EXPECT_NE(missing.error().message.find("NoSuchKey"), std::string::npos);
  auto slow = s3.GetObject(http, "logs-bucket", "slow-down");
  ASSERT_FALSE(slow);
  EXPECT_TRUE(slow.error().IsRetryable());
  auto denied = s3.GetObject(http, "logs-bucket", "denied");  // fixed by an operator, then read
  ASSERT_FALSE(denied);
  EXPECT_TRUE(denied.error().IsRetryable());
}

TEST(S3Url, Parses) {
  auto a = ParseS3Url("s3://bucket/AWSLogs/1/");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->bucket, "bucket");
  EXPECT_EQ(a->prefix, "AWSLogs/1/");
  auto b = ParseS3Url("s3://bucket");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->prefix, "");
  EXPECT_FALSE(ParseS3Url("s3:///x"));
  EXPECT_FALSE(ParseS3Url("/var/log"));
  EXPECT_EQ(XmlText("<a>x &lt;&#65;&#x42;&gt;</a>", "a"), "x <AB>");
  EXPECT_EQ(XmlText("<a>unterminated", "a"), "");
}

}  // namespace
}  // namespace xrayd::aws
