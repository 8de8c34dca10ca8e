// Resolves the X-Ray API endpoint for a region, across AWS partitions (aws, aws-cn, aws-us-gov,
// the ISO partitions), with FIPS and dual-stack variants. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

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

// A URL's parts, for signing and Host headers. Accepts http:// and https:// only.
struct Url {
  std::string scheme;     // "http" | "https"
  std::string host;       // without port
  std::string authority;  // host[:port] as it goes in the Host header
  std::string path;       // base path, "" or "/prefix" without trailing slash
};
Result<Url> ParseUrl(std::string_view url);

}  // namespace xrayd::aws
