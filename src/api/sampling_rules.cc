#include "api/sampling_rules.h"

#include "api/settings.h"

#include <chrono>
#include <cmath>

#include "api/api_context.h"
#include "common/log.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

std::string Arn(const std::string& name) { return "arn:aws:xray:local:000000000000:sampling-rule/" + name; }

json MakeRule(const std::string& name, int priority) {
  return {{"RuleName", name}, {"ResourceARN", "*"}, {"Priority", priority}, {"FixedRate", 0.05},
          {"ReservoirSize", 1}, {"ServiceName", "*"}, {"ServiceType", "*"}, {"Host", "*"},
          {"HTTPMethod", "*"}, {"URLPath", "*"}, {"Version", 1}, {"Attributes", json::object()}};
}

// The members of a rule a client may set (the model's SamplingRule, less the name and ARN, which
// xrayd sets); anything else in the request is not stored.
constexpr const char* kSettable[] = {"ResourceARN", "Priority", "FixedRate", "ReservoirSize", "ServiceName",
                                     "ServiceType", "Host", "HTTPMethod", "URLPath", "Version",
                                     "Attributes", "SamplingRateBoost"};

}  // namespace

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

SamplingRules::SamplingRules(store::TraceStore& store) : store_(store) {
  MutexLock lock(mu_);
  last_modification_ = NowSeconds();
  rules_["Default"] = MakeRule("Default", 10000);
  rules_["Default"]["RuleARN"] = Arn("Default");
  created_["Default"] = modified_["Default"] = NowSeconds();
  auto saved = LoadSettingObject(store_, "sampling_rules", "sampling rules");
  if (!saved || !(*saved)["rules"].is_object()) return;
  json& j = *saved;
  for (auto& [name, rule] : j["rules"].items()) rules_[name] = rule;
  for (auto& [name, t] : j["created"].items())
    if (t.is_number()) created_[name] = t.get<double>();
  for (auto& [name, t] : j["modified"].items())
    if (t.is_number()) modified_[name] = t.get<double>();
}

json SamplingRules::List() {
  MutexLock lock(mu_);
  json records = json::array();
  for (const auto& [name, rule] : rules_) records.push_back(Record(name));
  return {{"SamplingRuleRecords", records}};
}

json SamplingRules::Record(const std::string& name) {
  return {{"SamplingRule", rules_[name]}, {"CreatedAt", created_[name]}, {"ModifiedAt", modified_[name]}};
}

std::string SamplingRules::NameOf(const json& input) const {
  if (auto n = input.find("RuleName"); n != input.end()) return n->get<std::string>();
  if (auto a = input.find("RuleARN"); a != input.end())
    for (const auto& [name, rule] : rules_)
      if (rule.value("RuleARN", "") == a->get<std::string>()) return name;
  return "";
}

ApiResult<json> SamplingRules::Upsert(const json& input, bool create) {
  MutexLock lock(mu_);
  const std::string name = NameOf(input);
  if (name.empty() && !create && input.contains("RuleARN"))
    return ApiError::Invalid("no rule with RuleARN " + input["RuleARN"].get<std::string>());
  if (name.empty()) return ApiError::Invalid(create ? "SamplingRule.RuleName is required"
                                                    : "SamplingRuleUpdate.RuleName or RuleARN is required");
  if (create && rules_.count(name)) return ApiError::Invalid("a rule named " + name + " already exists");
  if (!create && !rules_.count(name)) return ApiError::Invalid("no rule named " + name);
  if (name == "Default" && input.contains("Priority"))
    return ApiError::Invalid("the Default rule's Priority cannot be changed");
  json rule = create ? MakeRule(name, 1000) : rules_[name];
  for (const char* key : kSettable)
    if (auto v = input.find(key); v != input.end()) rule[key] = *v;
  rule["RuleName"] = name;
  rule["RuleARN"] = Arn(name);
  const double now = NowSeconds();
  if (create) created_[name] = now;
  rules_[name] = std::move(rule);
  modified_[name] = last_modification_ = now;
  SaveLocked();
  return json{{"SamplingRuleRecord", Record(name)}};
}

ApiResult<json> SamplingRules::Delete(const json& input) {
  MutexLock lock(mu_);
  const std::string name = NameOf(input);
  if (name.empty() && input.contains("RuleARN"))
    return ApiError::Invalid("no rule with RuleARN " + input["RuleARN"].get<std::string>());
  if (name.empty()) return ApiError::Invalid("RuleName or RuleARN is required");
  if (name == "Default") return ApiError::Invalid("the Default rule cannot be deleted");
  if (!rules_.count(name)) return ApiError::Invalid("no rule named " + name);
  json record = Record(name);
  rules_.erase(name);
  created_.erase(name);
  modified_.erase(name);
  last_modification_ = NowSeconds();
  SaveLocked();
  return json{{"SamplingRuleRecord", record}};
}

void SamplingRules::CountReport(const std::string& name, const json& doc, double now) {
  const double window_start = std::floor(now / kStatisticsWindow) * kStatisticsWindow;
  auto& windows = statistics_[name];
  if (windows.empty() || windows.back().start != window_start) {
    windows.push_back({window_start});
    if (windows.size() > 2) windows.pop_front();
  }
  auto count = [&doc](const char* key) { return doc.value(key, int64_t{0}); };  // validated: ints ≥ 0
  windows.back().requests += count("RequestCount");
  windows.back().sampled += count("SampledCount");
  windows.back().borrowed += count("BorrowCount");
}

json SamplingRules::Targets(const json& input) {
  MutexLock lock(mu_);
  const double now = NowSeconds();
  json docs = json::array(), unprocessed = json::array();
  for (const auto& d : input["SamplingStatisticsDocuments"]) {
    const std::string name = d.value("RuleName", "");
    auto it = rules_.find(name);
    if (it == rules_.end()) {
      unprocessed.push_back({{"RuleName", name}, {"ErrorCode", "400"}, {"Message", "unknown rule"}});
      continue;
    }
    auto& seen = clients_[name];
    seen[d.value("ClientID", "")] = now;
    CountReport(name, d, now);
    for (auto c = seen.begin(); c != seen.end();) c = now - c->second > 10 ? seen.erase(c) : std::next(c);
    const int reservoir = it->second.value("ReservoirSize", 0);
    const int share = seen.empty() ? reservoir : reservoir / static_cast<int>(seen.size());
    docs.push_back({{"RuleName", name},
                    {"FixedRate", it->second.value("FixedRate", 0.0)},
                    {"ReservoirQuota", share},
                    {"ReservoirQuotaTTL", now + 10},
                    {"Interval", 10}});
  }
  return {{"SamplingTargetDocuments", docs}, {"LastRuleModification", last_modification_},
          {"UnprocessedStatistics", unprocessed}};
}

json SamplingRules::StatisticSummaries() {
  MutexLock lock(mu_);
  const double current = std::floor(NowSeconds() / kStatisticsWindow) * kStatisticsWindow;
  json out = json::array();
  for (const auto& [name, windows] : statistics_) {
    if (!rules_.count(name)) continue;
    const Window* pick = nullptr;
    for (const auto& w : windows)
      if (w.start == current - kStatisticsWindow) pick = &w;
    if (pick == nullptr && !windows.empty() && windows.back().start == current) pick = &windows.back();
    if (pick == nullptr) continue;
    out.push_back({{"RuleName", name}, {"Timestamp", pick->start}, {"RequestCount", pick->requests},
                   {"BorrowCount", pick->borrowed}, {"SampledCount", pick->sampled}});
  }
  return out;
}

void SamplingRules::SaveLocked() {
  json j = {{"rules", rules_}, {"created", created_}, {"modified", modified_}};
  SaveSetting(store_, "sampling_rules", j, "sampling rules");
}

ApiResult<json> GetSamplingRules(ApiContext& ctx, const json&) { return ctx.sampling.List(); }
ApiResult<json> GetSamplingTargets(ApiContext& ctx, const json& in) { return ctx.sampling.Targets(in); }
ApiResult<json> CreateSamplingRule(ApiContext& ctx, const json& in) {
  return ctx.sampling.Upsert(in["SamplingRule"], /*create=*/true);
}
ApiResult<json> UpdateSamplingRule(ApiContext& ctx, const json& in) {
  return ctx.sampling.Upsert(in["SamplingRuleUpdate"], /*create=*/false);
}
ApiResult<json> DeleteSamplingRule(ApiContext& ctx, const json& in) { return ctx.sampling.Delete(in); }
ApiResult<json> GetSamplingStatisticSummaries(ApiContext& ctx, const json&) {
  return json{{"SamplingStatisticSummaries", ctx.sampling.StatisticSummaries()}};
}

}  // namespace xrayd::api
