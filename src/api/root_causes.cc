#include "api/root_causes.h"

#include <map>
#include <string>

#include "api/filter_expression.h"
#include "segment/segment.h"

namespace xrayd::api {
namespace {

using nlohmann::json;
using segment::Entity;
using segment::Facts;
using Path = std::vector<const Entity*>;  // a segment, then the subsegments down to one entity

constexpr int kMaxDepth = 64;

double Duration(const Entity& e) { return e.start_time && e.end_time ? *e.end_time - *e.start_time : 0; }
bool Flag(const Entity& e, bool Entity::*flag) { return e.*flag; }
bool Remote(const Entity& e) { return segment::IsCallNamespace(e.ns); }

class Trace {
 public:
  explicit Trace(const std::vector<Facts>& docs) {
    for (const auto& d : docs)
      if (!d.entities.empty()) segs_.emplace_back().doc = &d;
    std::map<std::string, std::pair<size_t, Path>> owner;  // (sub)segment id → segment, path to it
    for (size_t i = 0; i < segs_.size(); ++i) {
      Path path;
      Index(*segs_[i].doc, 0, i, path, owner, 0);
    }
    for (size_t i = 0; i < segs_.size(); ++i) {
      auto it = owner.find(segs_[i].doc->parent_id);
      if (it == owner.end() || it->second.first == i) continue;
      segs_[i].parent = static_cast<int>(it->second.first);
      segs_[i].call_path = it->second.second;
      segs_[it->second.first].children.push_back(i);
      called_ids_.insert({segs_[i].doc->parent_id, i});
    }
    for (size_t i = 0; i < segs_.size(); ++i)
      if (segs_[i].parent < 0 && (root_ < 0 || Duration(Top(i)) > Duration(Top(static_cast<size_t>(root_)))))
        root_ = static_cast<int>(i);
    if (root_ >= 0) total_ = Duration(Top(static_cast<size_t>(root_)));
  }

  json FlagCauses(bool Entity::*flag) const {
    json causes = json::array();
    for (size_t i = 0; i < segs_.size(); ++i) {
      const Facts& doc = *segs_[i].doc;
      if (!TreeHas(doc, 0, flag, 0)) continue;
      bool downstream = false;
      for (size_t c : segs_[i].children) downstream |= TreeHas(*segs_[c].doc, 0, flag, 0);
      if (downstream) continue;
      Path path{&Top(i)};  // down to the deepest flagged entity
      int at = 0;
      for (int depth = 0; depth < kMaxDepth; ++depth) {
        int next = -1;
        for (int c : doc.entities[static_cast<size_t>(at)].children)
          if (TreeHas(doc, c, flag, 0)) {
            next = c;
            break;
          }
        if (next < 0) break;
        at = next;
        path.push_back(&doc.entities[static_cast<size_t>(at)]);
      }
      json services = Chain(i, true);
      json entities = json::array();
      for (const Entity* n : path) entities.push_back(EntityJson(*n, true));
      services.push_back(Service(doc, entities));
      const Entity& last = *path.back();
      if (path.size() > 1 && Remote(last) && !called_ids_.count(last.id)) {
        json inferred = Service(last.name, "", json::array({EntityJson(last, true)}));
        inferred["Type"] = segment::InferredServiceType(last.ns, last.name);
        inferred["Inferred"] = true;
        services.push_back(std::move(inferred));
      }
      causes.push_back({{"Services", services}, {"ClientImpacting", Flag(Top(Root(i)), flag)}});
    }
    return causes;
  }

  json ResponseTimeCauses() const {
    if (root_ < 0) return json::array();
    size_t at = static_cast<size_t>(root_);
    for (int depth = 0; depth < kMaxDepth && !segs_[at].children.empty(); ++depth) {
      size_t slowest = segs_[at].children[0];
      for (size_t c : segs_[at].children)
        if (Duration(Top(c)) > Duration(Top(slowest))) slowest = c;
      at = slowest;
    }
    const Facts& doc = *segs_[at].doc;
    Path path{&Top(at)};  // down the slowest subsegments
    int node = 0;
    for (int depth = 0; depth < kMaxDepth; ++depth) {
      int next = -1;
      for (int c : doc.entities[static_cast<size_t>(node)].children)
        if (next < 0 || Duration(doc.entities[static_cast<size_t>(c)]) > Duration(doc.entities[static_cast<size_t>(next)]))
          next = c;
      if (next < 0) break;
      node = next;
      path.push_back(&doc.entities[static_cast<size_t>(node)]);
    }
    json services = Chain(at, false);
    json entities = json::array();
    for (const Entity* n : path) entities.push_back(EntityJson(*n, false));
    services.push_back(Service(doc, entities));
    return json::array({{{"Services", services}, {"ClientImpacting", true}}});
  }

 private:
  struct Seg {
    const Facts* doc = nullptr;
    int parent = -1;
    Path call_path;  // in the parent segment, down to the subsegment that called this one
    std::vector<size_t> children;
  };

  const Entity& Top(size_t i) const { return segs_[i].doc->entities.front(); }

  static void Index(const Facts& doc, int at, size_t seg, Path& path,
                    std::map<std::string, std::pair<size_t, Path>>& owner, int depth) {
    if (depth > kMaxDepth) return;
    const Entity& e = doc.entities[static_cast<size_t>(at)];
    path.push_back(&e);
    if (!e.id.empty()) owner.emplace(e.id, std::pair{seg, path});
    for (int c : e.children) Index(doc, c, seg, path, owner, depth + 1);
    path.pop_back();
  }
  static bool TreeHas(const Facts& doc, int at, bool Entity::*flag, int depth) {
    if (depth > kMaxDepth) return false;
    const Entity& e = doc.entities[static_cast<size_t>(at)];
    if (e.*flag) return true;
    for (int c : e.children)
      if (TreeHas(doc, c, flag, depth + 1)) return true;
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
      for (const Entity* n : segs_[up[k - 1]].call_path) entities.push_back(EntityJson(*n, exceptions));
      services.push_back(Service(*segs_[up[k]].doc, entities));
    }
    return services;
  }
  // An entity of a root cause path: with its exceptions (fault, error) or its Coverage (response time).
  json EntityJson(const Entity& e, bool exceptions) const {
    json out = {{"Name", e.name}, {"Remote", Remote(e)}};
    if (!exceptions && total_ > 0) out["Coverage"] = Duration(e) / total_;
    if (exceptions) {
      json list = json::array();
      for (const auto& x : e.exceptions) {
        json item = {{"Name", x.type}};
        if (x.message) item["Message"] = *x.message;
        list.push_back(std::move(item));
      }
      out["Exceptions"] = std::move(list);
    }
    return out;
  }
  static json Service(const Facts& seg, json entities) { return Service(seg.name, seg.origin, std::move(entities)); }
  static json Service(const std::string& name, const std::string& origin, json entities) {
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

RootCauses FindRootCauses(const std::vector<segment::Facts>& segments) {
  Trace t(segments);
  RootCauses out;
  out.fault = t.FlagCauses(&Entity::fault);
  out.error = t.FlagCauses(&Entity::error);
  out.response_time = t.ResponseTimeCauses();
  return out;
}

}  // namespace xrayd::api
