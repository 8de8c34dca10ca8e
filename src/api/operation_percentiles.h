// xrayd extension to the X-Ray API, for the web UI and any API client: where each (sub)segment of a trace stands in
// the latency distribution of the same operation over the surrounding window.
//
//   POST /xrayd/OperationPercentiles   {"TraceId": "1-…", "WindowSeconds": 3600}
//   → {"TraceId", "StartTime", "EndTime", "DocumentsScanned", "Truncated",
//      "Operations": [{"Id", "Service", "Name", "Duration", "Percentile", "Samples"}, …]}
//
// An operation is (service, name): the segment's name and the (sub)segment's own name, so
// "orders › query-db" in one trace is compared with "orders › query-db" in every trace of the window
// [trace start − W/2, trace start + W/2] (W: WindowSeconds, default 3600, 60…86400). Percentile is
// the share of the window's samples (this trace included) whose duration is ≤ this one's, 0-100.
// In-progress nodes (no end_time) are left out. At most kMaxTraces traces are scanned ("Truncated").
//
// Routed by XrayApi like the X-Ray operations (xray_api.cc), so --api-keys signatures apply to it too. Stateless; thread-safe as TraceStore is.
#pragma once

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "store/trace_store.h"

namespace xrayd::api {

inline constexpr size_t kMaxPercentileTraces = 20000;

// Errors: kInvalidArgument for a bad request, or the store's error.
Result<nlohmann::json> OperationPercentiles(store::TraceStore& store, const nlohmann::json& request);

}  // namespace xrayd::api
