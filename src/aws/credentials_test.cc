#include "aws/credentials.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace xrayd::aws {
namespace {

EnvLookup MapEnv(std::map<std::string, std::string> m) {
  return [m](std::string_view k) -> std::optional<std::string> {
    auto it = m.find(std::string(k));
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() / ("xrayd-creds-" + std::to_string(::getpid()) + "-" +
                                                      std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) {
    auto p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(Credentials, FromEnvironment) {
  auto c = CredentialsFromEnvironment(MapEnv({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                                              {"AWS_SESSION_TOKEN", "TOK"}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AK");
  EXPECT_EQ(c->secret_access_key, "SK");
  EXPECT_EQ(c->session_token, "TOK");
  EXPECT_FALSE(CredentialsFromEnvironment(MapEnv({{"AWS_ACCESS_KEY_ID", "AK"}})));
  auto legacy = CredentialsFromEnvironment(MapEnv({{"AWS_ACCESS_KEY", "A2"}, {"AWS_SECRET_KEY", "S2"}}));
  ASSERT_TRUE(legacy);
  EXPECT_EQ(legacy->access_key_id, "A2");
}

TEST(Credentials, SharedFilesWithProfiles) {
  TempDir dir;
  const auto creds = dir.Write("credentials",
                               "[default]\naws_access_key_id = DEF\naws_secret_access_key = DEFS\n\n"
                               "# comment\n[prod]\naws_access_key_id=PROD\n aws_secret_access_key = PRODS \n"
                               "aws_session_token = PTOK\n");
  const auto config = dir.Write("config", "[default]\nregion = eu-west-1\n[profile cfgonly]\n"
                                          "aws_access_key_id = CFG\naws_secret_access_key = CFGS\nregion = ap-south-1\n");
  auto base = std::map<std::string, std::string>{{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config}};

  auto d = CredentialsFromSharedFiles(MapEnv(base));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->access_key_id, "DEF");

  auto with_profile = base;
  with_profile["AWS_PROFILE"] = "prod";
  auto p = CredentialsFromSharedFiles(MapEnv(with_profile));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->access_key_id, "PROD");
  EXPECT_EQ(p->secret_access_key, "PRODS");
  EXPECT_EQ(p->session_token, "PTOK");

  auto cfg_profile = base;
  cfg_profile["AWS_PROFILE"] = "cfgonly";
  auto c = CredentialsFromSharedFiles(MapEnv(cfg_profile));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "CFG");
  EXPECT_EQ(SharedConfigValue(MapEnv(cfg_profile), "region"), "ap-south-1");
  EXPECT_EQ(SharedConfigValue(MapEnv(base), "region"), "eu-west-1");

  auto missing = base;
  missing["AWS_PROFILE"] = "nope";
  auto m = CredentialsFromSharedFiles(MapEnv(missing));
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("nope"), std::string::npos);
}

TEST(Credentials, ChainPrefersEnvironment) {
  TempDir dir;
  const auto creds = dir.Write("credentials", "[default]\naws_access_key_id = FILE\naws_secret_access_key = FS\n");
  auto chain = DefaultCredentialsChain(
      MapEnv({{"AWS_ACCESS_KEY_ID", "ENV"}, {"AWS_SECRET_ACCESS_KEY", "ES"}, {"AWS_SHARED_CREDENTIALS_FILE", creds}}));
  ASSERT_TRUE(chain);
  EXPECT_EQ((*chain)->Get()->access_key_id, "ENV");
  auto files_only = DefaultCredentialsChain(MapEnv({{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"HOME", "/nonexistent"}}));
  ASSERT_TRUE(files_only);
  EXPECT_EQ((*files_only)->Get()->access_key_id, "FILE");
  EXPECT_FALSE(DefaultCredentialsChain(MapEnv({{"HOME", "/nonexistent"}})));
}

}  // namespace
}  // namespace xrayd::aws
