#include "xray/sampling.h"

#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>

#include "xray/ids.h"

namespace xray {
namespace {

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

char Fold(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Reads fixed_target and rate of one rule object; false and *error when missing or out of range.
bool ReadQuota(const nlohmann::json& obj, const std::string& where, SamplingRule& rule, std::string* error) {
  auto ft = obj.find("fixed_target");
  auto rate = obj.find("rate");
  if (ft == obj.end() || !ft->is_number_integer() || ft->get<int64_t>() < 0) {
    *error = where + ": fixed_target must be a non-negative integer";
    return false;
  }
  if (rate == obj.end() || !rate->is_number() || rate->get<double>() < 0 || rate->get<double>() > 1) {
    *error = where + ": rate must be a number between 0 and 1";
    return false;
  }
  rule.fixed_target = ft->get<int64_t>();
  rule.rate = rate->get<double>();
  return true;
}

bool ReadString(const nlohmann::json& obj, const char* key, std::string& out, const std::string& where,
                std::string* error) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;  // keeps the "*" default
  if (!it->is_string()) {
    *error = where + ": " + key + " must be a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

}  // namespace

bool WildcardMatch(std::string_view pattern, std::string_view text) {
  // Iterative matcher with one backtrack point (the last '*'): linear in practice, no recursion.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || Fold(pattern[p]) == Fold(text[t]))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool SamplingRule::Matches(const SamplingRequest& r) const {
  return WildcardMatch(host, r.host) && WildcardMatch(http_method, r.http_method) &&
         WildcardMatch(url_path, r.url_path) && WildcardMatch(service_name, r.service_name);
}

bool LocalSampler::Reservoir::Take(int64_t now, int64_t quota) {
  if (quota <= 0) return false;
  uint64_t cur = state.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t second = cur >> 24;
    uint64_t used = cur & 0xffffff;
    if (second != static_cast<uint64_t>(now)) used = 0;  // a new second refills the reservoir
    if (static_cast<int64_t>(used) >= quota || used == 0xffffff) return false;
    uint64_t next = (static_cast<uint64_t>(now) << 24) | (used + 1);
    if (state.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return true;
  }
}

LocalSampler::LocalSampler() : LocalSampler({}, SamplingRule{}, {}) {}

LocalSampler::LocalSampler(std::vector<SamplingRule> rules, SamplingRule default_rule, Clock clock)
    : rules_(std::move(rules)),
      default_rule_(std::move(default_rule)),
      clock_(clock ? std::move(clock) : Clock(WallSeconds)),
      reservoirs_(new Reservoir[rules_.size() + 1]) {}

bool LocalSampler::Decide(const SamplingRule& rule, Reservoir& reservoir) {
  if (reservoir.Take(clock_(), rule.fixed_target)) return true;
  return rule.rate > 0 && RandomUnit() < rule.rate;
}

bool LocalSampler::ShouldSample(const SamplingRequest& request) {
  for (size_t i = 0; i < rules_.size(); ++i)
    if (rules_[i].Matches(request)) return Decide(rules_[i], reservoirs_[i]);
  return Decide(default_rule_, reservoirs_[rules_.size()]);
}

std::optional<std::vector<SamplingRule>> LocalSampler::ParseRules(std::string_view text, SamplingRule* default_rule,
                                                                  std::string* error) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    *error = "sampling rules: not a JSON object";
    return std::nullopt;
  }
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() ||
      (version->get<int>() != 1 && version->get<int>() != 2)) {
    *error = "sampling rules: version must be 1 or 2";
    return std::nullopt;
  }
  const int v = version->get<int>();
  auto def = doc.find("default");
  if (def == doc.end() || !def->is_object()) {
    *error = "sampling rules: a \"default\" rule is required";
    return std::nullopt;
  }
  SamplingRule parsed_default;
  if (!ReadQuota(*def, "default", parsed_default, error)) return std::nullopt;

  std::vector<SamplingRule> rules;
  auto list = doc.find("rules");
  if (list != doc.end()) {
    if (!list->is_array()) {
      *error = "sampling rules: \"rules\" must be an array";
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const auto& obj = (*list)[i];
      std::string where = "rules[" + std::to_string(i) + "]";
      if (!obj.is_object()) {
        *error = where + ": not an object";
        return std::nullopt;
      }
      SamplingRule rule;
      if (!ReadQuota(obj, where, rule, error) || !ReadString(obj, "description", rule.description, where, error) ||
          !ReadString(obj, "http_method", rule.http_method, where, error) ||
          !ReadString(obj, "url_path", rule.url_path, where, error))
        return std::nullopt;
      if (v == 2) {
        if (obj.contains("service_name")) {
          *error = where + ": service_name is a version 1 field; version 2 uses host";
          return std::nullopt;
        }
        if (!ReadString(obj, "host", rule.host, where, error)) return std::nullopt;
      } else {
        if (!ReadString(obj, "service_name", rule.service_name, where, error)) return std::nullopt;
      }
      rules.push_back(std::move(rule));
    }
  }
  if (default_rule != nullptr) *default_rule = parsed_default;
  return rules;
}

std::unique_ptr<LocalSampler> LocalSampler::FromJson(std::string_view json, std::string* error, Clock clock) {
  SamplingRule def;
  auto rules = ParseRules(json, &def, error);
  if (!rules) return nullptr;
  return std::make_unique<LocalSampler>(std::move(*rules), std::move(def), std::move(clock));
}

}  // namespace xray
