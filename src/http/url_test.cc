// URL parsing and the proxy rules of http/url.h.
#include "http/url.h"

#include <gtest/gtest.h>

#include <map>

namespace xrayd::http {
namespace {

GetEnv Env(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(Url, Parses) {
  auto u = ParseUrl("https://xray.eu-west-1.amazonaws.com/TraceSegments?x=1#frag");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "xray.eu-west-1.amazonaws.com");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/TraceSegments?x=1");
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->HostHeader(), "xray.eu-west-1.amazonaws.com");
  auto v = ParseUrl("HTTP://[::1]:8080");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->host, "::1");
  EXPECT_TRUE(v->host_is_ip);
  EXPECT_EQ(v->target, "/");
  EXPECT_EQ(v->Authority(), "[::1]:8080");
  EXPECT_EQ(v->HostHeader(), "[::1]:8080");
  auto p = ParseUrl("user:p%40ss@proxy:3128", true);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->userinfo, "user:p@ss");
  EXPECT_EQ(p->Authority(), "proxy:3128");
}

TEST(Url, Rejects) {
  for (const char* bad : {"ftp://x/", "http://", "http://h:99999/", "http://h:x/", "http://[::1/", "noscheme"})
    EXPECT_FALSE(ParseUrl(bad).ok()) << bad;
}

TEST(Url, NoProxy) {
  EXPECT_TRUE(NoProxyMatches("*", "anything"));
  EXPECT_TRUE(NoProxyMatches("localhost, .amazonaws.com", "xray.us-east-1.amazonaws.com"));
  EXPECT_TRUE(NoProxyMatches("amazonaws.com", "amazonaws.com"));
  EXPECT_FALSE(NoProxyMatches("amazonaws.com", "notamazonaws.com"));
  EXPECT_TRUE(NoProxyMatches("10.0.0.1,[::1]", "::1"));
  EXPECT_FALSE(NoProxyMatches("", "x"));
}

TEST(Url, ProxyFromTheEnvironmentAsLibcurlReadsIt) {
  const Url https = *ParseUrl("https://xray.amazonaws.com/");
  const Url http = *ParseUrl("http://169.254.170.2/creds");
  auto p = ProxyFor(https, "", Env({{"HTTPS_PROXY", "http://p:3128"}}));
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->Authority(), "p:3128");
  // Upper-case HTTP_PROXY is ignored for http (CGI's HTTP_PROXY request header); http_proxy is read.
  EXPECT_FALSE(ProxyFor(http, "", Env({{"HTTP_PROXY", "http://p:3128"}}))->has_value());
  EXPECT_TRUE(ProxyFor(http, "", Env({{"http_proxy", "http://p:3128"}}))->has_value());
  EXPECT_TRUE(ProxyFor(http, "", Env({{"ALL_PROXY", "p:1"}}))->has_value());
  // NO_PROXY exempts, also from an explicit proxy; a proxy without a port uses 1080.
  EXPECT_FALSE(ProxyFor(https, "http://p:3128", Env({{"NO_PROXY", ".amazonaws.com"}}))->has_value());
  EXPECT_EQ((*ProxyFor(https, "p", Env({})))->port, "1080");
  EXPECT_FALSE(ProxyFor(https, "https://p:443", Env({})).ok());
}

}  // namespace
}  // namespace xrayd::http
