#include "http/url.h"

#include <arpa/inet.h>

#include <cctype>

namespace xrayd::http {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool IsIp(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::string Url::Authority() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

std::string Url::HostHeader() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? h : h + ":" + port;
}

Result<Url> ParseUrl(std::string_view text, bool scheme_optional) {
  auto bad = [&](const char* why) { return Error::InvalidArgument("bad URL \"" + std::string(text) + "\": " + why); };
  Url url;
  std::string_view rest = text;
  if (const size_t sep = rest.find("://"); sep != std::string_view::npos) {
    url.scheme = Lower(rest.substr(0, sep));
    rest.remove_prefix(sep + 3);
  } else if (scheme_optional) {
    url.scheme = "http";
  } else {
    return bad("no scheme");
  }
  if (url.scheme != "http" && url.scheme != "https") return bad("only http and https are supported");
  url.tls = url.scheme == "https";
  const size_t path_at = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_at);
  std::string_view target = path_at == std::string_view::npos ? std::string_view() : rest.substr(path_at);
  if (const size_t hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  url.target = target.empty() ? "/" : target.front() == '?' ? "/" + std::string(target) : std::string(target);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    url.userinfo = PercentDecode(authority.substr(0, at));
    authority.remove_prefix(at + 1);
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed [");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after ]");
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (url.host.empty()) return bad("no host");
  url.host = Lower(url.host);
  if (!port.empty()) {
    for (char c : port)
      if (!std::isdigit(static_cast<unsigned char>(c))) return bad("port is not a number");
    if (port.size() > 5 || std::stoi(std::string(port)) > 65535 || std::stoi(std::string(port)) == 0)
      return bad("port out of range");
    url.port = std::to_string(std::stoi(std::string(port)));
    url.port_given = true;
  }
  const char* default_port = url.tls ? "443" : "80";
  if (url.port.empty()) url.port = default_port;
  url.default_port = url.port == default_port;
  url.host_is_ip = IsIp(url.host);
  return url;
}

bool NoProxyMatches(std::string_view no_proxy, std::string_view host_in) {
  const std::string host = Lower(host_in);
  size_t i = 0;
  while (i < no_proxy.size()) {
    const size_t end = no_proxy.find_first_of(", ", i);
    std::string entry = Lower(no_proxy.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
    i = end == std::string_view::npos ? no_proxy.size() : end + 1;
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (entry.front() == '.') entry.erase(0, 1);
    if (entry.size() > 2 && entry.front() == '[' && entry.back() == ']') entry = entry.substr(1, entry.size() - 2);
    if (host == entry) return true;
    if (host.size() > entry.size() && host.compare(host.size() - entry.size(), entry.size(), entry) == 0 &&
        host[host.size() - entry.size() - 1] == '.')
      return true;
  }
  return false;
}

Result<std::optional<Url>> ProxyFor(const Url& target, const std::string& explicit_proxy, const GetEnv& env) {
  auto first = [&](std::initializer_list<const char*> names) -> std::string {
    for (const char* n : names)
      if (auto v = env(n); v && !v->empty()) return *v;
    return {};
  };
  std::string proxy = explicit_proxy;
  if (proxy.empty())
    proxy = target.tls ? first({"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"})
                       : first({"http_proxy", "all_proxy", "ALL_PROXY"});
  if (proxy.empty()) return std::optional<Url>();
  if (NoProxyMatches(first({"no_proxy", "NO_PROXY"}), target.host)) return std::optional<Url>();
  auto url = ParseUrl(proxy, /*scheme_optional=*/true);
  if (!url) return url.error().Wrapped("proxy");
  if (url->tls) return Error::InvalidArgument("proxy \"" + proxy + "\": only http:// proxies are supported");
  if (!url->port_given) url->port = "1080";  // libcurl's default proxy port
  return std::optional<Url>(*url);
}

}  // namespace xrayd::http
