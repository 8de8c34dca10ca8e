// What every X-Ray API handler gets: the state it may read and change, and its signature.
//
// A handler is a plain function from the request (already parsed and checked against its shape in
// request_shapes.h) to an answer or an ApiError (api_error.h); it does not throw. The route table
// in xray_api.cc names one per operation.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "common/log.h"
#include "pipeline/segment_sink.h"
#include "store/trace_store.h"

namespace xrayd::api {

class SamplingRules;
class Groups;

// Per-call bounds of the handlers' work.
struct ApiLimits {
  // GetServiceGraph / GetTimeSeriesServiceStatistics read the documents of at most this many traces
  // (the newest of the window); see graphs.h.
  size_t graph_traces = 20000;
  // Counts the graph answers built from part of their window (the daemon passes its metric,
  // xrayd_api_graph_truncated_total); may be null.
  std::atomic<uint64_t>* graph_truncated = nullptr;
};

struct ApiContext {
  store::TraceStore& store;
  SamplingRules& sampling;
  Groups& groups;
  const ApiLimits& limits;
  log::RateLimiter& truncation_log;  // graphs built from part of a window: one log line a minute
  // Where PutTraceSegments hands accepted documents (`xrayd serve`: the pipeline's fan-out, which
  // stores them and forwards them with --forward). Null: appended to `store` directly (unit tests).
  pipeline::SegmentSink* sink = nullptr;
};

using Handler = ApiResult<nlohmann::json> (*)(ApiContext& ctx, const nlohmann::json& input);

// Epoch seconds now (the API's clock).
double NowSeconds();

}  // namespace xrayd::api
