// Instance metadata against a local IMDS: the IMDSv2 token flow, the IMDSv1 fallback, 401s,
// instance profile credentials and the region lookup.
#include "aws/imds.h"

#include <gtest/gtest.h>

#include <map>

#include "aws/region.h"
#include "tests/support/fake_aws.h"
#include "tests/support/map_env.h"

namespace xrayd::aws {
namespace {

using namespace std::chrono_literals;
using testing::FakeImds;

using testing::MapEnv;

std::string Text(const Result<std::string>& r) { return r ? *r : "error: " + r.error().message; }

ImdsOptions At(const std::string& url) {
  ImdsOptions o;
  o.endpoint = url;
  o.timeout = 500ms;
  return o;
}

TEST(Imds, TokenFlowAndTokenReuse) {
  FakeImds fake({.require_token = true});
  ImdsClient imds(At(fake.url()));
  EXPECT_EQ(Text(imds.Get("/latest/meta-data/placement/region")), "eu-central-1");
  EXPECT_EQ(Text(imds.Get("/latest/meta-data/instance-id")), "i-0123456789abcdef0");
  EXPECT_EQ(fake.token_requests(), 1) << "the session token is cached";
  EXPECT_EQ(fake.gets_with_token(), 2);
  EXPECT_EQ(fake.gets_without_token(), 0);
  EXPECT_EQ(fake.last_ttl_header(), "21600");
}

TEST(Imds, ExpiredTokenIsReplacedOnce) {
  FakeImds fake({.require_token = true});
  ImdsClient imds(At(fake.url()));
  ASSERT_TRUE(imds.Get("/latest/meta-data/instance-id"));
  fake.InvalidateTokens();  // as if the TTL had run out
  EXPECT_EQ(Text(imds.Get("/latest/meta-data/instance-id")), "i-0123456789abcdef0");
  EXPECT_EQ(fake.token_requests(), 2);
}

TEST(Imds, FallsBackToV1WhenTheTokenEndpointRefuses) {
  for (int status : {403, 404, 405}) {
    FakeImds fake({.token_status = status});
    ImdsClient imds(At(fake.url()));
    EXPECT_EQ(Text(imds.Get("/latest/meta-data/placement/region")), "eu-central-1") << status;
    EXPECT_EQ(fake.gets_without_token(), 1) << status;
  }
}

TEST(Imds, NoFallbackOnBadRequestOrWhenV1IsDisabled) {
  FakeImds bad({.token_status = 400});
  ImdsClient a(At(bad.url()));
  auto r = a.Get("/latest/meta-data/placement/region");
  ASSERT_FALSE(r);
  EXPECT_EQ(bad.gets_without_token(), 0);

  FakeImds old({.token_status = 404});
  auto o = At(old.url());
  o.v1_disabled = true;
  ImdsClient b(o);
  auto r2 = b.Get("/latest/meta-data/placement/region");
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("IMDSv1 is disabled"), std::string::npos) << r2.error().message;
  EXPECT_EQ(old.gets_without_token(), 0);
}

TEST(Imds, RequiredTokensAndNoTokenIsA401Error) {
  // IMDSv2 required, but the token request is refused (e.g. hop limit): v1 gets 401.
  FakeImds fake({.require_token = true, .token_status = 403});
  ImdsClient imds(At(fake.url()));
  auto r = imds.Get("/latest/meta-data/placement/region");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::kPermanent);
  EXPECT_NE(r.error().message.find("401"), std::string::npos) << r.error().message;
}

TEST(Imds, DisabledMakesNoRequests) {
  FakeImds fake({});
  auto o = At(fake.url());
  o.disabled = true;
  ImdsClient imds(o);
  EXPECT_FALSE(imds.Get("/latest/meta-data/placement/region"));
  EXPECT_EQ(fake.requests(), 0);
}

TEST(Imds, UnreachableServiceFailsFastDuringTheCooldown) {
  auto o = At("http://127.0.0.1:1");  // nothing listens on port 1
  o.unreachable_cooldown = 60s;
  ImdsClient imds(o);
  auto first = imds.Get("/latest/meta-data/instance-id");
  ASSERT_FALSE(first);
  const auto t0 = std::chrono::steady_clock::now();
  auto second = imds.Get("/latest/meta-data/hostname");
  ASSERT_FALSE(second);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_NE(second.error().message.find("unreachable"), std::string::npos);
}

TEST(Imds, OptionsFromEnvironment) {
  auto o = ImdsOptions::FromEnvironment(MapEnv({{"HOME", "/nonexistent"}}));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->endpoint, "http://169.254.169.254");
  EXPECT_FALSE(o->disabled);
  auto v6 = ImdsOptions::FromEnvironment(MapEnv({{"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"}, {"HOME", "/x"}}));
  EXPECT_EQ(v6->endpoint, "http://[fd00:ec2::254]");
  auto custom = ImdsOptions::FromEnvironment(MapEnv({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/"},
                                                     {"AWS_EC2_METADATA_DISABLED", "TRUE"},
                                                     {"AWS_EC2_METADATA_V1_DISABLED", "true"},
                                                     {"AWS_METADATA_SERVICE_TIMEOUT", "2.5"},
                                                     {"AWS_METADATA_SERVICE_NUM_ATTEMPTS", "3"},
                                                     {"HOME", "/x"}}));
  ASSERT_TRUE(custom);
  EXPECT_EQ(custom->endpoint, "http://127.0.0.1:9");
  EXPECT_TRUE(custom->disabled);
  EXPECT_TRUE(custom->v1_disabled);
  EXPECT_EQ(custom->timeout, 2500ms);
  EXPECT_EQ(custom->attempts, 3);
  EXPECT_FALSE(ImdsOptions::FromEnvironment(MapEnv({{"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv5"}})));
  EXPECT_FALSE(ImdsOptions::FromEnvironment(MapEnv({{"AWS_METADATA_SERVICE_TIMEOUT", "soon"}})));
}

TEST(Imds, InstanceProfileCredentials) {
  FakeImds fake({.require_token = true});
  auto imds = std::make_shared<ImdsClient>(At(fake.url()));
  auto c = FetchInstanceProfileCredentials(*imds);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->credentials.access_key_id, "ASIAIMDS0001");
  EXPECT_EQ(c->credentials.secret_access_key, "imds-secret-1");
  EXPECT_EQ(c->credentials.session_token, "imds-token-value-1");
  ASSERT_TRUE(c->expiration);
  EXPECT_EQ(fake.paths(), (std::vector<std::string>{"/latest/meta-data/iam/security-credentials/",
                                                    "/latest/meta-data/iam/security-credentials/xrayd-instance-role"}));
  auto provider = NewInstanceProfileProvider(imds);
  EXPECT_EQ(provider->Get()->access_key_id, "ASIAIMDS0002");
  EXPECT_EQ(provider->Get()->access_key_id, "ASIAIMDS0002");  // cached for hours

  FakeImds no_role({.role = ""});
  ImdsClient bare(At(no_role.url()));
  auto none = FetchInstanceProfileCredentials(bare);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("no instance profile"), std::string::npos) << none.error().message;
}

TEST(Region, ResolutionOrderAsAwsDaemon) {
  FakeImds fake({.require_token = true, .region = "ap-northeast-3"});
  ImdsClient imds(At(fake.url()));
  const auto none = MapEnv({{"HOME", "/nonexistent"}});
  const auto defaults = MapEnv({{"HOME", "/nonexistent"}, {"AWS_DEFAULT_REGION", "sa-east-1"}});

  EXPECT_EQ(ResolveRegion("eu-west-3", false, none, &imds)->region, "eu-west-3");
  EXPECT_EQ(fake.requests(), 0) << "a configured region needs no lookup";

  auto from_imds = ResolveRegion("", false, defaults, &imds);
  ASSERT_TRUE(from_imds);
  EXPECT_EQ(from_imds->region, "ap-northeast-3") << "without -o, AWS_DEFAULT_REGION is not used";
  EXPECT_EQ(from_imds->source, "EC2 instance metadata");
  EXPECT_EQ(fake.token_requests(), 1);

  const int before = fake.requests();
  auto local = ResolveRegion("", true, defaults, &imds);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->region, "sa-east-1");
  EXPECT_FALSE(ResolveRegion("", true, none, &imds));
  EXPECT_EQ(fake.requests(), before) << "local mode makes no metadata lookups";

  auto missing = ResolveRegion("", false, none, nullptr);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("Cannot fetch region variable"), std::string::npos);
}

TEST(Region, EcsMetadataFileComesBeforeInstanceMetadata) {
  const std::string path = ::testing::TempDir() + "/xrayd-ecs-metadata.json";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(R"({"Cluster":"c","TaskARN":"arn:aws:ecs:us-west-1:123456789012:task/c/abc","MetadataFileStatus":"READY"})", f);
    std::fclose(f);
  }
  FakeImds fake({});
  ImdsClient imds(At(fake.url()));
  auto env = MapEnv({{"ECS_ENABLE_CONTAINER_METADATA", "true"}, {"ECS_CONTAINER_METADATA_FILE", path}});
  EXPECT_EQ(ResolveRegion("", false, env, &imds)->region, "us-west-1");
  EXPECT_EQ(fake.requests(), 0);
  auto not_enabled = MapEnv({{"ECS_CONTAINER_METADATA_FILE", path}});
  EXPECT_FALSE(RegionFromEcsMetadataFile(not_enabled));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace xrayd::aws
