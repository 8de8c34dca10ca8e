// The graph operations of the X-Ray API: GetServiceGraph and GetTimeSeriesServiceStatistics over a
// time window (optionally within a group's filter), GetTraceGraph over given traces.
//
// Window answers are built from the documents of at most ApiLimits::graph_traces traces (the
// newest; 20,000 by default). When a window holds more, the answer covers part of it: that is
// logged (at most once a minute) and counted in xrayd_api_graph_truncated_total, and the README
// says so, until the store keeps rollups that make these answers exact.
//
// Handlers (api_context.h): plain functions; they return values, not throw.
#pragma once

#include "api/api_context.h"

namespace xrayd::api {

ApiResult<nlohmann::json> GetServiceGraph(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetTimeSeriesServiceStatistics(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetTraceGraph(ApiContext& ctx, const nlohmann::json& in);

}  // namespace xrayd::api
