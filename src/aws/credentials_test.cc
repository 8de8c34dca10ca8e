// The credential chain: each source, their precedence, and profiles that assume roles or run
// processes, against local stand-ins for STS, IMDS and the container credentials endpoint.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "aws/credential_chain.h"
#include "aws/credential_sources.h"
#include "aws/imds.h"
#include "tests/support/fake_aws.h"
#include "tests/support/map_env.h"

namespace xrayd::aws {
namespace {

using namespace std::chrono_literals;
using testing::FakeImds;
using testing::FakeSts;

using Env = std::map<std::string, std::string>;

using testing::MapEnv;

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
  std::string Script(const std::string& name, const std::string& body) {
    const std::string p = Write(name, "#!/bin/sh\n" + body);
    std::filesystem::permissions(p, std::filesystem::perms::owner_all);
    return p;
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// The container credentials endpoint (ECS agent / EKS Pod Identity agent).
class FakeContainerEndpoint {
 public:
  FakeContainerEndpoint() {
    http_.server().Get("/v1/credentials", [this](const httplib::Request& req, httplib::Response& res) {
      const int n = ++calls_;
      {
        std::lock_guard lock(mu_);
        auth_.push_back(req.get_header_value("Authorization"));
      }
      if (fail_) {
        res.status = 500;
        res.set_content(R"({"code":"InternalError","message":"agent is restarting"})", "application/json");
        return;
      }
      res.set_content(fmt::format(R"({{"AccessKeyId":"ASIACONTAINER{}","SecretAccessKey":"c-secret-{}","Token":"c-token-{}",)"
                                  R"("AccountId":"123456789012","Expiration":"{}"}})",
                                  n, n, n, testing::Iso8601(std::chrono::system_clock::now() + lifetime_)),
                      "application/json");
    });
    http_.Start();
  }
  std::string url() const { return http_.url() + "/v1/credentials"; }
  std::vector<std::string> auth() {
    std::lock_guard lock(mu_);
    return auth_;
  }
  int calls() const { return calls_; }
  std::atomic<bool> fail_{false};
  std::chrono::milliseconds lifetime_{3600s};

 private:
  testing::LocalHttpServer http_;
  std::mutex mu_;
  std::vector<std::string> auth_;
  std::atomic<int> calls_{0};
};

Result<std::unique_ptr<CredentialsProvider>> Chain(const Env& env, std::shared_ptr<ImdsClient> imds = nullptr,
                                                   std::string region = "eu-west-1") {
  ChainOptions o;
  o.env = MapEnv(env);
  o.region = std::move(region);
  o.imds = std::move(imds);
  return DefaultCredentialsChain(o);
}

std::shared_ptr<ImdsClient> ImdsAt(const std::string& url) {
  ImdsOptions o;
  o.endpoint = url;
  o.timeout = 500ms;
  return std::make_shared<ImdsClient>(o);
}

// ---------------------------------------------------------------------------------------------
// Static sources

TEST(Credentials, FromEnvironment) {
  auto c = CredentialsFromEnvironment(MapEnv({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"},
                                              {"AWS_SESSION_TOKEN", "TOK"}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AK");
  EXPECT_EQ(c->secret_access_key, "SK");
  EXPECT_EQ(c->session_token, "TOK");
  EXPECT_FALSE(CredentialsFromEnvironment(MapEnv({{"AWS_ACCESS_KEY_ID", "AK"}})));
  EXPECT_FALSE(CredentialsFromEnvironment(MapEnv({{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", "SK"}})));
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
  auto base = Env{{"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config}};

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

// ---------------------------------------------------------------------------------------------
// Precedence

TEST(CredentialChain, PrecedenceOfEverySource) {
  TempDir dir;
  FakeSts sts;
  FakeContainerEndpoint container;
  FakeImds imds_server({.require_token = true});
  auto imds = ImdsAt(imds_server.url());
  Env env = {
      {"HOME", dir.path()},
      {"AWS_ACCESS_KEY_ID", "AKENV"},
      {"AWS_SECRET_ACCESS_KEY", "SKENV"},
      {"AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"},
      {"AWS_WEB_IDENTITY_TOKEN_FILE", dir.Write("token", "jwt-token")},
      {"AWS_ENDPOINT_URL_STS", sts.url()},
      {"AWS_CONTAINER_CREDENTIALS_FULL_URI", container.url()},
      {"AWS_SHARED_CREDENTIALS_FILE", dir.Write("credentials", "[default]\naws_access_key_id=AKFILE\n"
                                                               "aws_secret_access_key=SKFILE\n")},
      {"AWS_CONFIG_FILE", dir.Write("config", "[default]\nregion = eu-west-1\n")},
  };
  auto key = [&](const Env& e) {
    auto chain = Chain(e, imds);
    if (!chain) return "error: " + chain.error().message;
    auto c = (*chain)->Get();
    return c ? c->access_key_id : "get error: " + c.error().message;
  };
  EXPECT_EQ(key(env), "AKENV");
  env.erase("AWS_ACCESS_KEY_ID");
  EXPECT_EQ(key(env), FakeSts::Issued(1).access_key_id);  // web identity
  env.erase("AWS_ROLE_ARN");                              // token file alone is not enough
  EXPECT_EQ(key(env), "ASIACONTAINER1");
  env.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  EXPECT_EQ(key(env), "AKFILE");
  env["AWS_SHARED_CREDENTIALS_FILE"] = dir.Write("credentials2", "[other]\naws_access_key_id=X\n");
  EXPECT_EQ(key(env), "ASIAIMDS0001") << "a profile with only a region falls through to instance metadata";
  ImdsOptions disabled;
  disabled.endpoint = imds_server.url();
  disabled.disabled = true;  // AWS_EC2_METADATA_DISABLED=true
  auto none = Chain(env, std::make_shared<ImdsClient>(disabled));
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("web identity (AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not)"),
            std::string::npos)
      << none.error().message;
  EXPECT_NE(none.error().message.find("AWS_EC2_METADATA_DISABLED"), std::string::npos) << none.error().message;
}

TEST(CredentialChain, WebIdentityFromTheEnvironment) {
  TempDir dir;
  FakeSts sts;
  const std::string token_file = dir.Write("token", "first.jwt.token");
  ChainOptions o;
  o.env = MapEnv({{"HOME", dir.path()},
                  {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/xray-daemon"},
                  {"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                  {"AWS_ROLE_SESSION_NAME", "pod-xyz"},
                  {"AWS_ENDPOINT_URL_STS", sts.url()}});
  o.region = "eu-west-1";
  o.refresh.refresh_before = 900ms;
  o.refresh.expiry_margin = 50ms;
  sts.set_lifetime(1200ms);
  auto chain = DefaultCredentialsChain(o);
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_NE((*chain)->Describe().find("web identity"), std::string::npos);
  auto c = (*chain)->Get();
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->access_key_id, FakeSts::Issued(1).access_key_id);
  EXPECT_EQ(c->session_token, FakeSts::Issued(1).session_token);
  // The kubelet rotates the token file; the next refresh must send the new token.
  dir.Write("token", "second.jwt.token");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ((*chain)->Get()->access_key_id, FakeSts::Issued(2).access_key_id);
  auto calls = sts.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].form["WebIdentityToken"], "first.jwt.token");
  EXPECT_EQ(calls[1].form["WebIdentityToken"], "second.jwt.token");
  EXPECT_EQ(calls[0].form["RoleSessionName"], "pod-xyz");
  EXPECT_EQ(calls[0].form["RoleArn"], "arn:aws:iam::123456789012:role/xray-daemon");
}

// ---------------------------------------------------------------------------------------------
// Container credentials

TEST(ContainerCredentials, TokenFileIsReadOnEveryFetch) {
  TempDir dir;
  FakeContainerEndpoint endpoint;
  endpoint.lifetime_ = 1200ms;
  const std::string token_file = dir.Write("eks-token", "pod-identity-token-1\n");
  RefreshOptions fast;
  fast.refresh_before = 900ms;
  fast.expiry_margin = 50ms;
  auto p = NewContainerProvider(endpoint.url(), MapEnv({{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file},
                                                         {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored"}}),
                                {}, fast);
  auto c = p->Get();
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->access_key_id, "ASIACONTAINER1");
  EXPECT_EQ(c->secret_access_key, "c-secret-1");
  EXPECT_EQ(c->session_token, "c-token-1");
  dir.Write("eks-token", "pod-identity-token-2");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(p->Get()->access_key_id, "ASIACONTAINER2");
  EXPECT_EQ(endpoint.auth(), (std::vector<std::string>{"pod-identity-token-1", "pod-identity-token-2"}));
}

TEST(ContainerCredentials, TokenVariableAndErrors) {
  FakeContainerEndpoint endpoint;
  auto ok = FetchContainerCredentials(endpoint.url(), MapEnv({{"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Basic abc"}}), {});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(endpoint.auth().back(), "Basic abc");
  endpoint.fail_ = true;
  auto failed = FetchContainerCredentials(endpoint.url(), MapEnv({}), {});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, Error::Kind::kRetryable);
  EXPECT_NE(failed.error().message.find("agent is restarting"), std::string::npos);
  EXPECT_FALSE(FetchContainerCredentials(endpoint.url(),
                                         MapEnv({{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent/token"}}), {}));
}

TEST(ContainerCredentials, WhichUrlsAreAllowed) {
  auto url = [](Env env) {
    auto r = ContainerCredentialsUrl(MapEnv(env));
    if (!r) return std::string("error");
    return r->value_or("none");
  };
  EXPECT_EQ(url({}), "none");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"}}),
            "http://169.254.170.2/v2/credentials/abc");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/rel"}, {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/x"}}),
            "http://169.254.170.2/rel");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials"}}),
            "http://169.254.170.23/v1/credentials");  // EKS Pod Identity
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://[fd00:ec2::23]/v1/credentials"}}),
            "http://[fd00:ec2::23]/v1/credentials");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.5:8080/creds"}}), "http://127.0.0.5:8080/creds");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://[::1]:8080/creds"}}), "http://[::1]:8080/creds");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://creds.example.com/x"}}), "https://creds.example.com/x");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds"}}), "error");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.169.254/creds"}}), "error");
  EXPECT_EQ(url({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "file:///etc/passwd"}}), "error");
  auto chain = Chain({{"HOME", "/nonexistent"}, {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds"}});
  ASSERT_FALSE(chain);
  EXPECT_NE(chain.error().message.find("use https"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Profiles

TEST(ProfileCredentials, RoleArnWithSourceProfileChains) {
  TempDir dir;
  FakeSts sts;
  const auto config = dir.Write("config",
                                "[profile xray]\nrole_arn = arn:aws:iam::222222222222:role/xray-writer\n"
                                "source_profile = middle\nrole_session_name = daemon-session\nexternal_id = ext-7\n"
                                "duration_seconds = 900\n"
                                "[profile middle]\nrole_arn = arn:aws:iam::111111111111:role/hop\nsource_profile = base\n");
  const auto creds = dir.Write("credentials", "[base]\naws_access_key_id = AKBASE\naws_secret_access_key = SKBASE\n");
  auto chain = Chain({{"HOME", dir.path()}, {"AWS_CONFIG_FILE", config}, {"AWS_SHARED_CREDENTIALS_FILE", creds},
                      {"AWS_PROFILE", "xray"}, {"AWS_ENDPOINT_URL_STS", sts.url()}},
                     nullptr, "eu-north-1");
  ASSERT_TRUE(chain) << chain.error().message;
  auto c = (*chain)->Get();
  ASSERT_TRUE(c) << c.error().message;
  // base keys → AssumeRole(hop) → its credentials → AssumeRole(xray-writer)
  auto calls = sts.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].form["RoleArn"], "arn:aws:iam::111111111111:role/hop");
  EXPECT_EQ(testing::VerifySigV4(calls[0].request, {"AKBASE", "SKBASE", ""}, "eu-north-1", "sts"), "");
  EXPECT_EQ(calls[1].form["RoleArn"], "arn:aws:iam::222222222222:role/xray-writer");
  EXPECT_EQ(calls[1].form["RoleSessionName"], "daemon-session");
  EXPECT_EQ(calls[1].form["ExternalId"], "ext-7");
  EXPECT_EQ(calls[1].form["DurationSeconds"], "900");
  EXPECT_EQ(testing::VerifySigV4(calls[1].request, FakeSts::Issued(1), "eu-north-1", "sts"), "");
  EXPECT_EQ(c->access_key_id, FakeSts::Issued(2).access_key_id);
}

TEST(ProfileCredentials, RoleArnSourcesAndMistakes) {
  TempDir dir;
  FakeSts sts;
  const auto config = dir.Write(
      "config",
      "[profile self]\nrole_arn = arn:aws:iam::1:role/self\nsource_profile = self\naws_access_key_id = AKSELF\n"
      "aws_secret_access_key = SKSELF\n"
      "[profile webid]\nrole_arn = arn:aws:iam::1:role/webid\nweb_identity_token_file = " + dir.Write("t", "jwt") + "\n"
      "[profile loop1]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = loop2\n"
      "[profile loop2]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = loop1\n"
      "[profile nosource]\nrole_arn = arn:aws:iam::1:role/x\n"
      "[profile mfa]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = self\nmfa_serial = arn:aws:iam::1:mfa/me\n"
      "[profile badsource]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Magic\n"
      "[profile sso]\nsso_session = corp\nsso_account_id = 1\n");
  auto chain = [&](const std::string& profile, Env extra = {}) {
    Env env{{"HOME", dir.path()}, {"AWS_CONFIG_FILE", config}, {"AWS_SHARED_CREDENTIALS_FILE", dir.path() + "/none"},
            {"AWS_PROFILE", profile}, {"AWS_ENDPOINT_URL_STS", sts.url()}};
    env.insert(extra.begin(), extra.end());
    return Chain(env);
  };
  auto self = chain("self");
  ASSERT_TRUE(self) << self.error().message;
  ASSERT_TRUE((*self)->Get());
  EXPECT_EQ(testing::VerifySigV4(sts.calls().back().request, {"AKSELF", "SKSELF", ""}, "eu-west-1", "sts"), "");

  auto webid = chain("webid");
  ASSERT_TRUE(webid) << webid.error().message;
  ASSERT_TRUE((*webid)->Get());
  EXPECT_EQ(sts.calls().back().action, "AssumeRoleWithWebIdentity");
  EXPECT_EQ(sts.calls().back().form["WebIdentityToken"], "jwt");

  auto message = [&](const std::string& profile) {
    auto r = chain(profile);
    return r ? std::string("no error") : r.error().message;
  };
  EXPECT_NE(message("loop1").find("source_profile loop"), std::string::npos) << message("loop1");
  EXPECT_NE(message("nosource").find("needs source_profile"), std::string::npos) << message("nosource");
  EXPECT_NE(message("mfa").find("mfa_serial"), std::string::npos);
  EXPECT_NE(message("badsource").find("credential_source must be"), std::string::npos);
  EXPECT_NE(message("sso").find("SSO"), std::string::npos);
  EXPECT_NE(message("missing").find("not found"), std::string::npos);
}

TEST(ProfileCredentials, CredentialSourceEnvironmentNeedsTheVariables) {
  // With the variables set, link 1 wins before any profile; without them the profile is an error.
  TempDir dir;
  FakeSts sts;
  const auto config = dir.Write("config", "[profile fromenv]\nrole_arn = arn:aws:iam::1:role/env\n"
                                          "credential_source = Environment\n");
  auto chain = Chain({{"HOME", dir.path()}, {"AWS_CONFIG_FILE", config}, {"AWS_PROFILE", "fromenv"},
                      {"AWS_ENDPOINT_URL_STS", sts.url()}});
  ASSERT_FALSE(chain);
  EXPECT_NE(chain.error().message.find("credential_source Environment"), std::string::npos) << chain.error().message;
}

TEST(ProfileCredentials, CredentialProcess) {
  TempDir dir;
  const std::string counter = dir.path() + "/count";
  const std::string script = dir.Script("helper.sh",
                                        "n=$(cat " + counter + " 2>/dev/null || echo 0); n=$((n+1)); echo $n > " +
                                            counter + "\n"
                                            "exp=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\n"
                                            "printf '{\"Version\": 1, \"AccessKeyId\": \"AKPROC%s\", \"SecretAccessKey\": "
                                            "\"proc secret\", \"SessionToken\": \"proc-token\", \"Expiration\": \"%s\"}' "
                                            "\"$n\" \"$exp\"\n");
  const auto config = dir.Write("config", "[default]\ncredential_process = " + script + " --profile \"with space\"\n");
  auto chain = Chain({{"HOME", dir.path()}, {"AWS_CONFIG_FILE", config}});
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_NE((*chain)->Describe().find("credential_process"), std::string::npos);
  auto c = (*chain)->Get();
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->access_key_id, "AKPROC1");
  EXPECT_EQ(c->secret_access_key, "proc secret");
  EXPECT_EQ(c->session_token, "proc-token");
  EXPECT_EQ((*chain)->Get()->access_key_id, "AKPROC1") << "cached until it nears its expiration";
}

TEST(ProcessCredentials, FailuresAreReported) {
  TempDir dir;
  auto fail = FetchProcessCredentials("echo 'no such profile' >&2; exit 3", 5s);
  ASSERT_FALSE(fail);
  EXPECT_NE(fail.error().message.find("exited with status 3: no such profile"), std::string::npos) << fail.error().message;
  auto version = FetchProcessCredentials(R"(echo '{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "S"}')", 5s);
  ASSERT_FALSE(version);
  EXPECT_NE(version.error().message.find("Version"), std::string::npos);
  auto garbage = FetchProcessCredentials("echo hello", 5s);
  EXPECT_FALSE(garbage);
  const auto t0 = std::chrono::steady_clock::now();
  auto slow = FetchProcessCredentials("sleep 10", 300ms);
  ASSERT_FALSE(slow);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_NE(slow.error().message.find("did not finish"), std::string::npos);
  auto no_expiry = FetchProcessCredentials(R"(echo '{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S"}')", 5s);
  ASSERT_TRUE(no_expiry) << no_expiry.error().message;
  EXPECT_FALSE(no_expiry->expiration);
}

TEST(CredentialChain, StaticProfileAndEnvOnlyOverload) {
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
