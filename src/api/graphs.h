// The graph operations of the X-Ray API: GetServiceGraph and GetTimeSeriesServiceStatistics over a
// time window (optionally within a group's filter), GetTraceGraph over given traces.
//
// Window answers are built from the documents of at most kGraphTraceLimit traces (the newest).
// When a window holds more, the answer covers part of it: that is logged (at most once a minute),
// counted in xrayd_api_graph_truncated_total, and documented in the README, until the store keeps
// rollups that make these answers exact.
//
// Handlers (api_context.h): plain functions; they return values, not throw.
#pragma once

#include <cstddef>

#include "api/api_context.h"

namespace xrayd::api {

inline constexpr size_t kGraphTraceLimit = 20000;

ApiResult<nlohmann::json> GetServiceGraph(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetTimeSeriesServiceStatistics(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetTraceGraph(ApiContext& ctx, const nlohmann::json& in);

}  // namespace xrayd::api
