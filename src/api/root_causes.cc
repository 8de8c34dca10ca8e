#include "api/root_causes.h"

#include <map>
#include <string>

#include "api/filter_expression.h"
#include "segment/segment.h"

namespace xrayd::api {
namespace {

using nlohmann::json;
using Path = std::vector<const json*>;  // a segment, then the subsegments down to one node

constexpr int kMaxDepth = 64;

std::string Str(const json& node, const char* key) {
  auto it = node.find(key);
  return it != node.end() && it->is_string() ? it->get<std::string>() : std::string();
}
bool Flag(const json& node, const char* key) {
  auto it = node.find(key);
  return it != node.end() && it->is_boolean() && it->get<bool>();
}
double Duration(const json& node) {
  auto s = node.find("start_time"), e = node.find("end_time");
  if (s == node.end() || e == node.end() || !s->is_number() || !e->is_number()) return 0;
  return e->get<double>() - s->get<double>();
}
const json* Subsegments(const json& node) {
  auto it = node.find("subsegments");
  return it != node.end() && it->is_array() ? &*it : nullptr;
}
bool Remote(const json& node) { return segment::IsCallNamespace(Str(node, "namespace")); }

class Trace {
 public:
  explicit Trace(const std::vector<json>& docs) {
    for (const auto& d : docs)
      if (d.is_object()) segs_.emplace_back().doc = &d;
    std::map<std::string, std::pair<size_t, Path>> owner;  // (sub)segment id → segment, path to it
    for (size_t i = 0; i < segs_.size(); ++i) {
      Path path;
      Index(*segs_[i].doc, i, path, owner, 0);
    }
    for (size_t i = 0; i < segs_.size(); ++i) {
      auto it = owner.find(Str(*segs_[i].doc, "parent_id"));
      if (it == owner.end() || it->second.first == i) continue;
      segs_[i].parent = static_cast<int>(it->second.first);
      segs_[i].call_path = it->second.second;
      segs_[it->second.first].children.push_back(i);
      called_ids_.insert({Str(*segs_[i].doc, "parent_id"), i});
    }
    for (size_t i = 0; i < segs_.size(); ++i)
      if (segs_[i].parent < 0 && (root_ < 0 || Duration(*segs_[i].doc) > Duration(*segs_[root_].doc)))
        root_ = static_cast<int>(i);
    if (root_ >= 0) total_ = Duration(*segs_[root_].doc);
  }

  json FlagCauses(const char* flag) const {
    json causes = json::array();
    for (size_t i = 0; i < segs_.size(); ++i) {
      if (!TreeHas(*segs_[i].doc, flag, 0)) continue;
      bool downstream = false;
      for (size_t c : segs_[i].children) downstream |= TreeHas(*segs_[c].doc, flag, 0);
      if (downstream) continue;
      Path path{segs_[i].doc};  // down to the deepest flagged node
      for (int depth = 0; depth < kMaxDepth; ++depth) {
        const json* next = nullptr;
        if (const json* subs = Subsegments(*path.back()))
          for (const auto& s : *subs)
            if (s.is_object() && TreeHas(s, flag, 0)) {
              next = &s;
              break;
            }
        if (next == nullptr) break;
        path.push_back(next);
      }
      json services = Chain(i, true);
      json entities = json::array();
      for (const json* n : path) entities.push_back(Entity(*n, true));
      services.push_back(Service(*segs_[i].doc, entities));
      const json& last = *path.back();
      if (path.size() > 1 && Remote(last) && !called_ids_.count(Str(last, "id"))) {
        json inferred = Service(last, json::array({Entity(last, true)}));
        inferred["Type"] = segment::InferredServiceType(Str(last, "namespace"), Str(last, "name"));
        inferred["Inferred"] = true;
        services.push_back(std::move(inferred));
      }
      causes.push_back({{"Services", services}, {"ClientImpacting", Flag(*segs_[Root(i)].doc, flag)}});
    }
    return causes;
  }

  json ResponseTimeCauses() const {
    if (root_ < 0) return json::array();
    size_t at = static_cast<size_t>(root_);
    for (int depth = 0; depth < kMaxDepth && !segs_[at].children.empty(); ++depth) {
      size_t slowest = segs_[at].children[0];
      for (size_t c : segs_[at].children)
        if (Duration(*segs_[c].doc) > Duration(*segs_[slowest].doc)) slowest = c;
      at = slowest;
    }
    Path path{segs_[at].doc};  // down the slowest subsegments
    for (int depth = 0; depth < kMaxDepth; ++depth) {
      const json* subs = Subsegments(*path.back());
      const json* next = nullptr;
      if (subs)
        for (const auto& s : *subs)
          if (s.is_object() && (next == nullptr || Duration(s) > Duration(*next))) next = &s;
      if (next == nullptr) break;
      path.push_back(next);
    }
    json services = Chain(at, false);
    json entities = json::array();
    for (const json* n : path) entities.push_back(Entity(*n, false));
    services.push_back(Service(*segs_[at].doc, entities));
    return json::array({{{"Services", services}, {"ClientImpacting", true}}});
  }

 private:
  struct Seg {
    const json* doc = nullptr;
    int parent = -1;
    Path call_path;  // in the parent segment, down to the subsegment that called this one
    std::vector<size_t> children;
  };

  static void Index(const json& node, size_t seg, Path& path, std::map<std::string, std::pair<size_t, Path>>& owner,
                    int depth) {
    if (depth > kMaxDepth || !node.is_object()) return;
    path.push_back(&node);
    if (const std::string id = Str(node, "id"); !id.empty()) owner.emplace(id, std::pair{seg, path});
    if (const json* subs = Subsegments(node))
      for (const auto& s : *subs) Index(s, seg, path, owner, depth + 1);
    path.pop_back();
  }
  static bool TreeHas(const json& node, const char* flag, int depth) {
    if (depth > kMaxDepth || !node.is_object()) return false;
    if (Flag(node, flag)) return true;
    if (const json* subs = Subsegments(node))
      for (const auto& s : *subs)
        if (TreeHas(s, flag, depth + 1)) return true;
    return false;
  }
  size_t Root(size_t i) const {
    for (int depth = 0; depth < kMaxDepth && segs_[i].parent >= 0; ++depth) i = static_cast<size_t>(segs_[i].parent);
    return i;
  }
  // The services from the trace's entry down to (not including) segment i, each with the path
  // through which it called the next.
  json Chain(size_t i, bool exceptions) const {
    std::vector<size_t> up;
    for (int depth = 0; depth < kMaxDepth && segs_[i].parent >= 0; ++depth) {
      up.push_back(i);
      i = static_cast<size_t>(segs_[i].parent);
    }
    up.push_back(i);
    json services = json::array();
    for (size_t k = up.size() - 1; k > 0; --k) {
      json entities = json::array();
      for (const json* n : segs_[up[k - 1]].call_path) entities.push_back(Entity(*n, exceptions));
      services.push_back(Service(*segs_[up[k]].doc, entities));
    }
    return services;
  }
  // An entity of a root cause path: with its exceptions (fault, error) or its Coverage (response time).
  json Entity(const json& node, bool exceptions) const {
    json e = {{"Name", Str(node, "name")}, {"Remote", Remote(node)}};
    if (!exceptions && total_ > 0) e["Coverage"] = Duration(node) / total_;
    if (exceptions) {
      json list = json::array();
      auto cause = node.find("cause");
      if (cause != node.end() && cause->is_object() && cause->contains("exceptions") && (*cause)["exceptions"].is_array())
        for (const auto& x : (*cause)["exceptions"]) {
          if (!x.is_object()) continue;
          json item = {{"Name", x.contains("type") && x["type"].is_string() ? x["type"].get<std::string>() : "unknown"}};
          if (x.contains("message") && x["message"].is_string()) item["Message"] = x["message"];
          list.push_back(std::move(item));
        }
      e["Exceptions"] = std::move(list);
    }
    return e;
  }
  static json Service(const json& seg, json entities) {
    const std::string name = Str(seg, "name"), origin = Str(seg, "origin");
    return {{"Name", name},
            {"Names", json::array({name})},
            {"Type", origin.empty() ? std::string(kPlainServiceType) : origin},
            {"EntityPath", std::move(entities)},
            {"Inferred", false}};
  }

  std::vector<Seg> segs_;
  std::map<std::string, size_t> called_ids_;  // subsegment id → the segment it called
  int root_ = -1;                             // the entry segment (the longest, if several)
  double total_ = 0;                          // its duration, for Coverage
};

}  // namespace

RootCauses FindRootCauses(const std::vector<json>& segments) {
  Trace t(segments);
  RootCauses out;
  out.fault = t.FlagCauses("fault");
  out.error = t.FlagCauses("error");
  out.response_time = t.ResponseTimeCauses();
  return out;
}

}  // namespace xrayd::api
