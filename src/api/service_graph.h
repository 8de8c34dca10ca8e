// Builds X-Ray service graphs from segment documents: what GetServiceGraph, GetTraceGraph and
// GetTimeSeriesServiceStatistics answer.
//
// A node per service (a segment's name and origin) and per inferred downstream (a subsegment in
// the "remote" or "aws" namespace whose call produced no segment of its own). An edge from the
// calling service to the called one, found through parent_id links between segments, or to the
// inferred node. Each node and edge carries summary statistics (ok / error / throttle / fault
// counts, total response time) and response-time histograms, in the shapes of AWS's model.
// Pure functions over values; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/filter_expression.h"
#include "segment/graph.h"

namespace xrayd::api {

// `docs`: documents of whole traces (segments and streamed subsegments).
nlohmann::json BuildServiceGraph(const std::vector<std::string>& docs, double start_time, double end_time);

// Per-period statistics of what the entity selector names: ServiceSummaryStatistics of the
// services a service()/id() selector names, EdgeSummaryStatistics of the edges between the
// services an edge() selector names, and with an empty selector EdgeSummaryStatistics of the
// requests entering the graph (root segments: one per trace). Calls are counted in the period
// they started in, if they started within [start_time, end_time].
nlohmann::json BuildTimeSeriesStatistics(const std::vector<std::string>& docs, double start_time, double end_time,
                                         int period_seconds, const EntitySelector& selector);

// The same answers from the store's per-minute rollups (segment::Rollup, whole minutes): a call
// counts when the minute it started in is within the rollup given. `period_seconds` must be a
// multiple of 60; periods start at multiples of the period (as from documents).
nlohmann::json ServiceGraphFromRollup(const segment::Rollup& rollup, double start_time, double end_time);
nlohmann::json TimeSeriesFromRollup(const segment::Rollup& rollup, int period_seconds, const EntitySelector& selector);

}  // namespace xrayd::api
