#include "api/service_graph.h"

#include <cmath>
#include <map>
#include <set>

#include "segment/segment.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

struct Stats {
  int64_t ok = 0, error = 0, throttle = 0, fault = 0, total = 0;
  double total_response_time = 0;
  std::map<double, int64_t> histogram;  // response time (ms precision) → count

  void Add(const json& node) {
    const double rt = node.value("end_time", node.value("start_time", 0.0)) - node.value("start_time", 0.0);
    const bool f = node.value("fault", false), e = node.value("error", false), t = node.value("throttle", false);
    ++total;
    if (f) ++fault;
    else if (e) ++error;
    else ++ok;
    if (t) ++throttle;
    total_response_time += rt;
    histogram[std::round(rt * 1000) / 1000]++;
  }
  void Merge(const Stats& o) {
    ok += o.ok, error += o.error, throttle += o.throttle, fault += o.fault, total += o.total;
    total_response_time += o.total_response_time;
    for (const auto& [v, c] : o.histogram) histogram[v] += c;
  }
  json Summary() const {
    return {{"OkCount", ok},
            {"ErrorStatistics", {{"ThrottleCount", throttle}, {"OtherCount", error - std::min(error, throttle)}, {"TotalCount", error}}},
            {"FaultStatistics", {{"OtherCount", fault}, {"TotalCount", fault}}},
            {"TotalCount", total},
            {"TotalResponseTime", total_response_time}};
  }
  json Histogram() const {
    json h = json::array();
    for (const auto& [v, c] : histogram) h.push_back({{"Value", v}, {"Count", c}});
    return h;
  }
};

struct NodeKey {
  std::string name, type;
  bool operator<(const NodeKey& o) const { return std::tie(name, type) < std::tie(o.name, o.type); }
};

// Statistics per period for time series: period start (epoch seconds) → stats.
using Series = std::map<int64_t, Stats>;

struct Edge {
  Stats stats;
  double start = 1e300, end = -1e300;
  Series series;
};

struct Node {
  int ref = 0;
  bool root = false;
  double start = 1e300, end = -1e300;
  Stats stats;
  Series series;
  Series root_series;  // this service's root segments: the requests entering the graph here
  std::map<int, Edge> edges;  // by target ref
};

class GraphBuilder {
 public:
  GraphBuilder() = default;
  // Also keeps statistics per `period` seconds, of calls starting within [start, end].
  GraphBuilder(int period, double start, double end) : period_(period), series_start_(start), series_end_(end) {}

  void AddTrace(std::vector<json>& docs) {
    // Index every (sub)segment id in this trace → the service node of the segment holding it.
    std::map<std::string, NodeKey> owner;
    std::map<std::string, const json*> by_id;
    std::set<std::string> parents_with_segments;
    for (const auto& d : docs) {
      if (d.value("type", "") == "subsegment") continue;
      if (d.contains("parent_id")) parents_with_segments.insert(d.value("parent_id", ""));
    }
    for (const auto& d : docs) {
      if (d.value("type", "") == "subsegment") continue;
      NodeKey key{d.value("name", ""), d.value("origin", "")};
      IndexIds(d, key, owner, by_id, 0);
    }
    for (const auto& d : docs) {
      if (d.value("type", "") == "subsegment") {  // streamed subsegment: owned by its segment's service
        auto it = owner.find(d.value("parent_id", ""));
        if (it != owner.end()) Inferred(d, it->second, parents_with_segments, 0);
        continue;
      }
      NodeKey key{d.value("name", ""), d.value("origin", "")};
      Node& n = Get(key);
      Count(n.stats, n.series, d);
      Bound(n.start, n.end, d);
      const std::string parent = d.value("parent_id", "");
      if (parent.empty()) n.root = true;
      if (auto it = parent.empty() ? owner.end() : owner.find(parent); it != owner.end()) {
        auto& edge = Get(it->second).edges[n.ref];
        Count(edge.stats, edge.series, d);
        Bound(edge.start, edge.end, d);
      } else {  // called from outside the trace's segments (a client)
        Stats unused;
        Count(unused, n.root_series, d);
      }
      Inferred(d, key, parents_with_segments, 0);
    }
  }

  json Services() const {
    json out = json::array();
    for (const auto& [key, n] : nodes_) {
      json edges = json::array();
      for (const auto& [target, e] : n.edges) {
        edges.push_back({{"ReferenceId", target},
                         {"StartTime", e.start},
                         {"EndTime", e.end},
                         {"SummaryStatistics", e.stats.Summary()},
                         {"ResponseTimeHistogram", e.stats.Histogram()},
                         {"Aliases", json::array()}});
      }
      json s = {{"ReferenceId", n.ref},
                {"Name", key.name},
                {"Names", json::array({key.name})},
                {"Root", n.root},
                {"Type", key.type.empty() ? std::string(kPlainServiceType) : key.type},
                {"State", "active"},
                {"StartTime", n.start},
                {"EndTime", n.end},
                {"Edges", edges},
                {"SummaryStatistics", n.stats.Summary()},
                {"DurationHistogram", n.stats.Histogram()},
                {"ResponseTimeHistogram", n.stats.Histogram()}};
      out.push_back(std::move(s));
    }
    return out;
  }

  // The time series of what `selector` names: the services it names, the edges between the
  // services it names, or (empty selector) the requests entering the graph. Second: whether
  // these are edge statistics.
  std::pair<Series, bool> Select(const EntitySelector& selector) const {
    Series out;
    auto merge = [&out](const Series& s) {
      for (const auto& [t, stats] : s) out[t].Merge(stats);
    };
    auto matches = [](const NodeKey& key, const std::pair<std::string, std::string>& id) {
      return (id.first.empty() || key.name == id.first) && ServiceTypeMatches(id.second, key.type);
    };
    if (selector.ids.empty()) {
      for (const auto& [key, n] : nodes_) merge(n.root_series);
      return {out, true};
    }
    if (!selector.edge) {
      for (const auto& [key, n] : nodes_)
        if (matches(key, selector.ids[0])) merge(n.series);
      return {out, false};
    }
    std::map<int, const NodeKey*> by_ref;
    for (const auto& [key, n] : nodes_) by_ref[n.ref] = &key;
    for (const auto& [key, n] : nodes_) {
      if (!matches(key, selector.ids[0])) continue;
      for (const auto& [target, e] : n.edges)
        if (matches(*by_ref.at(target), selector.ids[1])) merge(e.series);
    }
    return {out, true};
  }

 private:
  void Count(Stats& total, Series& series, const json& d) {
    total.Add(d);
    if (period_ <= 0) return;
    const double t = d.value("start_time", 0.0);
    if (t < series_start_ || t > series_end_) return;
    series[static_cast<int64_t>(std::floor(t / period_)) * period_].Add(d);
  }

  Node& Get(const NodeKey& key) {
    auto [it, inserted] = nodes_.try_emplace(key);
    if (inserted) it->second.ref = static_cast<int>(nodes_.size()) - 1;
    return it->second;
  }
  static void Bound(double& lo, double& hi, const json& d) {
    lo = std::min(lo, d.value("start_time", lo));
    hi = std::max(hi, d.value("end_time", d.value("start_time", hi)));
  }
  void IndexIds(const json& node, const NodeKey& key, std::map<std::string, NodeKey>& owner,
                std::map<std::string, const json*>& by_id, int depth) {
    if (depth > 64 || !node.is_object()) return;
    if (node.contains("id") && node["id"].is_string()) {
      owner[node["id"].get<std::string>()] = key;
      by_id[node["id"].get<std::string>()] = &node;
    }
    if (node.contains("subsegments") && node["subsegments"].is_array())
      for (const auto& s : node["subsegments"]) IndexIds(s, key, owner, by_id, depth + 1);
  }
  // Remote calls that produced no segment downstream become inferred nodes with an edge.
  void Inferred(const json& node, const NodeKey& caller, const std::set<std::string>& parents_with_segments, int depth) {
    if (depth > 64 || !node.is_object() || !node.contains("subsegments") || !node["subsegments"].is_array()) return;
    for (const auto& sub : node["subsegments"]) {
      if (!sub.is_object()) continue;
      const std::string ns = sub.value("namespace", "");
      const std::string id = sub.value("id", "");
      if (segment::IsCallNamespace(ns) && !parents_with_segments.count(id)) {
        const std::string name = sub.value("name", "");
        NodeKey key{name, segment::InferredServiceType(ns, name)};
        Node& target = Get(key);
        Count(target.stats, target.series, sub);
        Bound(target.start, target.end, sub);
        auto& edge = Get(caller).edges[target.ref];
        Count(edge.stats, edge.series, sub);
        Bound(edge.start, edge.end, sub);
      }
      Inferred(sub, caller, parents_with_segments, depth + 1);
    }
  }

  int period_ = 0;
  double series_start_ = 0, series_end_ = 0;
  std::map<NodeKey, Node> nodes_;
};

std::vector<std::vector<json>> GroupByTrace(const std::vector<std::string>& docs) {
  std::map<std::string, std::vector<json>> by_trace;
  for (const auto& text : docs) {
    json d = json::parse(text, nullptr, false);
    if (d.is_discarded() || !d.is_object()) continue;
    by_trace[d.value("trace_id", "")].push_back(std::move(d));
  }
  std::vector<std::vector<json>> out;
  for (auto& [id, v] : by_trace) out.push_back(std::move(v));
  return out;
}

}  // namespace

json BuildServiceGraph(const std::vector<std::string>& docs, double start_time, double end_time) {
  GraphBuilder g;
  for (auto& trace : GroupByTrace(docs)) g.AddTrace(trace);
  return {{"Services", g.Services()}, {"StartTime", start_time}, {"EndTime", end_time}, {"ContainsOldGroupVersions", false}};
}

json BuildTimeSeriesStatistics(const std::vector<std::string>& docs, double start_time, double end_time,
                               int period_seconds, const EntitySelector& selector) {
  if (period_seconds <= 0) period_seconds = 60;
  GraphBuilder g(period_seconds, start_time, end_time);
  for (auto& trace : GroupByTrace(docs)) g.AddTrace(trace);
  const auto [series, edge] = g.Select(selector);
  json out = json::array();
  for (const auto& [ts, s] : series) {
    out.push_back({{"Timestamp", ts},
                   {edge ? "EdgeSummaryStatistics" : "ServiceSummaryStatistics", s.Summary()},
                   {"ResponseTimeHistogram", s.Histogram()}});
  }
  return {{"TimeSeriesServiceStatistics", out}, {"ContainsOldGroupVersions", false}};
}

}  // namespace xrayd::api
