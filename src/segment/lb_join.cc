#include "segment/lb_join.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <set>

namespace xrayd::segment {
namespace {

using nlohmann::json;

constexpr std::string_view kMarker = "AWS::ElasticLoadBalancing";

// The trace id of a document without parsing it: the string after its first "trace_id" key. Empty
// when the text does not have that plain shape (the caller then parses the document).
std::string_view QuickTraceId(std::string_view doc) {
  const size_t key = doc.find("\"trace_id\"");
  if (key == std::string_view::npos) return {};
  size_t i = key + 10;
  while (i < doc.size() && (doc[i] == ' ' || doc[i] == ':' || doc[i] == '\t' || doc[i] == '\n')) ++i;
  if (i >= doc.size() || doc[i] != '"') return {};
  const size_t end = doc.find('"', i + 1);
  if (end == std::string_view::npos) return {};
  std::string_view id = doc.substr(i + 1, end - i - 1);
  return id.find('\\') == std::string_view::npos ? id : std::string_view{};
}

struct LoadBalancer {
  double start = 0;
  std::string target_id;
};

struct Root {
  double start = 0;
  std::string id;
  size_t index = 0;
};

double Start(const json& d) {
  auto it = d.find("start_time");
  return it != d.end() && it->is_number() ? it->get<double>() : 0;
}

std::string Str(const json& d, const char* key) {
  auto it = d.find(key);
  return it != d.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The id of the load balancer's target subsegment: its first subsegment in the remote namespace.
std::string TargetId(const json& lb) {
  auto subs = lb.find("subsegments");
  if (subs == lb.end() || !subs->is_array()) return {};
  for (const auto& s : *subs)
    if (s.is_object() && Str(s, "namespace") == "remote" && !Str(s, "id").empty()) return Str(s, "id");
  return {};
}

// Pass 1: the load-balancer segment of each trace that has one (only documents naming an ELB
// origin are parsed).
std::map<std::string, LoadBalancer> FindLoadBalancers(const std::vector<std::string>& docs) {
  std::map<std::string, LoadBalancer> lbs;
  for (const auto& d : docs) {
    if (d.find(kMarker) == std::string::npos) continue;
    json j = json::parse(d, nullptr, false);
    if (!j.is_object() || Str(j, "type") == "subsegment" || !IsLoadBalancerOrigin(Str(j, "origin"))) continue;
    std::string target = TargetId(j);
    if (target.empty()) continue;
    auto [it, inserted] = lbs.try_emplace(Str(j, "trace_id"), LoadBalancer{Start(j), target});
    if (!inserted && Start(j) < it->second.start) it->second = {Start(j), std::move(target)};
  }
  return lbs;
}

}  // namespace

bool IsLoadBalancerOrigin(std::string_view origin) { return origin == kAlbOrigin || origin == kClbOrigin; }

std::vector<std::string> JoinLoadBalancer(std::vector<std::string> docs) {
  const auto lbs = FindLoadBalancers(docs);
  if (lbs.empty()) return docs;
  // Pass 2: each such trace's first service segment (documents of other traces are skipped by their
  // trace id, read without parsing where the text allows).
  std::map<std::string, Root> roots;
  std::map<size_t, json> parsed;
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string_view quick = QuickTraceId(docs[i]);
    if (!quick.empty() && !lbs.count(std::string(quick))) continue;
    json j = json::parse(docs[i], nullptr, false);
    if (!j.is_object() || Str(j, "type") == "subsegment" || IsLoadBalancerOrigin(Str(j, "origin"))) continue;
    if (!Str(j, "parent_id").empty() || j.contains("parent_id")) continue;
    const std::string trace = Str(j, "trace_id");
    if (!lbs.count(trace)) continue;
    Root candidate{Start(j), Str(j, "id"), i};
    auto [it, inserted] = roots.try_emplace(trace, candidate);
    if (!inserted && (candidate.start < it->second.start ||
                      (candidate.start == it->second.start && candidate.id < it->second.id)))
      it->second = candidate;
    parsed.emplace(i, std::move(j));
  }
  for (const auto& [trace, root] : roots) {
    json& j = parsed.at(root.index);
    j["parent_id"] = lbs.at(trace).target_id;
    docs[root.index] = j.dump();
  }
  return docs;
}

}  // namespace xrayd::segment
