#include "cli/healthcheck.h"

#include <cstdio>

#include "cli/config.h"
#include "cli/flags.h"
#include "common/host_port.h"
#include "http/http_client.h"

namespace xrayd::cli {
namespace {

constexpr const char* kUsage = "usage: xrayd healthcheck [--address HOST:PORT] [-c FILE] [--timeout SECONDS]";

// The address to probe: the flag, else the config file's Xrayd.HealthAddress, else the image default.
Result<std::string> ProbeAddress(const ParsedFlags& flags, const aws::EnvLookup& env) {
  if (flags.Has("address")) return flags.Get("address");
  std::vector<std::string> config_args;
  if (flags.Has("config")) config_args = {"-c", flags.Get("config")};
  auto config = LoadConfig(config_args, env);
  if (!config) return config.error();
  return config->health_address.empty() ? std::string(kDefaultHealthAddress) : config->health_address;
}

Result<std::chrono::milliseconds> ProbeTimeout(const ParsedFlags& flags) {
  if (!flags.Has("timeout")) return std::chrono::milliseconds(2000);
  const std::string& s = flags.Get("timeout");
  char* end = nullptr;
  const double seconds = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(seconds > 0) || seconds > 60)
    return Error::InvalidArgument("--timeout wants seconds in (0, 60], got \"" + s + "\"");
  return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

}  // namespace

std::string HealthcheckUrl(const std::string& address) {
  auto hp = SplitHostPort(address);
  if (!hp) return {};
  std::string host = hp->host;
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + hp->port + "/healthz";
}

int RunHealthcheck(const std::vector<std::string>& args, const aws::EnvLookup& env) {
  static const std::vector<FlagSpec> specs = {{{"address"}}, {{"c", "config"}}, {{"timeout"}}};
  auto flags = ParseFlags(specs, args);
  if (flags && !flags->positional.empty())
    flags = Error::InvalidArgument("unexpected argument \"" + flags->positional.front() + "\"");
  if (!flags) {
    std::fprintf(stderr, "xrayd healthcheck: %s\n%s\n", flags.error().message.c_str(), kUsage);
    return 1;
  }
  auto address = ProbeAddress(*flags, env);
  auto timeout = ProbeTimeout(*flags);
  const std::string url = address ? HealthcheckUrl(*address) : std::string();
  if (!address || !timeout || url.empty()) {
    const std::string why = !address   ? address.error().message
                            : !timeout ? timeout.error().message
                                       : "address \"" + *address + "\" is not host:port";
    std::fprintf(stderr, "xrayd healthcheck: %s\n", why.c_str());
    return 1;
  }
  http::ClientOptions options;
  options.direct = true;  // a loopback probe: HTTP(S)_PROXY must not apply
  options.timeout = *timeout;
  options.connect_timeout = *timeout;
  options.max_response_bytes = 64 * 1024;
  http::Client client(options);
  auto response = client.Send({"GET", url, {}, {}});
  if (!response) {
    std::fprintf(stderr, "xrayd healthcheck: %s: %s\n", url.c_str(), response.error().message.c_str());
    return 1;
  }
  if (response->status != 200) {
    std::fprintf(stderr, "xrayd healthcheck: %s: HTTP %ld\n", url.c_str(), response->status);
    return 1;
  }
  std::printf("xrayd healthcheck: %s: healthy\n", url.c_str());
  return 0;
}

}  // namespace xrayd::cli
