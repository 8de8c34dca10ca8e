// Resolves the X-Ray API endpoint for a region, across AWS partitions (aws, aws-cn, aws-us-gov,
// the ISO partitions), with FIPS and dual-stack variants. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "aws/env.h"
#include "common/result.h"

namespace xrayd::aws {

struct EndpointVariant {
  bool fips = false;       // AWS_USE_FIPS_ENDPOINT=true, or a "fips-" / "-fips" region name
  bool dualstack = false;  // AWS_USE_DUALSTACK_ENDPOINT=true
};

// The DNS suffix of the partition the region belongs to ("amazonaws.com", "amazonaws.com.cn", ...).
std::string_view PartitionDnsSuffix(std::string_view region);

// "https://xray.us-west-2.amazonaws.com" and friends. Error for an empty or malformed region.
Result<std::string> ServiceEndpoint(std::string_view service, std::string region, EndpointVariant variant);

// The endpoint URL configured for a service outside the code, as current AWS SDKs read it:
// AWS_ENDPOINT_URL_<SERVICE> (the service id upper-cased, spaces as '_': "STS", "XRAY"), then
// AWS_ENDPOINT_URL, then the active profile's endpoint_url; none of them when
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS (or the profile's ignore_configured_endpoint_urls) is true.
// (The config file's per-service [services] sections are not read.)
std::optional<std::string> ConfiguredEndpointUrl(const EnvLookup& env, std::string_view service_id);

// The partition's primary region, where global services (STS's global endpoint) live:
// us-east-1, cn-north-1, us-gov-west-1, us-iso-east-1, us-isob-east-1, ...
std::string PartitionPrimaryRegion(std::string_view region);

// A URL's parts, for signing and Host headers. Accepts http:// and https:// only.
struct Url {
  std::string scheme;     // "http" | "https"
  std::string host;       // without port
  std::string authority;  // host[:port] as it goes in the Host header
  std::string path;       // base path, "" or "/prefix" without trailing slash
};
Result<Url> ParseUrl(std::string_view url);

}  // namespace xrayd::aws
