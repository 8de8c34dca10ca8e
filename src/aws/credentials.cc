#include "aws/credentials.h"

namespace xrayd::aws {

Result<Credentials> CredentialsFromEnvironment(const EnvLookup& env) {
  Credentials c;
  c.access_key_id = EnvValue(env, "AWS_ACCESS_KEY_ID").value_or(EnvValue(env, "AWS_ACCESS_KEY").value_or(""));
  c.secret_access_key = EnvValue(env, "AWS_SECRET_ACCESS_KEY").value_or(EnvValue(env, "AWS_SECRET_KEY").value_or(""));
  c.session_token = EnvValue(env, "AWS_SESSION_TOKEN").value_or("");
  if (c.empty()) return Error::InvalidArgument("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set");
  return c;
}

Result<Credentials> CredentialsFromSharedFiles(const EnvLookup& env) {
  const std::string profile = ActiveProfileName(env);
  const SharedProfiles files = SharedProfiles::Load(env);
  Credentials c;
  c.access_key_id = files.Get(profile, "aws_access_key_id").value_or("");
  c.secret_access_key = files.Get(profile, "aws_secret_access_key").value_or("");
  c.session_token = files.Get(profile, "aws_session_token").value_or("");
  if (!c.empty()) return c;
  return Error::InvalidArgument("no keys for profile \"" + profile + "\" in " + files.Paths());
}

}  // namespace xrayd::aws
