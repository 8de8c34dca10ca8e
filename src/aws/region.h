// Which region the daemon works in, resolved as AWS's X-Ray daemon does:
//   1. `configured`: -n / --region, else the config file's Region, else AWS_REGION (LoadConfig has
//      already merged these three, in that order);
//   2. without local mode: the ECS container metadata file (ECS_ENABLE_CONTAINER_METADATA=true and
//      ECS_CONTAINER_METADATA_FILE: the region field of its TaskARN), then instance metadata
//      placement/region (IMDSv2 with the v1 fallback);
//   3. in local mode (-o): AWS_DEFAULT_REGION, then the active profile's `region` in the shared
//      config file. Local mode makes no metadata lookups at all.
// The error, when no source has a region, is AWS's daemon's message. Thread-safe.
#pragma once

#include <optional>
#include <string>

#include "aws/env.h"
#include "common/result.h"

namespace xrayd::aws {

class ImdsClient;

struct ResolvedRegion {
  std::string region;
  std::string source;  // for the log: "command line, config file or AWS_REGION", "EC2 instance metadata", ...
};

// `imds` may be null (no instance metadata link).
Result<ResolvedRegion> ResolveRegion(const std::string& configured, bool local_mode, const EnvLookup& env,
                                     ImdsClient* imds);

// The region in the TaskARN of the ECS container metadata file, if enabled and readable.
std::optional<std::string> RegionFromEcsMetadataFile(const EnvLookup& env);

}  // namespace xrayd::aws
