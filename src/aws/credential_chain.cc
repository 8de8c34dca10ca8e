#include "aws/credential_chain.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include "aws/credential_sources.h"
#include "aws/imds.h"
#include "aws/sts.h"

namespace xrayd::aws {
namespace {

using ProviderResult = Result<std::unique_ptr<CredentialsProvider>>;

ProviderResult Static(Credentials c, std::string source) {
  return std::unique_ptr<CredentialsProvider>(std::make_unique<StaticCredentialsProvider>(std::move(c), std::move(source)));
}

ProviderResult Wrap(std::unique_ptr<CredentialsProvider> p) { return ProviderResult(std::move(p)); }

Result<std::shared_ptr<StsClient>> MakeSts(const ChainOptions& o) {
  auto endpoint = ResolveStsEndpoint(o.env, o.region);
  if (!endpoint) return endpoint.error();
  return std::make_shared<StsClient>(*endpoint, o.http);
}

// Profile keys that mean "this profile supplies credentials".
constexpr const char* kCredentialKeys[] = {"aws_access_key_id", "aws_secret_access_key", "role_arn",
                                           "credential_process", "web_identity_token_file", "sso_session",
                                           "sso_start_url"};

// Resolves a profile of the shared files into a provider, following source_profile chains.
class ProfileResolver {
 public:
  ProfileResolver(const ChainOptions& o, const SharedProfiles& files) : o_(o), files_(files) {}

  bool SuppliesCredentials(const std::string& name) const {
    return std::any_of(std::begin(kCredentialKeys), std::end(kCredentialKeys),
                       [&](const char* k) { return files_.Get(name, k).has_value(); });
  }

  ProviderResult Resolve(const std::string& name, bool as_source) {
    if (!files_.Has(name)) return Error::InvalidArgument("profile \"" + name + "\" not found in " + files_.Paths());
    auto get = [&](const char* key) { return files_.Get(name, key); };
    Credentials keys{get("aws_access_key_id").value_or(""), get("aws_secret_access_key").value_or(""),
                     get("aws_session_token").value_or("")};
    const std::string where = "shared config/credentials file, profile " + name;
    // A profile used as another's source_profile gives its static keys if it has them.
    if (as_source && !keys.empty()) return Static(keys, where);
    if (auto role_arn = get("role_arn")) return AssumeRoleProfile(name, *role_arn, keys);
    if (!keys.empty()) return Static(keys, where);
    if (auto process = get("credential_process")) return Wrap(NewProcessProvider(*process, name, o_.refresh));
    if (get("sso_session") || get("sso_start_url"))
      return Error::InvalidArgument("profile \"" + name + "\" uses IAM Identity Center (SSO), which xrayd does not "
                                    "support; export its credentials, or use a role or instance profile");
    return Error::InvalidArgument("profile \"" + name + "\" has no credentials");
  }

 private:
  ProviderResult AssumeRoleProfile(const std::string& name, const std::string& role_arn, const Credentials& keys) {
    auto get = [&](const char* key) { return files_.Get(name, key); };
    auto fail = [&](const std::string& why) { return Error::InvalidArgument("profile \"" + name + "\": " + why); };
    if (get("mfa_serial")) return fail("mfa_serial needs an MFA code typed in, which a daemon cannot do");
    auto sts = MakeSts(o_);
    if (!sts) return sts.error();
    const std::string session = get("role_session_name").value_or("");
    if (auto token_file = get("web_identity_token_file")) {
      return Wrap(NewWebIdentityProvider({role_arn, session, ExpandHome(o_.env, *token_file)}, *sts, o_.refresh));
    }
    std::shared_ptr<CredentialsProvider> source;
    if (auto source_profile = get("source_profile")) {
      if (*source_profile == name) {
        if (keys.empty()) return fail("source_profile names the profile itself, which has no keys");
        source = std::make_shared<StaticCredentialsProvider>(keys, "shared config/credentials file, profile " + name);
      } else if (std::find(visiting_.begin(), visiting_.end(), *source_profile) != visiting_.end()) {
        std::string cycle;
        for (const auto& v : visiting_) cycle += v + " -> ";
        return fail("source_profile loop: " + cycle + name + " -> " + *source_profile);
      } else {
        visiting_.push_back(name);
        auto inner = Resolve(*source_profile, true);
        visiting_.pop_back();
        if (!inner) return fail("source_profile \"" + *source_profile + "\": " + inner.error().message);
        source = std::move(*inner);
      }
    } else if (auto cs = get("credential_source")) {
      if (*cs == "Environment") {
        auto env = CredentialsFromEnvironment(o_.env);
        if (!env) return fail("credential_source Environment: " + env.error().message);
        source = std::make_shared<StaticCredentialsProvider>(*env, "environment variables");
      } else if (*cs == "Ec2InstanceMetadata") {
        if (!o_.imds || o_.imds->disabled()) return fail("credential_source Ec2InstanceMetadata, but instance metadata is disabled");
        source = NewInstanceProfileProvider(o_.imds, o_.refresh);
      } else if (*cs == "EcsContainer") {
        auto url = ContainerCredentialsUrl(o_.env);
        if (!url) return fail(url.error().message);
        if (!*url) return fail("credential_source EcsContainer, but AWS_CONTAINER_CREDENTIALS_*_URI is not set");
        source = NewContainerProvider(**url, o_.env, o_.http, o_.refresh);
      } else {
        return fail("credential_source must be Environment, Ec2InstanceMetadata or EcsContainer, got \"" + *cs + "\"");
      }
    } else {
      return fail("role_arn needs source_profile, credential_source or web_identity_token_file");
    }
    AssumeRoleParams params{role_arn, session, get("external_id").value_or(""), 0};
    if (auto d = get("duration_seconds")) {
      int v = 0;
      auto [p, ec] = std::from_chars(d->data(), d->data() + d->size(), v);
      if (ec != std::errc() || p != d->data() + d->size() || v < 900) return fail("duration_seconds must be an integer >= 900");
      params.duration_seconds = v;
    }
    return Wrap(NewAssumeRoleProvider(std::move(source), std::move(params), *sts, o_.refresh));
  }

  const ChainOptions& o_;
  const SharedProfiles& files_;
  std::vector<std::string> visiting_;
};

}  // namespace

Result<std::unique_ptr<CredentialsProvider>> DefaultCredentialsChain(const ChainOptions& o) {
  const EnvLookup& env = o.env;
  std::vector<std::string> tried;

  // 1. Environment variables.
  if (auto c = CredentialsFromEnvironment(env)) return Static(*c, "environment variables");
  tried.push_back("environment variables (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set)");

  // 2. Web identity.
  auto role_arn = EnvValue(env, "AWS_ROLE_ARN");
  auto token_file = EnvValue(env, "AWS_WEB_IDENTITY_TOKEN_FILE");
  if (role_arn && token_file) {
    auto sts = MakeSts(o);
    if (!sts) return sts.error();
    return Wrap(NewWebIdentityProvider({*role_arn, EnvValue(env, "AWS_ROLE_SESSION_NAME").value_or(""), *token_file},
                                       *sts, o.refresh));
  }
  tried.push_back(token_file ? "web identity (AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not)"
                             : "web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set)");

  // 3. Container credentials (ECS, EKS Pod Identity).
  auto container = ContainerCredentialsUrl(env);
  if (!container) return container.error();
  if (*container) return Wrap(NewContainerProvider(**container, env, o.http, o.refresh));
  tried.push_back("container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI not set)");

  // 4. The active profile of the shared files.
  const SharedProfiles files = SharedProfiles::Load(env);
  const std::string profile = ActiveProfileName(env);
  ProfileResolver resolver(o, files);
  if (files.Has(profile) && resolver.SuppliesCredentials(profile)) return resolver.Resolve(profile, false);
  if (ProfileNamedExplicitly(env) && !files.Has(profile))
    return Error::InvalidArgument("AWS profile \"" + profile + "\" not found in " + files.Paths());
  tried.push_back("shared files (no credentials for profile \"" + profile + "\" in " + files.Paths() + ")");

  // 5. Instance metadata.
  if (o.imds && !o.imds->disabled()) return Wrap(NewInstanceProfileProvider(o.imds, o.refresh));
  tried.push_back(o.imds ? "EC2 instance metadata (AWS_EC2_METADATA_DISABLED)" : "EC2 instance metadata (not consulted)");

  std::string msg = "no AWS credentials found; tried ";
  for (size_t i = 0; i < tried.size(); ++i) msg += (i ? "; " : "") + tried[i];
  return Error::InvalidArgument(msg);
}

Result<std::unique_ptr<CredentialsProvider>> DefaultCredentialsChain(const EnvLookup& env) {
  ChainOptions o;
  o.env = env;
  return DefaultCredentialsChain(o);
}

}  // namespace xrayd::aws
