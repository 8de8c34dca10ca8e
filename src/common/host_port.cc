#include "common/host_port.h"

namespace xrayd {

Result<HostPort> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size())
    return Error::InvalidArgument("address \"" + address + "\" is not host:port");
  HostPort hp{address.substr(0, colon), address.substr(colon + 1)};
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  if (hp.port.size() > 5) return Error::InvalidArgument("address \"" + address + "\" has a bad port");
  for (char c : hp.port)
    if (c < '0' || c > '9') return Error::InvalidArgument("address \"" + address + "\" has a bad port");
  if (std::stoul(hp.port) > 65535) return Error::InvalidArgument("address \"" + address + "\" has a bad port");
  return hp;
}

}  // namespace xrayd
