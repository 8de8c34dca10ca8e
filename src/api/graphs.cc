#include "api/graphs.h"

#include <map>

#include "api/filter_expression.h"
#include "api/groups.h"
#include "api/request_schema.h"
#include "api/service_graph.h"
#include "common/log.h"
#include "segment/lb_join.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

struct Window {
  double start = 0, end = 0;
};

ApiResult<Window> WindowOf(const json& in) {
  Window w{*ParseTimestamp(in["StartTime"]), *ParseTimestamp(in["EndTime"])};
  if (w.end < w.start) return ApiError::Invalid("EndTime is before StartTime");
  return w;
}

// Keeps the documents of the traces `filter` (a group's filter expression) matches.
ApiResult<std::vector<std::string>> KeepMatching(store::TraceStore& store, std::vector<std::string> docs,
                                                 const Filter& filter) {
  if (filter.IsEmpty()) return docs;
  std::map<std::string, bool> matches;  // by trace id
  std::vector<std::string> kept;
  for (auto& d : docs) {
    json j = json::parse(d, nullptr, false);
    if (!j.is_object() || !j.contains("trace_id") || !j["trace_id"].is_string()) continue;
    auto [it, inserted] = matches.try_emplace(j["trace_id"].get<std::string>(), false);
    if (inserted) {
      auto row = store.Summary(it->first);
      if (!row) return ApiError::Internal("reading a trace summary", row.error());
      it->second = *row && filter.Matches(**row);
    }
    if (it->second) kept.push_back(std::move(d));
  }
  return kept;
}

// The answer will cover only the newest `graph_traces` traces of the window: say so.
void CountTruncated(ApiContext& ctx, const Window& w) {
  if (ctx.limits.graph_truncated != nullptr) ctx.limits.graph_truncated->fetch_add(1, std::memory_order_relaxed);
  if (!ctx.truncation_log.Allow()) return;
  XLOG_WARN("X-Ray API: the graph for [{:.0f}, {:.0f}] covers only the newest {} traces of the window (more are "
            "stored); {} more such answers since the last message",
            w.start, w.end, ctx.limits.graph_traces, ctx.truncation_log.TakeSuppressed());
}

// The documents of the window's traces within the group the request names, if any.
ApiResult<std::vector<std::string>> WindowDocuments(ApiContext& ctx, const json& in, const Window& w) {
  auto group = ctx.groups.FilterOf(in);
  if (!group) return group.error();
  bool truncated = false;
  auto docs = ctx.store.DocumentsInRange(w.start, w.end, ctx.limits.graph_traces, &truncated);
  if (!docs) return ApiError::Internal("reading a window's documents", docs.error());
  if (truncated) CountTruncated(ctx, w);
  return KeepMatching(ctx.store, segment::JoinLoadBalancer(std::move(*docs)), *group);
}

}  // namespace

ApiResult<json> GetServiceGraph(ApiContext& ctx, const json& in) {
  auto w = WindowOf(in);
  if (!w) return w.error();
  auto docs = WindowDocuments(ctx, in, *w);
  if (!docs) return docs.error();
  return BuildServiceGraph(*docs, w->start, w->end);
}

ApiResult<json> GetTimeSeriesServiceStatistics(ApiContext& ctx, const json& in) {
  auto w = WindowOf(in);
  if (!w) return w.error();
  auto selector = ParseEntitySelector(in.value("EntitySelectorExpression", ""));
  if (!selector) return ApiError::Invalid("EntitySelectorExpression: " + selector.error().message);
  auto docs = WindowDocuments(ctx, in, *w);
  if (!docs) return docs.error();
  return BuildTimeSeriesStatistics(*docs, w->start, w->end, in.value("Period", 60), *selector);
}

ApiResult<json> GetTraceGraph(ApiContext& ctx, const json& in) {
  std::vector<std::string> docs;
  for (const auto& id : in["TraceIds"]) {
    auto segs = ctx.store.SegmentsOf(id.get<std::string>());
    if (!segs) return ApiError::Internal("reading a trace's segments", segs.error());
    for (auto& s : *segs) docs.push_back(std::move(s.doc));
  }
  json graph = BuildServiceGraph(segment::JoinLoadBalancer(std::move(docs)), 0, 0);
  return json{{"Services", std::move(graph["Services"])}};
}

}  // namespace xrayd::api
