#include "api/groups.h"

#include "api/settings.h"

#include "common/log.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

std::string Arn(const std::string& name) { return "arn:aws:xray:local:000000000000:group/" + name; }

// The filter expression, checked: an error names the field and the parser's complaint.
ApiResult<Filter> ParseFilter(const std::string& expr) {
  auto f = Filter::Parse(expr);
  if (!f) return ApiError::Invalid("FilterExpression: " + f.error().message);
  return std::move(*f);
}

void ApplyInsights(const json& in, bool& insights, bool& notifications) {
  auto c = in.find("InsightsConfiguration");
  if (c == in.end()) return;
  insights = c->value("InsightsEnabled", insights);
  notifications = c->value("NotificationsEnabled", notifications);
}

}  // namespace

Groups::Groups(store::TraceStore& store) : store_(store) {
  auto j = LoadSettingObject(store_, "groups", "groups");
  if (!j) return;
  MutexLock lock(mu_);
  for (auto& [name, g] : j->items()) {
    if (!g.is_object()) continue;
    groups_[name] = {g.value("FilterExpression", ""), g.value("InsightsEnabled", false),
                     g.value("NotificationsEnabled", false)};
  }
}

std::string Groups::NameOf(const json& in) {
  if (auto n = in.find("GroupName"); n != in.end()) return n->get<std::string>();
  if (auto a = in.find("GroupARN"); a != in.end()) {
    const std::string& arn = a->get_ref<const std::string&>();
    if (auto slash = arn.rfind('/'); slash != std::string::npos) return arn.substr(slash + 1);
  }
  return "";
}

json Groups::Summary(const std::string& name, const Group& g) {
  json out = {{"GroupName", name}, {"GroupARN", Arn(name)},
              {"InsightsConfiguration", {{"InsightsEnabled", g.insights}, {"NotificationsEnabled", g.notifications}}}};
  if (!g.filter_expression.empty()) out["FilterExpression"] = g.filter_expression;
  return out;
}

json Groups::List() {
  MutexLock lock(mu_);
  json out = json::array({Summary("Default", {})});
  for (const auto& [name, g] : groups_) out.push_back(Summary(name, g));
  return {{"Groups", out}};
}

ApiResult<json> Groups::Get(const json& in) {
  const std::string name = NameOf(in);
  if (name.empty()) return ApiError::Invalid("GroupName or GroupARN is required");
  if (name == "Default") return json{{"Group", Summary("Default", {})}};
  MutexLock lock(mu_);
  auto it = groups_.find(name);
  if (it == groups_.end()) return ApiError::Invalid("group " + name + " not found");
  return json{{"Group", Summary(name, it->second)}};
}

ApiResult<Filter> Groups::FilterOf(const json& in) {
  if (!in.contains("GroupName") && !in.contains("GroupARN")) return Filter();
  const std::string name = NameOf(in);
  if (name.empty() || name == "Default") return Filter();
  std::string expr;
  {
    MutexLock lock(mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) return ApiError::Invalid("group " + name + " not found");
    expr = it->second.filter_expression;
  }
  return ParseFilter(expr);
}

ApiResult<json> Groups::Create(const json& in) {
  const std::string name = in["GroupName"].get<std::string>();
  Group g;
  g.filter_expression = in.value("FilterExpression", "");
  if (auto f = ParseFilter(g.filter_expression); !f) return f.error();
  ApplyInsights(in, g.insights, g.notifications);
  MutexLock lock(mu_);
  if (name == "Default" || groups_.count(name)) return ApiError::Invalid("group " + name + " already exists");
  groups_[name] = g;
  SaveLocked();
  return json{{"Group", Summary(name, g)}};
}

ApiResult<json> Groups::Update(const json& in) {
  const std::string name = NameOf(in);
  if (name.empty()) return ApiError::Invalid("GroupName or GroupARN is required");
  if (in.contains("FilterExpression"))
    if (auto f = ParseFilter(in["FilterExpression"].get<std::string>()); !f) return f.error();
  MutexLock lock(mu_);
  auto it = groups_.find(name);
  if (it == groups_.end()) return ApiError::Invalid("group " + name + " not found");
  if (in.contains("FilterExpression")) it->second.filter_expression = in["FilterExpression"].get<std::string>();
  ApplyInsights(in, it->second.insights, it->second.notifications);
  SaveLocked();
  return json{{"Group", Summary(name, it->second)}};
}

ApiResult<json> Groups::Delete(const json& in) {
  const std::string name = NameOf(in);
  if (name.empty()) return ApiError::Invalid("GroupName or GroupARN is required");
  MutexLock lock(mu_);
  if (!groups_.erase(name)) return ApiError::Invalid("group " + name + " not found");
  SaveLocked();
  return json::object();
}

void Groups::SaveLocked() {
  json j = json::object();
  for (const auto& [name, g] : groups_)
    j[name] = {{"FilterExpression", g.filter_expression}, {"InsightsEnabled", g.insights},
               {"NotificationsEnabled", g.notifications}};
  SaveSetting(store_, "groups", j, "groups");
}

ApiResult<json> GetGroups(ApiContext& ctx, const json&) { return ctx.groups.List(); }
ApiResult<json> GetGroup(ApiContext& ctx, const json& in) { return ctx.groups.Get(in); }
ApiResult<json> CreateGroup(ApiContext& ctx, const json& in) { return ctx.groups.Create(in); }
ApiResult<json> UpdateGroup(ApiContext& ctx, const json& in) { return ctx.groups.Update(in); }
ApiResult<json> DeleteGroup(ApiContext& ctx, const json& in) { return ctx.groups.Delete(in); }

}  // namespace xrayd::api
