#include "xray/centralized_sampling.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>
#include <vector>

#include "xray/log.h"
#include "xray/recorder.h"

namespace xray {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A real HTTP server on loopback speaking the X-Ray sampling wire format (the daemon's TCP port relays
// exactly these calls). Pages of rules and the targets answer are set by the test; every request body
// is recorded.
class FakeXray {
 public:
  FakeXray() {
    server_.Post("/GetSamplingRules", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      rules_requests_.push_back(json::parse(req.body, nullptr, false));
      if (status_ != 200) {
        res.status = status_;
        res.set_content(R"({"__type":"ThrottledException","message":"slow down"})", "application/json");
        return;
      }
      if (!raw_rules_body_.empty()) {
        res.set_content(raw_rules_body_, "application/json");
        return;
      }
      // Page i is asked for with NextToken "page-i".
      size_t page = 0;
      const json& asked = rules_requests_.back();
      if (asked.is_object() && asked.contains("NextToken"))
        page = std::stoul(asked["NextToken"].get<std::string>().substr(5));
      json answer = {{"SamplingRuleRecords", page < pages_.size() ? pages_[page] : json::array()}};
      if (page + 1 < pages_.size()) answer["NextToken"] = "page-" + std::to_string(page + 1);
      res.set_content(answer.dump(), "application/json");
    });
    server_.Post("/SamplingTargets", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      json in = json::parse(req.body, nullptr, false);
      targets_requests_.push_back(in);
      if (status_ != 200) {
        res.status = status_;
        return;
      }
      json answer = targets_ ? targets_(in)
                             : json{{"SamplingTargetDocuments", json::array()},
                                    {"LastRuleModification", 1.0},
                                    {"UnprocessedStatistics", json::array()}};
      res.set_content(answer.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");  // listening from here on; accept() starts below
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost and the join in the destructor would hang.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeXray() {
    server_.stop();
    thread_.join();
  }

  uint16_t port() const { return static_cast<uint16_t>(port_); }
  void SetRules(std::vector<json> pages) {
    std::lock_guard lock(mu_);
    pages_ = std::move(pages);
  }
  void SetRawRulesBody(std::string body) {
    std::lock_guard lock(mu_);
    raw_rules_body_ = std::move(body);
  }
  void SetStatus(int status) {
    std::lock_guard lock(mu_);
    status_ = status;
  }
  void SetTargets(std::function<json(const json&)> f) {
    std::lock_guard lock(mu_);
    targets_ = std::move(f);
  }
  std::vector<json> rules_requests() {
    std::lock_guard lock(mu_);
    return rules_requests_;
  }
  std::vector<json> targets_requests() {
    std::lock_guard lock(mu_);
    return targets_requests_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<json> pages_;
  std::string raw_rules_body_;
  int status_ = 200;
  std::function<json(const json&)> targets_;
  std::vector<json> rules_requests_, targets_requests_;
};

json RuleRecord(const std::string& name, int priority, double rate, int reservoir, const std::string& path = "*",
                const std::string& host = "*", const std::string& method = "*",
                const std::string& service = "*", const std::string& type = "*") {
  return {{"SamplingRule",
           {{"RuleName", name},
            {"RuleARN", "arn:aws:xray:us-east-1:123456789012:sampling-rule/" + name},
            {"ResourceARN", "*"},
            {"Priority", priority},
            {"FixedRate", rate},
            {"ReservoirSize", reservoir},
            {"ServiceName", service},
            {"ServiceType", type},
            {"Host", host},
            {"HTTPMethod", method},
            {"URLPath", path},
            {"Version", 1},
            {"Attributes", json::object()}}},
          {"CreatedAt", 1.7e9},
          {"ModifiedAt", 1.7e9}};
}

json Target(const std::string& name, double rate, int quota, double ttl, int interval = 10) {
  return {{"RuleName", name}, {"FixedRate", rate}, {"ReservoirQuota", quota}, {"ReservoirQuotaTTL", ttl},
          {"Interval", interval}};
}

json TargetsAnswer(json docs, double last_modification = 1.0) {
  return {{"SamplingTargetDocuments", std::move(docs)},
          {"LastRuleModification", last_modification},
          {"UnprocessedStatistics", json::array()}};
}

// Counts its calls and answers a fixed decision: shows when the centralized sampler falls back.
class CountingSampler : public Sampler {
 public:
  explicit CountingSampler(bool decision) : decision_(decision) {}
  bool ShouldSample(const SamplingRequest&) override {
    ++calls;
    return decision_;
  }
  std::atomic<int> calls{0};

 private:
  bool decision_;
};

SamplingRequest Req(std::string_view path, std::string_view host = "example.com", std::string_view method = "GET",
                    std::string_view service = "svc", std::string_view type = "") {
  return SamplingRequest{host, method, path, service, type};
}

// Options for a sampler driven by hand (no poller thread), on a fake clock.
CentralizedSamplerOptions Manual(uint16_t port, std::atomic<int64_t>& now, std::shared_ptr<Sampler> fallback = {}) {
  CentralizedSamplerOptions o;
  o.port = port;
  o.start_poller = false;
  o.clock = [&now] { return now.load(); };
  o.fallback = fallback ? fallback : std::make_shared<CountingSampler>(false);
  return o;
}

int CountSampled(CentralizedSampler& s, const SamplingRequest& r, int n) {
  int sampled = 0;
  for (int i = 0; i < n; ++i) sampled += s.ShouldSample(r);
  return sampled;
}

class Quiet : public ::testing::Test {  // the expected connection failures need not reach stderr
 protected:
  void SetUp() override { previous_ = SetLogger({}); }
  void TearDown() override { SetLogger(previous_); }
  Logger previous_;
};

using CentralizedSampling = Quiet;

TEST_F(CentralizedSampling, RulesInPriorityThenNameOrderDefaultLast) {
  FakeXray xray;
  xray.SetRules({json::array({
      RuleRecord("Default", 10000, 1.0, 0),
      RuleRecord("b-api", 5, 1.0, 0, "/api/*"),
      RuleRecord("a-api-x", 5, 0.0, 0, "/api/x"),  // same priority as b-api: the name decides
      RuleRecord("admin", 1, 0.0, 0, "*", "admin.*"),
  })});
  std::atomic<int64_t> now{1000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  EXPECT_EQ(sampler.RuleNames(), (std::vector<std::string>{"admin", "a-api-x", "b-api", "Default"}));
  EXPECT_EQ(CountSampled(sampler, Req("/api/x"), 50), 0);                      // a-api-x before b-api
  EXPECT_EQ(CountSampled(sampler, Req("/api/y"), 50), 50);                     // b-api
  EXPECT_EQ(CountSampled(sampler, Req("/api/y", "Admin.example.com"), 50), 0);  // admin, case-insensitive
  EXPECT_EQ(CountSampled(sampler, Req("/other"), 50), 50);                     // Default
  // The request body of GetSamplingRules is an empty JSON object.
  ASSERT_EQ(xray.rules_requests().size(), 1u);
  EXPECT_EQ(xray.rules_requests()[0], json::object());
}

TEST_F(CentralizedSampling, MatchesEveryAttributeWithWildcards) {
  FakeXray xray;
  xray.SetRules({json::array({
      RuleRecord("post-only", 1, 1.0, 0, "/orders/??", "*", "POST"),
      RuleRecord("other-service", 2, 1.0, 0, "*", "*", "*", "billing-*"),
      RuleRecord("ec2-only", 3, 1.0, 0, "*", "*", "*", "*", "AWS::EC2::*"),
      RuleRecord("Default", 10000, 0.0, 0),
  })});
  std::atomic<int64_t> now{1000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  // (A ServiceType for every request: an empty one would match ec2-only's pattern.)
  const std::string_view lambda = "AWS::Lambda";
  EXPECT_EQ(CountSampled(sampler, Req("/orders/42", "h", "POST", "svc", lambda), 20), 20);
  EXPECT_EQ(CountSampled(sampler, Req("/orders/42", "h", "GET", "svc", lambda), 20), 0);    // method differs
  EXPECT_EQ(CountSampled(sampler, Req("/orders/421", "h", "POST", "svc", lambda), 20), 0);  // '?' is one char
  EXPECT_EQ(CountSampled(sampler, Req("/x", "h", "GET", "billing-api", lambda), 20), 20);
  EXPECT_EQ(CountSampled(sampler, Req("/x", "h", "GET", "svc", "AWS::EC2::Instance"), 20), 20);
  EXPECT_EQ(CountSampled(sampler, Req("/x", "h", "GET", "svc", "AWS::ECS::Container"), 20), 0);
}

TEST_F(CentralizedSampling, IgnoresRulesItCannotEvaluate) {
  FakeXray xray;
  json v2 = RuleRecord("version-2", 1, 1.0, 0);
  v2["SamplingRule"]["Version"] = 2;
  json attrs = RuleRecord("with-attributes", 2, 1.0, 0);
  attrs["SamplingRule"]["Attributes"] = {{"team", "a"}};
  json arn = RuleRecord("one-resource", 3, 1.0, 0);
  arn["SamplingRule"]["ResourceARN"] = "arn:aws:ecs:us-east-1:123456789012:service/x";
  json broken = RuleRecord("no-rate", 4, 1.0, 0);
  broken["SamplingRule"].erase("FixedRate");
  xray.SetRules({json::array({v2, attrs, arn, broken, RuleRecord("Default", 10000, 0.0, 0)})});
  std::atomic<int64_t> now{1000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  EXPECT_EQ(sampler.RuleNames(), std::vector<std::string>{"Default"});
  EXPECT_EQ(CountSampled(sampler, Req("/"), 20), 0);
}

TEST_F(CentralizedSampling, FollowsNextTokenThroughAllPages) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("first", 1, 1.0, 0, "/a")}),
                 json::array({RuleRecord("second", 2, 1.0, 0, "/b")}),
                 json::array({RuleRecord("Default", 10000, 0.0, 0)})});
  std::atomic<int64_t> now{1000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  EXPECT_EQ(sampler.RuleNames(), (std::vector<std::string>{"first", "second", "Default"}));
  auto asked = xray.rules_requests();
  ASSERT_EQ(asked.size(), 3u);
  EXPECT_EQ(asked[1], (json{{"NextToken", "page-1"}}));
  EXPECT_EQ(asked[2], (json{{"NextToken", "page-2"}}));
}

TEST_F(CentralizedSampling, BorrowsOnePerSecondUntilTheFirstTargetThenUsesTheQuota) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("api", 1, 0.0, 5, "/api"), RuleRecord("Default", 10000, 0.0, 0)})});
  std::atomic<int64_t> now{2000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());

  // No target yet: one borrowed request per second (ReservoirSize > 0), FixedRate 0 for the rest.
  EXPECT_EQ(CountSampled(sampler, Req("/api"), 100), 1);
  now = 2001;
  EXPECT_EQ(CountSampled(sampler, Req("/api"), 100), 1);
  // Default has ReservoirSize 0: it may not borrow.
  EXPECT_EQ(CountSampled(sampler, Req("/else"), 100), 0);

  xray.SetTargets([&](const json&) { return TargetsAnswer(json::array({Target("api", 0.0, 3, 2011.0)})); });
  ASSERT_TRUE(sampler.ReportStatistics());
  // Statistics for both rules that saw requests, with this client's id and the clock's time.
  auto sent = xray.targets_requests();
  ASSERT_EQ(sent.size(), 1u);
  const json& docs = sent[0]["SamplingStatisticsDocuments"];
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_TRUE(std::regex_match(sampler.client_id(), std::regex("[0-9a-f]{24}")));
  for (const auto& d : docs) {
    EXPECT_EQ(d["ClientID"], sampler.client_id());
    EXPECT_EQ(d["Timestamp"], 2001);
    if (d["RuleName"] == "api") {
      EXPECT_EQ(d["RequestCount"], 200);
      EXPECT_EQ(d["SampledCount"], 2);
      EXPECT_EQ(d["BorrowCount"], 2);
    } else {
      EXPECT_EQ(d["RuleName"], "Default");
      EXPECT_EQ(d["RequestCount"], 100);
      EXPECT_EQ(d["SampledCount"], 0);
      EXPECT_EQ(d["BorrowCount"], 0);
    }
  }

  // With the quota: 3 per second while the TTL holds, no borrowing.
  for (int64_t second = 2002; second <= 2011; ++second) {
    now = second;
    EXPECT_EQ(CountSampled(sampler, Req("/api"), 100), 3) << second;
  }
  // After the TTL: borrowing again, one per second.
  now = 2012;
  EXPECT_EQ(CountSampled(sampler, Req("/api"), 100), 1);

  // The counts were reset by the report: the next one covers only what happened since.
  ASSERT_TRUE(sampler.ReportStatistics());
  const json again = xray.targets_requests().back()["SamplingStatisticsDocuments"];
  ASSERT_EQ(again.size(), 1u);  // Default saw no requests since
  EXPECT_EQ(again[0]["RequestCount"], 1100);
  EXPECT_EQ(again[0]["SampledCount"], 31);
  EXPECT_EQ(again[0]["BorrowCount"], 1);
}

TEST_F(CentralizedSampling, ZeroQuotaWithFreshTtlSamplesNothing) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("health", 1, 0.0, 1, "/health")})});
  std::atomic<int64_t> now{3000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  EXPECT_EQ(CountSampled(sampler, Req("/health"), 10), 1);  // borrowed
  // An ISO 8601 TTL is understood as well as epoch seconds.
  xray.SetTargets([&](const json&) {
    return TargetsAnswer(json::array({{{"RuleName", "health"},
                                       {"FixedRate", 0.0},
                                       {"ReservoirQuota", 0},
                                       {"ReservoirQuotaTTL", "1970-01-01T00:51:00Z"}}}));  // 3060
  });
  ASSERT_TRUE(sampler.ReportStatistics());
  for (int64_t second = 3001; second <= 3060; second += 7) {
    now = second;
    EXPECT_EQ(CountSampled(sampler, Req("/health"), 10), 0) << second;
  }
  now = 3061;
  EXPECT_EQ(CountSampled(sampler, Req("/health"), 10), 1);
}

TEST_F(CentralizedSampling, TargetFixedRateReplacesTheRulesRate) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("Default", 10000, 0.1, 0)})});
  std::atomic<int64_t> now{4000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  // p = 0.1, n = 10000: mean 1000, sigma 30; ±300 is 10 sigma.
  int sampled = CountSampled(sampler, Req("/"), 10000);
  EXPECT_GT(sampled, 700);
  EXPECT_LT(sampled, 1300);
  xray.SetTargets([&](const json&) { return TargetsAnswer(json::array({Target("Default", 0.5, 0, 4100.0)})); });
  ASSERT_TRUE(sampler.ReportStatistics());
  // p = 0.5: mean 5000, sigma 50; ±1000 is 20 sigma.
  sampled = CountSampled(sampler, Req("/"), 10000);
  EXPECT_GT(sampled, 4000);
  EXPECT_LT(sampled, 6000);
}

TEST_F(CentralizedSampling, StatisticsAreExactUnderConcurrency) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("Default", 10000, 0.3, 2)})});
  std::atomic<int64_t> now{5000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  std::atomic<int> sampled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2500; ++i) sampled += sampler.ShouldSample(Req("/"));
    });
  for (auto& th : threads) th.join();
  ASSERT_TRUE(sampler.ReportStatistics());
  const json d = xray.targets_requests().at(0)["SamplingStatisticsDocuments"].at(0);
  EXPECT_EQ(d["RequestCount"], 10000);
  EXPECT_EQ(d["SampledCount"], sampled.load());
  EXPECT_EQ(d["BorrowCount"], 1);  // one second on the fake clock: exactly one borrow
}

TEST_F(CentralizedSampling, HonoursEachRulesReportInterval) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("slow", 1, 1.0, 0, "/slow"), RuleRecord("Default", 10000, 1.0, 0)})});
  xray.SetTargets([&](const json&) {
    return TargetsAnswer(json::array({Target("slow", 1.0, 0, 0, 30), Target("Default", 1.0, 0, 0, 10)}));
  });
  std::atomic<int64_t> now{6000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  std::vector<std::vector<std::string>> reported;
  for (int round = 0; round < 7; ++round) {
    sampler.ShouldSample(Req("/slow"));
    sampler.ShouldSample(Req("/"));
    ASSERT_TRUE(sampler.ReportStatistics());
    std::vector<std::string> names;
    const json docs = xray.targets_requests().back()["SamplingStatisticsDocuments"];
    for (const auto& d : docs)
      names.push_back(d["RuleName"]);
    reported.push_back(names);
  }
  // Round 0 reports both (no Interval known yet); then "slow" (Interval 30) every third round.
  const std::vector<std::string> both{"slow", "Default"}, only_default{"Default"};
  EXPECT_EQ(reported[0], both);
  EXPECT_EQ(reported[1], only_default);
  EXPECT_EQ(reported[2], only_default);
  EXPECT_EQ(reported[3], both);
  EXPECT_EQ(reported[4], only_default);
  EXPECT_EQ(reported[5], only_default);
  EXPECT_EQ(reported[6], both);
  // The accumulated "slow" statistics cover all three rounds.
  EXPECT_EQ(xray.targets_requests().back()["SamplingStatisticsDocuments"][0]["RequestCount"], 3);
}

TEST_F(CentralizedSampling, NothingToReportSendsNothing) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("Default", 10000, 1.0, 0)})});
  std::atomic<int64_t> now{7000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  EXPECT_TRUE(sampler.ReportStatistics());
  EXPECT_TRUE(xray.targets_requests().empty());
}

TEST_F(CentralizedSampling, RefreshKeepsReservoirAndStatisticsOfRulesKeptByName) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("api", 1, 0.0, 5, "/api")})});
  xray.SetTargets([&](const json&) { return TargetsAnswer(json::array({Target("api", 0.0, 2, 8100.0)})); });
  std::atomic<int64_t> now{8000};
  CentralizedSampler sampler(Manual(xray.port(), now));
  ASSERT_TRUE(sampler.RefreshRules());
  sampler.ShouldSample(Req("/api"));
  ASSERT_TRUE(sampler.ReportStatistics());
  now = 8001;
  EXPECT_EQ(CountSampled(sampler, Req("/api"), 10), 2);  // the quota
  // A refreshed rule set (new priority, a new rule): "api" keeps its quota and its counts.
  xray.SetRules({json::array({RuleRecord("new", 1, 0.0, 0, "/new"), RuleRecord("api", 2, 0.0, 5, "/api")})});
  ASSERT_TRUE(sampler.RefreshRules());
  now = 8002;
  EXPECT_EQ(CountSampled(sampler, Req("/api"), 10), 2);
  ASSERT_TRUE(sampler.ReportStatistics());
  const json d = xray.targets_requests().back()["SamplingStatisticsDocuments"].at(0);
  EXPECT_EQ(d["RuleName"], "api");
  EXPECT_EQ(d["RequestCount"], 20);
  EXPECT_EQ(d["SampledCount"], 4);
}

TEST_F(CentralizedSampling, FallsBackWhenTheDaemonIsUnreachable) {
  uint16_t closed_port;
  {
    FakeXray gone;  // a port that was just free and is closed again
    closed_port = gone.port();
  }
  std::atomic<int64_t> now{9000};
  auto local = std::make_shared<CountingSampler>(true);
  CentralizedSampler sampler(Manual(closed_port, now, local));
  EXPECT_FALSE(sampler.RefreshRules());
  EXPECT_FALSE(sampler.HasRules());
  EXPECT_EQ(CountSampled(sampler, Req("/"), 10), 10);
  EXPECT_EQ(local->calls.load(), 10);
}

TEST_F(CentralizedSampling, FallsBackOnErrorAnswersAndMalformedRules) {
  FakeXray xray;
  std::atomic<int64_t> now{9000};
  auto local = std::make_shared<CountingSampler>(true);
  CentralizedSampler sampler(Manual(xray.port(), now, local));
  xray.SetStatus(500);
  EXPECT_FALSE(sampler.RefreshRules());
  xray.SetStatus(200);
  xray.SetRawRulesBody("<html>not json</html>");
  EXPECT_FALSE(sampler.RefreshRules());
  xray.SetRawRulesBody(R"({"SamplingRuleRecords": "nope"})");
  EXPECT_FALSE(sampler.RefreshRules());
  EXPECT_FALSE(sampler.HasRules());
  EXPECT_EQ(CountSampled(sampler, Req("/"), 5), 5);
  EXPECT_EQ(local->calls.load(), 5);
}

TEST_F(CentralizedSampling, FallsBackWhenNoRuleMatches) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("only-api", 1, 0.0, 0, "/api/*")})});  // no Default
  std::atomic<int64_t> now{9000};
  auto local = std::make_shared<CountingSampler>(true);
  CentralizedSampler sampler(Manual(xray.port(), now, local));
  ASSERT_TRUE(sampler.RefreshRules());
  EXPECT_EQ(CountSampled(sampler, Req("/api/1"), 5), 0);
  EXPECT_EQ(local->calls.load(), 0);
  EXPECT_EQ(CountSampled(sampler, Req("/web"), 5), 5);
  EXPECT_EQ(local->calls.load(), 5);
}

TEST_F(CentralizedSampling, KeepsRulesThroughFailuresUntilTheyExpire) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("Default", 10000, 0.0, 0)})});
  std::atomic<int64_t> now{10000};
  auto local = std::make_shared<CountingSampler>(true);
  CentralizedSampler sampler(Manual(xray.port(), now, local));
  ASSERT_TRUE(sampler.RefreshRules());
  xray.SetStatus(503);
  now = 10000 + 3599;
  EXPECT_FALSE(sampler.RefreshRules());
  EXPECT_TRUE(sampler.HasRules());
  now = 10000 + 3600;  // still within the hour
  EXPECT_EQ(CountSampled(sampler, Req("/"), 5), 0);
  EXPECT_EQ(local->calls.load(), 0);
  now = 10000 + 3601;  // expired: local rules decide
  EXPECT_FALSE(sampler.HasRules());
  EXPECT_EQ(CountSampled(sampler, Req("/"), 5), 5);
  EXPECT_EQ(local->calls.load(), 5);
  // A successful fetch brings centralized sampling back.
  xray.SetStatus(200);
  ASSERT_TRUE(sampler.RefreshRules());
  EXPECT_EQ(CountSampled(sampler, Req("/"), 5), 0);
  EXPECT_EQ(local->calls.load(), 5);
}

// Waits up to `limit` for `done`.
template <class F>
bool Eventually(F done, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

TEST_F(CentralizedSampling, PollerFetchesReportsAndRefetchesWhenRulesChanged) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("Default", 10000, 1.0, 0)})});
  std::atomic<double> last_modification{1.0};
  std::atomic<double> target_rate{1.0};
  xray.SetTargets([&](const json&) {
    return TargetsAnswer(json::array({Target("Default", target_rate.load(), 0, 0)}), last_modification.load());
  });
  CentralizedSamplerOptions o;
  o.port = xray.port();
  o.fallback = std::make_shared<CountingSampler>(false);
  o.targets_interval = 50ms;
  o.targets_jitter = 10ms;
  CentralizedSampler sampler(o);  // rules every 5 minutes: only the first fetch unless told otherwise
  ASSERT_TRUE(Eventually([&] { return sampler.HasRules(); }));
  EXPECT_TRUE(sampler.ShouldSample(Req("/")));
  ASSERT_TRUE(Eventually([&] { return !xray.targets_requests().empty(); }));
  EXPECT_EQ(xray.rules_requests().size(), 1u);
  // The rules change on the service: the next targets answer says so, and the poller refetches.
  xray.SetRules({json::array({RuleRecord("Default", 10000, 0.0, 0)})});
  target_rate = 0.0;
  last_modification = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  sampler.ShouldSample(Req("/"));  // something to report
  ASSERT_TRUE(Eventually([&] { return xray.rules_requests().size() >= 2; }));
  ASSERT_TRUE(Eventually([&] { return !sampler.ShouldSample(Req("/")); }));
}

TEST_F(CentralizedSampling, PollerRetriesTheFirstFetchAndStopsPromptly) {
  FakeXray xray;
  xray.SetStatus(500);
  xray.SetRules({json::array({RuleRecord("Default", 10000, 1.0, 0)})});
  CentralizedSamplerOptions o;
  o.port = xray.port();
  o.targets_interval = 50ms;
  auto sampler = std::make_unique<CentralizedSampler>(o);
  ASSERT_TRUE(Eventually([&] { return xray.rules_requests().size() >= 2; }));
  EXPECT_FALSE(sampler->HasRules());
  xray.SetStatus(200);
  ASSERT_TRUE(Eventually([&] { return sampler->HasRules(); }));
  // Now waiting ~5 minutes for the next rules fetch: destruction must not wait for that.
  auto t0 = std::chrono::steady_clock::now();
  sampler.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(CentralizedSampling, RecorderUsesItByDefaultWithTheDaemonsTcpAddress) {
  FakeXray xray;
  xray.SetRules({json::array({RuleRecord("never-health", 1, 0.0, 0, "/health"),
                              RuleRecord("never-ec2", 3, 0.0, 0, "/typed", "*", "*", "*", "AWS::EC2::*"),
                              RuleRecord("never-other", 4, 0.0, 0, "/named", "*", "*", "other"),
                              RuleRecord("Default", 10000, 1.0, 0)})});
  const char* saved = std::getenv("AWS_XRAY_DAEMON_ADDRESS");
  std::string saved_value = saved ? saved : "";
  // UDP to a port nobody reads (the segments are not looked at here).
  setenv("AWS_XRAY_DAEMON_ADDRESS",
         ("tcp:127.0.0.1:" + std::to_string(xray.port()) + " udp:127.0.0.1:9").c_str(), 1);
  RecorderConfig c;
  c.service_name = "svc";
  c.origin = "AWS::ECS::Container";
  {
    Recorder recorder(c);
    auto* centralized = dynamic_cast<CentralizedSampler*>(&recorder.sampler());
    ASSERT_NE(centralized, nullptr);
    ASSERT_TRUE(Eventually([&] { return centralized->HasRules(); }));
    EXPECT_FALSE(recorder.BeginSegment("svc", nullptr, Req("/health", "h", "GET", ""))->sampled());
    recorder.EndSegment();
    EXPECT_TRUE(recorder.BeginSegment("svc", nullptr, Req("/", "h", "GET", ""))->sampled());
    recorder.EndSegment();
    // The recorder passes its origin as the ServiceType and its name as the ServiceName (an empty one
    // would match any pattern), so never-ec2 and never-other do not apply and Default samples.
    EXPECT_TRUE(recorder.BeginSegment("svc", nullptr, Req("/typed", "h", "GET", ""))->sampled());
    recorder.EndSegment();
    EXPECT_TRUE(recorder.BeginSegment("svc", nullptr, Req("/named", "h", "GET", ""))->sampled());  // Default
    recorder.EndSegment();
  }
  c.centralized_sampling = false;
  {
    Recorder recorder(c);
    EXPECT_NE(dynamic_cast<LocalSampler*>(&recorder.sampler()), nullptr);
  }
  if (saved) setenv("AWS_XRAY_DAEMON_ADDRESS", saved_value.c_str(), 1);
  else unsetenv("AWS_XRAY_DAEMON_ADDRESS");
}

}  // namespace
}  // namespace xray
