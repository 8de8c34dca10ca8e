#include "xray/centralized_sampling.h"

#include <httplib.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "xray/ids.h"
#include "xray/log.h"

namespace xray {

using nlohmann::json;

// Per-rule mutable state: the reservoir and the statistics not yet reported. Shared between the rule
// sets before and after a refresh when the rule keeps its name, so a refresh loses neither.
struct CentralizedSampler::RuleState {
  std::mutex mu;
  // All guarded by mu.
  int64_t second = -1;  // the wall-clock second taken/borrowed count for
  int64_t taken = 0;
  int64_t borrowed = 0;
  bool has_quota = false;  // a target's ReservoirQuota was received
  int64_t quota = 0;
  int64_t quota_ttl = 0;  // epoch seconds; the quota is used while now <= quota_ttl
  double rate = 0;        // the rule's FixedRate, replaced by each target's
  bool can_borrow = false;
  int64_t requests = 0, sampled = 0, borrows = 0;
  int64_t report_every = 1;  // report every this many SamplingTargets rounds
  int64_t rounds_waited = 0;
};

struct CentralizedSampler::Rule {
  std::string name;
  int64_t priority = 0;
  std::string service_name, service_type, host, http_method, url_path;
  bool is_default = false;
  std::shared_ptr<RuleState> state;

  bool Matches(const SamplingRequest& r) const {
    if (is_default) return true;
    auto field = [](const std::string& pattern, std::string_view value) {
      return value.empty() || WildcardMatch(pattern, value);
    };
    return field(service_name, r.service_name) && field(service_type, r.service_type) && field(host, r.host) &&
           field(http_method, r.http_method) && field(url_path, r.url_path);
  }
};

struct CentralizedSampler::RuleSet {
  std::vector<Rule> rules;  // matching order
  int64_t fetched_at = 0;   // clock_() seconds when fetched
};

namespace {

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double WallSecondsExact() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string NewClientId() {
  // 96 random bits, as the other SDKs use (12 random bytes in hex).
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64 "%08" PRIx32, RandomU64(), static_cast<uint32_t>(RandomU64()));
  return std::string(buf, 24);
}

// A timestamp in an API answer: epoch seconds as a number or numeric string, or ISO 8601
// ("2024-05-01T12:00:00Z", fractional seconds and a ±hh:mm offset allowed).
std::optional<double> ParseTimestamp(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end == s.c_str() + s.size()) return d;
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  double t = static_cast<double>(timegm(&tm));
  const char* p = s.c_str() + consumed;
  if (*p == '.') {
    char* frac_end = nullptr;
    t += std::strtod(p, &frac_end);
    p = frac_end;
  }
  if (*p == '+' || *p == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    t -= (*p == '+' ? 1 : -1) * (hh * 3600.0 + mm * 60.0);
  } else if (*p != 'Z' && *p != 'z' && *p != '\0') {
    return std::nullopt;
  }
  return t;
}

std::string StringField(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::chrono::milliseconds Jitter(std::chrono::milliseconds max) {
  return std::chrono::milliseconds(static_cast<int64_t>(RandomUnit() * static_cast<double>(max.count())));
}

}  // namespace

CentralizedSamplerOptions CentralizedSamplerOptions::ForDaemon(const DaemonAddress& address) {
  CentralizedSamplerOptions o;
  o.host = address.tcp_host;
  o.port = address.tcp_port;
  return o;
}

CentralizedSampler::CentralizedSampler(CentralizedSamplerOptions options)
    : options_(std::move(options)),
      fallback_(options_.fallback ? options_.fallback : std::make_shared<LocalSampler>()),
      clock_(options_.clock ? options_.clock : std::function<int64_t()>(WallSeconds)),
      client_id_(NewClientId()) {
  if (options_.start_poller) poller_ = std::thread([this] { PollLoop(); });
}

CentralizedSampler::~CentralizedSampler() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

std::shared_ptr<const CentralizedSampler::RuleSet> CentralizedSampler::Snapshot() const {
  std::lock_guard lock(rules_mu_);
  return rules_;
}

bool CentralizedSampler::HasRules() const {
  auto set = Snapshot();
  return set && clock_() <= set->fetched_at + options_.rules_ttl_seconds;
}

std::vector<std::string> CentralizedSampler::RuleNames() const {
  std::vector<std::string> names;
  if (auto set = Snapshot())
    for (const auto& r : set->rules) names.push_back(r.name);
  return names;
}

bool CentralizedSampler::ShouldSample(const SamplingRequest& request) {
  const int64_t now = clock_();
  auto set = Snapshot();
  if (set && now <= set->fetched_at + options_.rules_ttl_seconds) {
    for (const auto& rule : set->rules)
      if (rule.Matches(request)) return Decide(rule, now);
  }
  return fallback_->ShouldSample(request);
}

bool CentralizedSampler::Decide(const Rule& rule, int64_t now) {
  RuleState& s = *rule.state;
  double rate;
  {
    std::lock_guard lock(s.mu);
    ++s.requests;
    if (s.second != now) {  // a new second refills the reservoir
      s.second = now;
      s.taken = 0;
      s.borrowed = 0;
    }
    if (s.has_quota && now <= s.quota_ttl) {
      if (s.taken < s.quota) {
        ++s.taken;
        ++s.sampled;
        return true;
      }
    } else if (s.can_borrow && s.borrowed < 1) {
      ++s.borrowed;
      ++s.borrows;
      ++s.sampled;
      return true;
    }
    rate = s.rate;
  }
  // The random draw needs no lock; the count does.
  if (rate > 0 && RandomUnit() < rate) {
    std::lock_guard lock(s.mu);
    ++s.sampled;
    return true;
  }
  return false;
}

std::optional<std::string> CentralizedSampler::Post(const char* path, const std::string& body,
                                                    std::string* error) const {
  httplib::Client client(options_.host, options_.port);
  client.set_connection_timeout(options_.http_timeout);
  client.set_read_timeout(options_.http_timeout);
  client.set_write_timeout(options_.http_timeout);
  auto res = client.Post(path, body, "application/json");
  if (!res) {
    *error = std::string(path) + ": " + httplib::to_string(res.error());
    return std::nullopt;
  }
  if (res->status != 200) {
    *error = std::string(path) + ": HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 200);
    return std::nullopt;
  }
  return std::move(res->body);
}

bool CentralizedSampler::RefreshRules() {
  std::lock_guard poll_lock(poll_mu_);
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  std::string error;
  std::vector<json> records;
  std::string next_token;
  bool ok = true;
  for (int page = 0; page < 100; ++page) {  // a bound against a server repeating its NextToken
    json req = json::object();
    if (!next_token.empty()) req["NextToken"] = next_token;
    auto body = Post("/GetSamplingRules", req.dump(), &error);
    if (!body) {
      ok = false;
      break;
    }
    json doc = json::parse(*body, nullptr, /*allow_exceptions=*/false);
    auto list = doc.is_object() ? doc.find("SamplingRuleRecords") : doc.end();
    if (!doc.is_object() || (list != doc.end() && !list->is_array())) {
      error = "/GetSamplingRules: not a GetSamplingRules answer";
      ok = false;
      break;
    }
    if (list != doc.end())
      for (const auto& r : *list) records.push_back(r);
    next_token = StringField(doc, "NextToken");
    if (next_token.empty()) break;
  }
  if (!ok) {
    if (!failing_)
      Log(LogLevel::kWarn, "centralized sampling: cannot get rules from " + where + " (" + error + "); " +
                               (HasRules() ? "keeping the rules already fetched" : "using local rules"));
    failing_ = true;
    return false;
  }

  auto old = Snapshot();
  std::unordered_map<std::string, std::shared_ptr<RuleState>> old_states;
  if (old)
    for (const auto& r : old->rules) old_states[r.name] = r.state;

  auto set = std::make_shared<RuleSet>();
  for (const auto& record : records) {
    auto it = record.is_object() ? record.find("SamplingRule") : record.end();
    if (!record.is_object() || it == record.end() || !it->is_object()) continue;
    const json& r = *it;
    // Only what the SDK can evaluate: version 1 rules for any resource and without attribute conditions.
    auto version = r.find("Version");
    if (version == r.end() || !version->is_number_integer() || version->get<int64_t>() != 1) continue;
    if (StringField(r, "ResourceARN") != "*") continue;
    if (auto attrs = r.find("Attributes"); attrs != r.end() && !attrs->is_null() && !attrs->empty()) continue;
    auto priority = r.find("Priority");
    auto rate = r.find("FixedRate");
    auto reservoir = r.find("ReservoirSize");
    Rule rule;
    rule.name = StringField(r, "RuleName");
    if (rule.name.empty() || priority == r.end() || !priority->is_number() || rate == r.end() || !rate->is_number())
      continue;
    rule.priority = priority->get<int64_t>();
    rule.service_name = StringField(r, "ServiceName");
    rule.service_type = StringField(r, "ServiceType");
    rule.host = StringField(r, "Host");
    rule.http_method = StringField(r, "HTTPMethod");
    rule.url_path = StringField(r, "URLPath");
    rule.is_default = rule.name == "Default";  // reserved by X-Ray for the catch-all rule
    auto found = old_states.find(rule.name);
    rule.state = found != old_states.end() ? found->second : std::make_shared<RuleState>();
    {
      std::lock_guard lock(rule.state->mu);
      rule.state->rate = std::clamp(rate->get<double>(), 0.0, 1.0);
      rule.state->can_borrow = reservoir != r.end() && reservoir->is_number() && reservoir->get<double>() > 0;
    }
    set->rules.push_back(std::move(rule));
  }
  std::stable_sort(set->rules.begin(), set->rules.end(), [](const Rule& a, const Rule& b) {
    if (a.is_default != b.is_default) return b.is_default;
    if (a.priority != b.priority) return a.priority < b.priority;
    return a.name < b.name;
  });
  set->fetched_at = clock_();
  const size_t count = set->rules.size();
  {
    std::lock_guard lock(rules_mu_);
    rules_ = std::move(set);
    rules_fetched_wall_ = WallSecondsExact();
  }
  if (failing_ || !old)
    Log(LogLevel::kInfo, "centralized sampling: " + std::to_string(count) + " rule(s) from " + where);
  failing_ = false;
  return true;
}

bool CentralizedSampler::ReportStatistics() {
  std::lock_guard poll_lock(poll_mu_);
  auto set = Snapshot();
  if (!set) return true;
  const int64_t now = clock_();
  json docs = json::array();
  std::unordered_map<std::string, RuleState*> states;
  for (const auto& rule : set->rules) {
    states[rule.name] = rule.state.get();
    std::lock_guard lock(rule.state->mu);
    RuleState& s = *rule.state;
    if (s.requests == 0 || ++s.rounds_waited < s.report_every) continue;
    docs.push_back({{"RuleName", rule.name},
                    {"ClientID", client_id_},
                    {"Timestamp", now},
                    {"RequestCount", s.requests},
                    {"SampledCount", s.sampled},
                    {"BorrowCount", s.borrows}});
    s.requests = s.sampled = s.borrows = 0;
    s.rounds_waited = 0;
  }
  if (docs.empty()) return true;

  std::string error;
  auto body = Post("/SamplingTargets", json{{"SamplingStatisticsDocuments", docs}}.dump(), &error);
  json doc = body ? json::parse(*body, nullptr, false) : json();
  if (body && !doc.is_object()) error = "/SamplingTargets: not a SamplingTargets answer";
  if (!body || !doc.is_object()) {
    if (!failing_) Log(LogLevel::kWarn, "centralized sampling: " + error);
    failing_ = true;
    return false;
  }
  failing_ = false;
  if (auto targets = doc.find("SamplingTargetDocuments"); targets != doc.end() && targets->is_array()) {
    for (const auto& t : *targets) {
      if (!t.is_object()) continue;
      auto state = states.find(StringField(t, "RuleName"));
      if (state == states.end()) continue;
      RuleState& s = *state->second;
      std::lock_guard lock(s.mu);
      if (auto rate = t.find("FixedRate"); rate != t.end() && rate->is_number())
        s.rate = std::clamp(rate->get<double>(), 0.0, 1.0);
      auto quota = t.find("ReservoirQuota");
      auto ttl = t.find("ReservoirQuotaTTL");
      if (quota != t.end() && quota->is_number()) {
        s.has_quota = true;
        s.quota = std::max<int64_t>(0, quota->get<int64_t>());
      }
      if (ttl != t.end())
        if (auto when = ParseTimestamp(*ttl)) s.quota_ttl = static_cast<int64_t>(std::floor(*when));
      if (auto interval = t.find("Interval"); interval != t.end() && interval->is_number())
        s.report_every = std::max<int64_t>(1, interval->get<int64_t>() / 10);
    }
  }
  if (auto unprocessed = doc.find("UnprocessedStatistics");
      unprocessed != doc.end() && unprocessed->is_array() && !unprocessed->empty())
    Log(LogLevel::kDebug, "centralized sampling: statistics not processed: " + unprocessed->dump());
  if (auto modified = doc.find("LastRuleModification"); modified != doc.end()) {
    auto when = ParseTimestamp(*modified);
    double fetched;
    {
      std::lock_guard lock(rules_mu_);
      fetched = rules_fetched_wall_;
    }
    if (when && *when > fetched) {
      {
        std::lock_guard lock(stop_mu_);
        refresh_wanted_ = true;
      }
      stop_cv_.notify_all();
    }
  }
  return true;
}

void CentralizedSampler::PollLoop() {
  using Steady = std::chrono::steady_clock;
  Steady::time_point next_rules = Steady::now();
  Steady::time_point next_targets = next_rules + options_.targets_interval + Jitter(options_.targets_jitter);
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    const Steady::time_point now = Steady::now();
    const bool do_rules = refresh_wanted_ || now >= next_rules;
    const bool do_targets = now >= next_targets;
    if (do_rules) refresh_wanted_ = false;
    lock.unlock();
    if (do_rules) {
      const bool ok = RefreshRules();
      // Without rules, retry a failed fetch soon: the daemon often starts after the application.
      next_rules = now + (ok || HasRules() ? options_.rules_interval + Jitter(options_.rules_jitter)
                                           : options_.targets_interval);
    }
    if (do_targets) {
      ReportStatistics();
      next_targets = now + options_.targets_interval + Jitter(options_.targets_jitter);
    }
    lock.lock();
    stop_cv_.wait_until(lock, std::min(next_rules, next_targets), [&] { return stopping_ || refresh_wanted_; });
  }
}

}  // namespace xray
