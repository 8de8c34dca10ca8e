#include "aws/region.h"

#include <simdjson.h>

#include "aws/imds.h"
#include "common/log.h"

namespace xrayd::aws {

std::optional<std::string> RegionFromEcsMetadataFile(const EnvLookup& env) {
  auto enabled = EnvValue(env, "ECS_ENABLE_CONTAINER_METADATA");
  if (!enabled || !IsTrue(*enabled)) return std::nullopt;
  const std::string path = EnvValue(env, "ECS_CONTAINER_METADATA_FILE").value_or("");
  auto text = ReadWholeFile(path);
  if (!text) {
    XLOG_ERROR("Unable to open ECS metadata file: {}", path.empty() ? "ECS_CONTAINER_METADATA_FILE not set" : path);
    return std::nullopt;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view arn;
  if (parser.parse(*text).get(root) != simdjson::SUCCESS || root["TaskARN"].get(arn) != simdjson::SUCCESS) {
    XLOG_ERROR("Unable to read ECS metadata file contents: {} has no TaskARN", path);
    return std::nullopt;
  }
  // arn:aws:ecs:<region>:<account>:task/...
  size_t pos = 0;
  for (int field = 0; field < 3; ++field) {
    pos = arn.find(':', pos);
    if (pos == std::string_view::npos) return std::nullopt;
    ++pos;
  }
  const size_t end = arn.find(':', pos);
  if (end == std::string_view::npos || end == pos) return std::nullopt;
  return std::string(arn.substr(pos, end - pos));
}

Result<ResolvedRegion> ResolveRegion(const std::string& configured, bool local_mode, const EnvLookup& env,
                                     ImdsClient* imds) {
  if (!configured.empty()) return ResolvedRegion{configured, "command line, config file or AWS_REGION"};
  if (!local_mode) {
    if (auto r = RegionFromEcsMetadataFile(env)) return ResolvedRegion{*r, "ECS metadata file"};
    if (imds != nullptr && !imds->disabled()) {
      auto r = imds->Get("/latest/meta-data/placement/region");
      if (r && !r->empty()) return ResolvedRegion{*r, "EC2 instance metadata"};
      XLOG_ERROR("Unable to fetch region from EC2 metadata: {}", r ? "empty answer" : r.error().message);
    }
  } else {
    if (auto r = EnvValue(env, "AWS_DEFAULT_REGION")) return ResolvedRegion{*r, "AWS_DEFAULT_REGION"};
    if (auto r = SharedConfigValue(env, "region"); r && !r->empty())
      return ResolvedRegion{*r, "shared config file, profile " + ActiveProfileName(env)};
  }
  return Error::InvalidArgument(
      "Cannot fetch region variable from config file, environment variables, ecs metadata, or ec2 metadata. "
      "Use local-mode to use the local session region.");
}

}  // namespace xrayd::aws
