// "host:port" addresses as the flags and config file give them (-b, -t, the API and health binds).
#pragma once

#include <string>

#include "common/result.h"

namespace xrayd {

struct HostPort {
  std::string host;  // brackets of an IPv6 literal removed; empty for ":port" (all interfaces)
  std::string port;  // decimal, 0..65535
};

// Splits "host:port" (also "[::1]:port" and ":port"); an InvalidArgument error names the input.
Result<HostPort> SplitHostPort(const std::string& address);

}  // namespace xrayd
