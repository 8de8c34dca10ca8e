// URLs as http::Client needs them (scheme, host, port, target) and the proxy rules it follows, the
// same as libcurl's: an explicit proxy, else the environment's `https_proxy`/`HTTPS_PROXY` for https
// and `http_proxy` (lower case only: upper-case HTTP_PROXY can be set by a CGI request) for http,
// then `all_proxy`/`ALL_PROXY`; `no_proxy`/`NO_PROXY` exempts hosts in either case.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace xrayd::http {

struct Url {
  std::string scheme;    // "http" or "https" (lower case)
  std::string userinfo;  // "user:password" before '@', percent-decoded; proxies only
  std::string host;      // an IPv6 literal without its brackets
  std::string port;      // always set: the scheme's default when the URL has none
  std::string target;    // path and query, "/" at least
  bool tls = false;
  bool host_is_ip = false;
  bool default_port = true;
  bool port_given = false;  // the text named a port

  // "host:port", IPv6 in brackets.
  std::string Authority() const;
  // The Host header: the port only when it is not the scheme's default (as browsers and curl send it).
  std::string HostHeader() const;
};

// http and https URLs only; "host:port" without a scheme reads as http (proxy settings are written so).
Result<Url> ParseUrl(std::string_view text, bool scheme_optional = false);

// Whether `host` is exempted by a no_proxy list: "*", or comma/space separated names (a name also
// covers its subdomains; a leading dot is ignored) and IP literals.
bool NoProxyMatches(std::string_view no_proxy, std::string_view host);

using GetEnv = std::function<std::optional<std::string>(const char*)>;

// The proxy for a request to `target`: none (nullopt), or the parsed proxy URL. Only http:// proxies
// are supported; any other scheme is an InvalidArgument error.
Result<std::optional<Url>> ProxyFor(const Url& target, const std::string& explicit_proxy, const GetEnv& env);

}  // namespace xrayd::http
