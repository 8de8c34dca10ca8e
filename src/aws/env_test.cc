#include "aws/env.h"

#include <gtest/gtest.h>

namespace xrayd::aws {
namespace {

using std::chrono::system_clock;

int64_t Unix(system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

TEST(Iso8601, ParsesTheFormsAwsServicesUse) {
  EXPECT_EQ(Unix(*ParseIso8601("2024-01-02T03:04:05Z")), 1704164645);
  EXPECT_EQ(Unix(*ParseIso8601(" 2024-01-02T03:04:05.789Z\n")), 1704164645);
  EXPECT_EQ(Unix(*ParseIso8601("2024-01-02T05:04:05+02:00")), 1704164645);
  EXPECT_EQ(Unix(*ParseIso8601("2024-01-01T22:04:05-0500")), 1704164645);
  EXPECT_EQ(Unix(*ParseIso8601("1970-01-01T00:00:00Z")), 0);
  auto frac = *ParseIso8601("2024-01-02T03:04:05.250Z") - *ParseIso8601("2024-01-02T03:04:05Z");
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(frac).count(), 250);
  for (const char* bad : {"", "2024-01-02", "2024-01-02T03:04:05", "2024-13-02T03:04:05Z", "2024-02-30T03:04:05Z",
                          "2024-01-02T03:04:05Zjunk", "2024-01-02T03:04Z", "2024-01-02T03:04:05.Z"})
    EXPECT_FALSE(ParseIso8601(bad)) << bad;
}

TEST(Env, FlagsAndEmptyValues) {
  EXPECT_TRUE(IsTrue("true"));
  EXPECT_TRUE(IsTrue("TRUE"));
  EXPECT_TRUE(IsTrue("True "));
  EXPECT_TRUE(IsTrue("1"));
  EXPECT_FALSE(IsTrue("yes"));
  EXPECT_FALSE(IsTrue("false"));
  EnvLookup env = [](std::string_view k) -> std::optional<std::string> {
    if (k == "EMPTY") return "";
    if (k == "SET") return "x";
    return std::nullopt;
  };
  EXPECT_FALSE(EnvValue(env, "EMPTY"));
  EXPECT_FALSE(EnvValue(env, "UNSET"));
  EXPECT_EQ(EnvValue(env, "SET"), "x");
}

TEST(SharedProfiles, ParsesConfigAndCredentialsFiles) {
  const auto p = SharedProfiles::FromText(
      "# comment\n[default]\nregion = eu-west-1\n[profile dev]\nregion=ap-south-1\nrole_arn = arn:aws:iam::1:role/r\n"
      "s3 =\n  max_concurrent_requests = 20\nsource_profile = base\n"
      "[sso-session corp]\nsso_region = us-east-1\n[orphan]\nregion = nowhere\n"
      "[profile default]\noutput = json\n",
      "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = SKDEF\n; comment\n"
      "[base]\naws_access_key_id=AKBASE\naws_secret_access_key=SKBASE\n[dev]\nregion = from-creds\n");
  EXPECT_EQ(p.Get("default", "region"), "eu-west-1");
  EXPECT_EQ(p.Get("default", "output"), "json");  // [profile default] is the same profile
  EXPECT_EQ(p.Get("default", "aws_access_key_id"), "AKDEF");
  EXPECT_EQ(p.Get("dev", "role_arn"), "arn:aws:iam::1:role/r");
  EXPECT_EQ(p.Get("dev", "source_profile"), "base");  // after the nested s3 block
  EXPECT_FALSE(p.Get("dev", "max_concurrent_requests"));
  EXPECT_EQ(p.Get("dev", "region"), "from-creds");  // the credentials file wins
  EXPECT_TRUE(p.Has("base"));
  EXPECT_FALSE(p.Has("orphan"));  // a config section without the "profile " prefix is ignored
  EXPECT_FALSE(p.Has("sso-session corp"));
  EXPECT_FALSE(p.Has("corp"));
}

}  // namespace
}  // namespace xrayd::aws
