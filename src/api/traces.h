// The trace operations of the X-Ray API: PutTraceSegments (validated like UDP segments, stored
// before the answer), GetTraceSummaries (a filtered, paginated listing), BatchGetTraces (whole
// traces, streamed subsegments merged into their parents).
//
// Handlers (api_context.h): plain functions, no state of their own; they return values, not throw.
#pragma once

#include <string>

#include "api/api_context.h"

namespace xrayd::api {

ApiResult<nlohmann::json> PutTraceSegments(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetTraceSummaries(ApiContext& ctx, const nlohmann::json& in);
// Answers with the response body itself (JSON text): see RawHandler in xray_api.cc.
ApiResult<std::string> BatchGetTraces(ApiContext& ctx, const nlohmann::json& in);

}  // namespace xrayd::api
