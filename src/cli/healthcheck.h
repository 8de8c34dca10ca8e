// `xrayd healthcheck`: the image's HEALTHCHECK and the exec probe for ECS and Kubernetes, so the image
// needs no curl. One GET of /healthz on the daemon's health address, with a short total timeout.
//
//   xrayd healthcheck [--address HOST:PORT] [-c FILE] [--timeout SECONDS]
//
// The address: --address, else Xrayd.HealthAddress of the config file (-c, else the default file the
// daemon would read), else 127.0.0.1:2100 (the address the image's ENTRYPOINT gives the daemon). A
// wildcard host (0.0.0.0, ::, empty) is probed on loopback. Never goes through a proxy.
// Exit code: 0 when /healthz answers 200, 1 otherwise (refused, timeout, other status, bad usage),
// as Docker's HEALTHCHECK wants (2 is reserved there).
#pragma once

#include <string>
#include <vector>

#include "aws/env.h"

namespace xrayd::cli {

inline constexpr const char* kDefaultHealthAddress = "127.0.0.1:2100";

// The URL probed for `address` ("host:port" as the daemon's --health-address takes it).
std::string HealthcheckUrl(const std::string& address);

// Runs the subcommand with the arguments after "healthcheck"; returns the process exit code.
// Prints one line: to stdout when healthy, to stderr otherwise.
int RunHealthcheck(const std::vector<std::string>& args, const aws::EnvLookup& env);

}  // namespace xrayd::cli
