#include "api/trace_assembly.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>

#include "segment/lb_join.h"
#include "segment/segment.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

// Indexes every (sub)segment object in `node` by id, pointing into the owning json tree.
void Index(json& node, std::map<std::string, json*>& by_id, int depth = 0) {
  if (depth > 64 || !node.is_object()) return;
  if (auto it = node.find("id"); it != node.end() && it->is_string()) by_id[it->get<std::string>()] = &node;
  if (auto subs = node.find("subsegments"); subs != node.end() && subs->is_array())
    for (auto& s : *subs) Index(s, by_id, depth + 1);
}

// A member as a string or a boolean, or the fallback when it is missing or of another type: stored
// documents were validated, but an embedded subsegment's members may hold any JSON (a number "id"),
// and nlohmann's value() would throw on them.
std::string StringMember(const json& node, const char* key) {
  if (!node.is_object()) return "";
  auto it = node.find(key);
  return it != node.end() && it->is_string() ? it->get<std::string>() : "";
}

bool TrueMember(const json& node, const char* key) {
  auto it = node.find(key);
  return it != node.end() && it->is_boolean() && it->get<bool>();
}

void Bounds(const json& node, double& lo, double& hi, int depth = 0) {
  if (depth > 64 || !node.is_object()) return;
  if (auto s = node.find("start_time"); s != node.end() && s->is_number()) lo = std::min(lo, s->get<double>());
  if (auto e = node.find("end_time"); e != node.end() && e->is_number()) hi = std::max(hi, e->get<double>());
  if (auto subs = node.find("subsegments"); subs != node.end() && subs->is_array())
    for (const auto& s : *subs) Bounds(s, lo, hi, depth + 1);
}

}  // namespace

namespace {

// A trace without streamed (independent) subsegment documents, the usual case: nothing to merge,
// so its documents (under their load balancer) are returned as stored, JSON text the store
// validated, and the duration is read by simdjson (segment::Facts' entities, the same depth bound
// as Bounds) instead of a nlohmann parse and re-dump of every document (most of BatchGetTraces'
// CPU). nullopt when the trace needs the general path below.
std::optional<AssembledTrace> AssemblePlain(const std::vector<store::StoredSegment>& stored) {
  if (std::any_of(stored.begin(), stored.end(), [](const auto& s) { return s.independent_subsegment; }))
    return std::nullopt;
  std::vector<std::string> docs;
  docs.reserve(stored.size());
  for (const auto& s : stored) docs.push_back(s.doc);
  docs = segment::JoinLoadBalancer(std::move(docs));
  thread_local segment::Parser parser;  // reused: its buffers grow once per thread
  segment::Facts facts;
  AssembledTrace out;
  double lo = 1e300, hi = -1e300;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (!parser.FactsOf(docs[i], &facts).ok()) return std::nullopt;
    for (const auto& e : facts.entities) {
      if (e.start_time) lo = std::min(lo, *e.start_time);
      if (e.end_time) hi = std::max(hi, *e.end_time);
    }
    out.segments.push_back({facts.id, std::move(docs[i])});
  }
  out.duration = hi > lo ? hi - lo : 0;
  return out;
}

}  // namespace

AssembledTrace AssembleTrace(const std::vector<store::StoredSegment>& stored) {
  if (auto plain = AssemblePlain(stored)) return std::move(*plain);
  std::vector<json> segments;
  std::vector<json> orphans;  // independent subsegments, merged below
  std::vector<std::string> docs;  // with the first service joined under its load balancer, if any
  for (const auto& s : stored) docs.push_back(s.doc);
  docs = segment::JoinLoadBalancer(std::move(docs));
  for (size_t i = 0; i < stored.size(); ++i) {
    json doc = json::parse(docs[i], nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) continue;
    (stored[i].independent_subsegment ? orphans : segments).push_back(std::move(doc));
  }
  // Merge repeatedly: a streamed subsegment's parent may itself be a streamed subsegment. The id
  // index points into the json trees, and inserting into a "subsegments" array can move its
  // elements, so the index is rebuilt after every merge rather than reused.
  auto in_progress = [](const json& n) { return TrueMember(n, "in_progress") || !n.contains("end_time"); };
  for (bool progress = true; progress && !orphans.empty();) {
    progress = false;
    for (size_t k = 0; k < orphans.size(); ++k) {
      std::map<std::string, json*> by_id;
      for (auto& seg : segments) Index(seg, by_id);
      json& o = orphans[k];
      auto it = by_id.find(StringMember(o, "parent_id"));
      if (it == by_id.end()) continue;
      json sub = std::move(o);
      orphans.erase(orphans.begin() + static_cast<std::ptrdiff_t>(k));
      --k;
      sub.erase("type");
      sub.erase("parent_id");
      sub.erase("trace_id");
      json& subs = (*it->second)["subsegments"];
      if (!subs.is_array()) subs = json::array();
      // A copy already embedded under the same id (SDKs flush an in-progress stub, then embed
      // the finished one, or the other way round): keep the complete one.
      const std::string id = StringMember(sub, "id");
      bool seen = false;
      for (auto& existing : subs) {
        if (!existing.is_object() || StringMember(existing, "id") != id) continue;
        seen = true;
        if (in_progress(existing) || !in_progress(sub)) existing = std::move(sub);
        break;
      }
      if (!seen) subs.push_back(std::move(sub));
      progress = true;
    }
  }
  AssembledTrace out;
  double lo = 1e300, hi = -1e300;
  for (auto& seg : segments) {
    Bounds(seg, lo, hi);
    out.segments.push_back({StringMember(seg, "id"), seg.dump()});
  }
  // Subsegments whose parent never arrived are still returned, as X-Ray shows partial traces.
  for (auto& o : orphans) {
    Bounds(o, lo, hi);
    out.segments.push_back({StringMember(o, "id"), o.dump()});
  }
  out.duration = hi > lo ? hi - lo : 0;
  return out;
}

}  // namespace xrayd::api
