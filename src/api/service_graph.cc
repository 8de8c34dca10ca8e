#include "api/service_graph.h"

#include <cmath>
#include <map>

#include "segment/graph.h"
#include "segment/segment.h"

namespace xrayd::api {
namespace {

using nlohmann::json;
using segment::Call;
using segment::NodeKey;
using segment::Stats;

// Statistics per period for time series: period start (epoch seconds) → stats.
using Series = std::map<int64_t, Stats>;

struct Edge {
  Stats stats;
  Series series;
};

struct Node {
  int ref = 0;
  Stats stats;
  Series series;
  Series root_series;  // requests entering the graph at this service
  std::map<int, Edge> edges;  // by target ref
};

// Aggregates segment::Calls into nodes and edges (and, with a period, their time series).
class GraphBuilder {
 public:
  GraphBuilder() = default;
  // Also keeps statistics per `period` seconds, of calls starting within [start, end].
  GraphBuilder(int period, double start, double end) : period_(period), series_start_(start), series_end_(end) {}

  void Add(const Call& c) {
    switch (c.kind) {
      case Call::Kind::kNode: {
        Node& n = Get(c.to);
        Count(n.stats, n.series, c);
        return;
      }
      case Call::Kind::kEdge: {
        const int target = Get(c.to).ref;
        Edge& e = Get(c.from).edges[target];
        Count(e.stats, e.series, c);
        return;
      }
      case Call::Kind::kEntry: {
        Stats unused;
        Count(unused, Get(c.to).root_series, c);
        return;
      }
    }
  }

  // One period's (or a whole window's) statistics, from a rollup row.
  void AddStats(Call::Kind kind, const NodeKey& from, const NodeKey& to, int64_t minute, const Stats& s) {
    const int64_t at = period_ > 0 ? static_cast<int64_t>(std::floor(static_cast<double>(minute) / period_)) * period_ : 0;
    if (kind == Call::Kind::kNode) {
      Node& n = Get(to);
      n.stats.Merge(s);
      if (period_ > 0) n.series[at].Merge(s);
    } else if (kind == Call::Kind::kEdge) {
      const int target = Get(to).ref;
      Edge& e = Get(from).edges[target];
      e.stats.Merge(s);
      if (period_ > 0) e.series[at].Merge(s);
    } else if (period_ > 0) {
      Get(to).root_series[at].Merge(s);
    } else {
      Get(to);
    }
  }

  json Services() const {
    json out = json::array();
    for (const auto& [key, n] : nodes_) {
      json edges = json::array();
      for (const auto& [target, e] : n.edges) {
        edges.push_back({{"ReferenceId", target},
                         {"StartTime", e.stats.start},
                         {"EndTime", e.stats.end},
                         {"SummaryStatistics", Summary(e.stats)},
                         {"ResponseTimeHistogram", Histogram(e.stats)},
                         {"Aliases", json::array()}});
      }
      json s = {{"ReferenceId", n.ref},
                {"Name", key.name},
                {"Names", json::array({key.name})},
                {"Root", n.stats.roots > 0},
                {"Type", key.type.empty() ? std::string(kPlainServiceType) : key.type},
                {"State", "active"},
                {"StartTime", n.stats.start},
                {"EndTime", n.stats.end},
                {"Edges", edges},
                {"SummaryStatistics", Summary(n.stats)},
                {"DurationHistogram", Histogram(n.stats)},
                {"ResponseTimeHistogram", Histogram(n.stats)}};
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

  static json Summary(const Stats& s) {
    return {{"OkCount", s.ok},
            {"ErrorStatistics",
             {{"ThrottleCount", s.throttle}, {"OtherCount", s.error - std::min(s.error, s.throttle)}, {"TotalCount", s.error}}},
            {"FaultStatistics", {{"OtherCount", s.fault}, {"TotalCount", s.fault}}},
            {"TotalCount", s.total},
            {"TotalResponseTime", s.total_response_time}};
  }
  static json Histogram(const Stats& s) {
    json h = json::array();
    for (const auto& [ms, c] : s.histogram) h.push_back({{"Value", static_cast<double>(ms) / 1000}, {"Count", c}});
    return h;
  }

 private:
  void Count(Stats& total, Series& series, const Call& c) {
    total.Add(c);
    if (period_ <= 0) return;
    const double t = c.StartOr0();
    if (t < series_start_ || t > series_end_) return;
    series[static_cast<int64_t>(std::floor(t / period_)) * period_].Add(c);
  }

  Node& Get(const NodeKey& key) {
    auto [it, inserted] = nodes_.try_emplace(key);
    if (inserted) it->second.ref = static_cast<int>(nodes_.size()) - 1;
    return it->second;
  }

  int period_ = 0;
  double series_start_ = 0, series_end_ = 0;
  std::map<NodeKey, Node> nodes_;
};

// Parses `docs` with the segment module and adds each trace's calls to `g`.
void AddDocuments(const std::vector<std::string>& docs, GraphBuilder& g) {
  segment::Parser parser;
  std::map<std::string, std::vector<segment::Facts>> by_trace;
  for (const auto& text : docs) {
    segment::Facts f;
    if (!parser.FactsOf(text, &f).ok()) continue;  // stored documents passed these rules already
    by_trace[f.trace_id].push_back(std::move(f));
  }
  for (const auto& [id, facts] : by_trace) {
    std::vector<const segment::Facts*> trace;
    for (const auto& f : facts) trace.push_back(&f);
    for (const Call& c : segment::TraceCalls(trace)) g.Add(c);
  }
}

json SeriesJson(const Series& series, bool edge) {
  json out = json::array();
  for (const auto& [ts, s] : series) {
    out.push_back({{"Timestamp", ts},
                   {edge ? "EdgeSummaryStatistics" : "ServiceSummaryStatistics", GraphBuilder::Summary(s)},
                   {"ResponseTimeHistogram", GraphBuilder::Histogram(s)}});
  }
  return {{"TimeSeriesServiceStatistics", out}, {"ContainsOldGroupVersions", false}};
}

}  // namespace

json BuildServiceGraph(const std::vector<std::string>& docs, double start_time, double end_time) {
  GraphBuilder g;
  AddDocuments(docs, g);
  return {{"Services", g.Services()}, {"StartTime", start_time}, {"EndTime", end_time}, {"ContainsOldGroupVersions", false}};
}

json ServiceGraphFromRollup(const segment::Rollup& rollup, double start_time, double end_time) {
  GraphBuilder g;
  for (const auto& [key, stats] : rollup) g.AddStats(key.kind, key.from, key.to, key.minute, stats);
  return {{"Services", g.Services()}, {"StartTime", start_time}, {"EndTime", end_time}, {"ContainsOldGroupVersions", false}};
}

json TimeSeriesFromRollup(const segment::Rollup& rollup, int period_seconds, const EntitySelector& selector) {
  GraphBuilder g(period_seconds, 0, 0);
  for (const auto& [key, stats] : rollup) g.AddStats(key.kind, key.from, key.to, key.minute, stats);
  const auto [series, edge] = g.Select(selector);
  return SeriesJson(series, edge);
}

json BuildTimeSeriesStatistics(const std::vector<std::string>& docs, double start_time, double end_time,
                               int period_seconds, const EntitySelector& selector) {
  if (period_seconds <= 0) period_seconds = 60;
  GraphBuilder g(period_seconds, start_time, end_time);
  AddDocuments(docs, g);
  const auto [series, edge] = g.Select(selector);
  return SeriesJson(series, edge);
}

}  // namespace xrayd::api
