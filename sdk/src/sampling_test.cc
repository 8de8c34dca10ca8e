#include "xray/sampling.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

namespace xray {
namespace {

SamplingRequest Req(std::string_view path, std::string_view method = "GET", std::string_view host = "example.com") {
  return SamplingRequest{host, method, path, "svc", {}};
}

TEST(Wildcard, Matches) {
  EXPECT_TRUE(WildcardMatch("*", ""));
  EXPECT_TRUE(WildcardMatch("*", "anything"));
  EXPECT_TRUE(WildcardMatch("/api/*", "/api/move/1"));
  EXPECT_FALSE(WildcardMatch("/api/*", "/apx/move"));
  EXPECT_TRUE(WildcardMatch("/a?c", "/abc"));
  EXPECT_FALSE(WildcardMatch("/a?c", "/ac"));
  EXPECT_TRUE(WildcardMatch("get", "GET"));
  EXPECT_TRUE(WildcardMatch("*.example.com", "api.EXAMPLE.com"));
  EXPECT_TRUE(WildcardMatch("a*b*c", "aXXbYYbZZc"));
  EXPECT_FALSE(WildcardMatch("a*b*c", "aXXbYYbZZ"));
  EXPECT_FALSE(WildcardMatch("", "x"));
  EXPECT_TRUE(WildcardMatch("**", "x"));
}

TEST(LocalSampler, DefaultRuleIsOnePerSecondPlusFivePercent) {
  int64_t now = 1000;
  LocalSampler sampler({}, SamplingRule{}, [&] { return now; });
  // Within one second: 1 from the reservoir, then 5 % of the rest. n = 20000, p = 0.05:
  // mean 1000, sigma ≈ 30.8; allow 5 sigma.
  constexpr int kN = 20001;
  int sampled = 0;
  for (int i = 0; i < kN; ++i) sampled += sampler.ShouldSample(Req("/"));
  EXPECT_GT(sampled, 1 + 1000 - 155);
  EXPECT_LT(sampled, 1 + 1000 + 155);
}

TEST(LocalSampler, ReservoirRefillsEachSecond) {
  int64_t now = 5000;
  SamplingRule rule;
  rule.fixed_target = 3;
  rule.rate = 0;
  LocalSampler sampler({}, rule, [&] { return now; });
  for (int second = 0; second < 5; ++second, ++now) {
    int sampled = 0;
    for (int i = 0; i < 100; ++i) sampled += sampler.ShouldSample(Req("/"));
    EXPECT_EQ(sampled, 3) << "second " << second;
  }
}

TEST(LocalSampler, ReservoirIsExactUnderConcurrency) {
  SamplingRule rule;
  rule.fixed_target = 100;
  rule.rate = 0;
  LocalSampler sampler({}, rule, [] { return int64_t{42}; });
  std::atomic<int> sampled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) sampled += sampler.ShouldSample(Req("/"));
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(sampled.load(), 100);
}

TEST(LocalSampler, RateOneAndZero) {
  SamplingRule all;
  all.fixed_target = 0;
  all.rate = 1;
  LocalSampler yes({}, all, [] { return int64_t{1}; });
  SamplingRule none;
  none.fixed_target = 0;
  none.rate = 0;
  LocalSampler no({}, none, [] { return int64_t{1}; });
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(yes.ShouldSample(Req("/")));
    EXPECT_FALSE(no.ShouldSample(Req("/")));
  }
}

TEST(LocalSampler, FirstMatchingRuleWins) {
  std::string error;
  auto sampler = LocalSampler::FromJson(R"({
    "version": 2,
    "rules": [
      {"description": "health checks", "host": "*", "http_method": "GET", "url_path": "/healthz", "fixed_target": 0, "rate": 0},
      {"description": "api", "host": "api.*", "http_method": "*", "url_path": "/api/*", "fixed_target": 0, "rate": 1},
      {"description": "shadowed", "host": "*", "http_method": "*", "url_path": "/api/*", "fixed_target": 0, "rate": 0}
    ],
    "default": {"fixed_target": 0, "rate": 0}
  })", &error, [] { return int64_t{1}; });
  ASSERT_NE(sampler, nullptr) << error;
  for (int i = 0; i < 200; ++i) {
    EXPECT_FALSE(sampler->ShouldSample(Req("/healthz")));
    EXPECT_TRUE(sampler->ShouldSample(Req("/api/move", "POST", "api.example.com")));
    EXPECT_FALSE(sampler->ShouldSample(Req("/api/move", "POST", "www.example.com")));  // third rule
    EXPECT_FALSE(sampler->ShouldSample(Req("/other")));                                 // default
  }
}

TEST(LocalSampler, RuleRateIsStatisticallyRight) {
  std::string error;
  auto sampler = LocalSampler::FromJson(
      R"({"version": 2, "rules": [{"host": "*", "http_method": "*", "url_path": "/x", "fixed_target": 0, "rate": 0.3}],
          "default": {"fixed_target": 0, "rate": 0}})",
      &error, [] { return int64_t{1}; });
  ASSERT_NE(sampler, nullptr) << error;
  // n = 10000, p = 0.3: mean 3000, sigma ≈ 45.8; allow 5 sigma.
  int sampled = 0;
  for (int i = 0; i < 10000; ++i) sampled += sampler->ShouldSample(Req("/x"));
  EXPECT_NEAR(sampled, 3000, 230);
}

TEST(LocalSampler, VersionOneUsesServiceName) {
  std::string error;
  auto sampler = LocalSampler::FromJson(
      R"({"version": 1, "rules": [{"service_name": "orders", "http_method": "*", "url_path": "*", "fixed_target": 0, "rate": 1}],
          "default": {"fixed_target": 0, "rate": 0}})",
      &error, [] { return int64_t{1}; });
  ASSERT_NE(sampler, nullptr) << error;
  EXPECT_TRUE(sampler->ShouldSample(SamplingRequest{"h", "GET", "/", "orders", {}}));
  EXPECT_FALSE(sampler->ShouldSample(SamplingRequest{"h", "GET", "/", "billing", {}}));
}

TEST(LocalSampler, RejectsBadDocuments) {
  const char* bad[] = {
      "",
      "[]",
      "{not json",
      R"({"version": 3, "default": {"fixed_target": 1, "rate": 0.1}})",
      R"({"rules": [], "default": {"fixed_target": 1, "rate": 0.1}})",
      R"({"version": 2, "rules": []})",
      R"({"version": 2, "default": {"fixed_target": -1, "rate": 0.1}})",
      R"({"version": 2, "default": {"fixed_target": 1, "rate": 1.5}})",
      R"({"version": 2, "default": {"fixed_target": 1.5, "rate": 0.1}})",
      R"({"version": 2, "default": {"fixed_target": 1, "rate": 0.1}, "rules": {}})",
      R"({"version": 2, "default": {"fixed_target": 1, "rate": 0.1}, "rules": [{"url_path": "/", "rate": 0.1}]})",
      R"({"version": 2, "default": {"fixed_target": 1, "rate": 0.1}, "rules": [{"host": 5, "fixed_target": 1, "rate": 0.1}]})",
      R"({"version": 2, "default": {"fixed_target": 1, "rate": 0.1}, "rules": [{"service_name": "x", "fixed_target": 1, "rate": 0.1}]})",
  };
  for (const char* doc : bad) {
    std::string error;
    EXPECT_EQ(LocalSampler::FromJson(doc, &error), nullptr) << doc;
    EXPECT_FALSE(error.empty()) << doc;
  }
}

TEST(LocalSampler, ParsesDefaultRule) {
  SamplingRule def;
  std::string error;
  auto rules = LocalSampler::ParseRules(R"({"version": 2, "default": {"fixed_target": 7, "rate": 0.25}})", &def, &error);
  ASSERT_TRUE(rules.has_value()) << error;
  EXPECT_TRUE(rules->empty());
  EXPECT_EQ(def.fixed_target, 7);
  EXPECT_DOUBLE_EQ(def.rate, 0.25);
}

}  // namespace
}  // namespace xray
