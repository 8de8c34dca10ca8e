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

// The documents read for a window; `partial` when the window held more traces than were read.
struct WindowRead {
  std::vector<std::string> docs;
  bool partial = false;
};

// The documents of the window's traces within the group the request names, if any. With a group
// filter the store reads only the traces its indexes say may match (store/trace_query.h) when they
// are few, so the bound counts those, not every trace of the window.
ApiResult<WindowRead> WindowDocuments(ApiContext& ctx, const json& in, const Window& w) {
  auto group = ctx.groups.FilterOf(in);
  if (!group) return group.error();
  bool truncated = false;
  const auto condition = group->NecessaryCondition();
  auto docs = condition ? ctx.store.CandidateDocumentsInRange(w.start, w.end, ctx.limits.graph_traces, *condition,
                                                              &truncated)
                        : ctx.store.DocumentsInRange(w.start, w.end, ctx.limits.graph_traces, &truncated);
  if (!docs) return ApiError::Internal("reading a window's documents", docs.error());
  if (truncated) CountTruncated(ctx, w);
  auto kept = KeepMatching(ctx.store, segment::JoinLoadBalancer(std::move(*docs)), *group);
  if (!kept) return kept.error();
  return WindowRead{std::move(*kept), truncated};
}

// A partial answer says so in itself too (a member X-Ray's model does not have, which SDKs ignore):
// how many traces it was built from, and why.
json& MarkPartial(const ApiContext& ctx, bool partial, json& answer) {
  if (!partial) return answer;
  answer["PartialAnswer"] = {
      {"TracesRead", ctx.limits.graph_traces},
      {"Reason", "the window holds more than " + std::to_string(ctx.limits.graph_traces) +
                     " traces the per-minute rollups cannot answer for (a group's filter expression or a Period "
                     "not in whole minutes): built from the newest " + std::to_string(ctx.limits.graph_traces)}};
  return answer;
}

// The rollups of the minutes the window touches: [minute of start, minute of end].
ApiResult<segment::Rollup> WindowRollups(ApiContext& ctx, const Window& w) {
  auto rollup = ctx.store.GraphRollups(segment::MinuteOf(w.start), segment::MinuteOf(w.end));
  if (!rollup) return ApiError::Internal("reading graph rollups", rollup.error());
  return std::move(*rollup);
}

// Whether the request names a group with a filter expression: rollups cannot answer those.
ApiResult<bool> Filtered(ApiContext& ctx, const json& in) {
  auto group = ctx.groups.FilterOf(in);
  if (!group) return group.error();
  return !group->IsEmpty();
}

}  // namespace

// Without a group filter, exact from the store's per-minute rollups: every call that started in a
// minute the window touches (StartTime/EndTime in the answer are those whole minutes). With one,
// from the window's documents (at most limits.graph_traces traces; a partial answer is counted and
// logged).
ApiResult<json> GetServiceGraph(ApiContext& ctx, const json& in) {
  auto w = WindowOf(in);
  if (!w) return w.error();
  auto filtered = Filtered(ctx, in);
  if (!filtered) return filtered.error();
  if (!*filtered) {
    auto rollup = WindowRollups(ctx, *w);
    if (!rollup) return rollup.error();
    return ServiceGraphFromRollup(*rollup, static_cast<double>(segment::MinuteOf(w->start)),
                                  static_cast<double>(segment::MinuteOf(w->end) + 60));
  }
  auto read = WindowDocuments(ctx, in, *w);
  if (!read) return read.error();
  json graph = BuildServiceGraph(read->docs, w->start, w->end);
  return MarkPartial(ctx, read->partial, graph);
}

// From rollups when the period is whole minutes and no group filter applies; else from documents.
ApiResult<json> GetTimeSeriesServiceStatistics(ApiContext& ctx, const json& in) {
  auto w = WindowOf(in);
  if (!w) return w.error();
  auto selector = ParseEntitySelector(in.value("EntitySelectorExpression", ""));
  if (!selector) return ApiError::Invalid("EntitySelectorExpression: " + selector.error().message);
  int period = in.value("Period", 60);
  if (period <= 0) period = 60;
  auto filtered = Filtered(ctx, in);
  if (!filtered) return filtered.error();
  if (!*filtered && period % 60 == 0) {
    auto rollup = WindowRollups(ctx, *w);
    if (!rollup) return rollup.error();
    return TimeSeriesFromRollup(*rollup, period, *selector);
  }
  auto read = WindowDocuments(ctx, in, *w);
  if (!read) return read.error();
  json series = BuildTimeSeriesStatistics(read->docs, w->start, w->end, period, *selector);
  return MarkPartial(ctx, read->partial, series);
}

ApiResult<json> GetTraceGraph(ApiContext& ctx, const json& in) {
  std::vector<std::string> ids, docs;
  for (const auto& id : in["TraceIds"]) ids.push_back(id.get<std::string>());
  auto stored = ctx.store.SegmentsOfTraces(ids);  // one snapshot for all
  if (!stored) return ApiError::Internal("reading the traces' segments", stored.error());
  for (auto& trace : *stored)
    for (auto& s : trace) docs.push_back(std::move(s.doc));
  json graph = BuildServiceGraph(segment::JoinLoadBalancer(std::move(docs)), 0, 0);
  return json{{"Services", std::move(graph["Services"])}};
}

}  // namespace xrayd::api
