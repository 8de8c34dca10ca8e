#include "aws/endpoint.h"

#include <cctype>

namespace xrayd::aws {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

bool IsRegionName(std::string_view r) {
  if (r.empty() || r.size() > 64) return false;
  for (char c : r)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
      return false;
  return r.front() != '-' && r.back() != '-';
}

}  // namespace

std::string_view PartitionDnsSuffix(std::string_view region) {
  if (StartsWith(region, "cn-")) return "amazonaws.com.cn";
  if (StartsWith(region, "us-isob-")) return "sc2s.sgov.gov";
  if (StartsWith(region, "us-isof-")) return "csp.hci.ic.gov";
  if (StartsWith(region, "us-iso-")) return "c2s.ic.gov";
  if (StartsWith(region, "eu-isoe-")) return "cloud.adc-e.uk";
  return "amazonaws.com";  // aws and aws-us-gov
}

Result<std::string> ServiceEndpoint(std::string_view service, std::string region, EndpointVariant variant) {
  if (StartsWith(region, "fips-")) {
    region = region.substr(5);
    variant.fips = true;
  } else if (EndsWith(region, "-fips")) {
    region = region.substr(0, region.size() - 5);
    variant.fips = true;
  }
  if (!IsRegionName(region)) return Error::InvalidArgument("invalid region \"" + region + "\"");
  const std::string_view suffix = PartitionDnsSuffix(region);
  std::string host(service);
  if (variant.fips) host += "-fips";
  host += "." + region + ".";
  if (variant.dualstack) {
    // Dual-stack endpoints live under api.aws (aws, aws-us-gov) and api.amazonwebservices.com.cn.
    host += StartsWith(region, "cn-") ? "api.amazonwebservices.com.cn" : "api.aws";
  } else {
    host += suffix;
  }
  return "https://" + host;
}

std::optional<std::string> ConfiguredEndpointUrl(const EnvLookup& env, std::string_view service_id) {
  if (EnvFlag(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) return std::nullopt;
  std::string var = "AWS_ENDPOINT_URL_";
  for (char c : service_id) var.push_back(c == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (auto v = EnvValue(env, var)) return v;
  if (auto v = EnvValue(env, "AWS_ENDPOINT_URL")) return v;
  const SharedProfiles files = SharedProfiles::Load(env);
  const std::string profile = ActiveProfileName(env);
  if (auto ignore = files.Get(profile, "ignore_configured_endpoint_urls"); ignore && IsTrue(*ignore)) return std::nullopt;
  if (auto v = files.Get(profile, "endpoint_url"); v && !v->empty()) return v;
  return std::nullopt;
}

std::string PartitionPrimaryRegion(std::string_view region) {
  if (StartsWith(region, "cn-")) return "cn-north-1";
  if (StartsWith(region, "us-gov-")) return "us-gov-west-1";
  if (StartsWith(region, "us-isob-")) return "us-isob-east-1";
  if (StartsWith(region, "us-isof-")) return "us-isof-south-1";
  if (StartsWith(region, "us-iso-")) return "us-iso-east-1";
  if (StartsWith(region, "eu-isoe-")) return "eu-isoe-west-1";
  return "us-east-1";
}

Result<Url> ParseUrl(std::string_view url) {
  Url u;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return Error::InvalidArgument("endpoint \"" + std::string(url) + "\" has no scheme (want http:// or https://)");
  u.scheme = std::string(url.substr(0, sep));
  for (auto& c : u.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (u.scheme != "http" && u.scheme != "https")
    return Error::InvalidArgument("endpoint \"" + std::string(url) + "\" must use http:// or https://");
  std::string_view rest = url.substr(sep + 3);
  const size_t slash = rest.find('/');
  u.authority = std::string(rest.substr(0, slash));
  if (u.authority.empty()) return Error::InvalidArgument("endpoint \"" + std::string(url) + "\" has no host");
  if (u.authority.find('@') != std::string::npos)
    return Error::InvalidArgument("endpoint \"" + std::string(url) + "\" must not carry user info");
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    u.path = std::string(path);
  }
  if (u.authority.front() == '[') {  // IPv6 literal
    const size_t close = u.authority.find(']');
    if (close == std::string::npos) return Error::InvalidArgument("endpoint \"" + std::string(url) + "\": bad IPv6 host");
    u.host = u.authority.substr(1, close - 1);
  } else {
    u.host = u.authority.substr(0, u.authority.find(':'));
  }
  // Default ports are left out of Host, as HTTP clients and the signers on the other side expect.
  if ((u.scheme == "http" && u.authority.ends_with(":80")) || (u.scheme == "https" && u.authority.ends_with(":443")))
    u.authority.resize(u.authority.size() - (u.scheme == "http" ? 3 : 4));
  return u;
}

}  // namespace xrayd::aws
