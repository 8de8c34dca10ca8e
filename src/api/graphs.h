// The graph operations of the X-Ray API: GetServiceGraph and GetTimeSeriesServiceStatistics over a
// time window (optionally within a group's filter), GetTraceGraph over given traces.
//
// Without a group filter (and, for statistics, with a Period in whole minutes) the answers come
// from the store's per-minute rollups, exact for any window. Otherwise they are built from the
// documents of at most ApiLimits::graph_traces traces (the newest; 20,000 by default; with a group
// filter the traces its index condition names, when few, else all the window's). When a window
// holds more, the answer covers part of it, and says so three ways: a member "PartialAnswer"
// {TracesRead, Reason} in the answer, a log line (at most once a minute) and
// xrayd_api_graph_truncated_total.
//
// Handlers (api_context.h): plain functions; they return values, not throw.
#pragma once

#include "api/api_context.h"

namespace xrayd::api {

ApiResult<nlohmann::json> GetServiceGraph(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetTimeSeriesServiceStatistics(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetTraceGraph(ApiContext& ctx, const nlohmann::json& in);

}  // namespace xrayd::api
