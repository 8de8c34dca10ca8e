// The trace operations of the X-Ray API: PutTraceSegments (validated like UDP segments, stored
// before the answer), GetTraceSummaries (a filtered, paginated listing), BatchGetTraces (whole
// traces, streamed subsegments merged into their parents).
//
// Handlers (api_context.h): plain functions, no state of their own; they return values, not throw.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_context.h"

namespace xrayd::api {

ApiResult<nlohmann::json> PutTraceSegments(ApiContext& ctx, const nlohmann::json& in);
// The documents of a PutTraceSegments body of the one shape SDKs and daemons send,
// {"TraceSegmentDocuments": ["...", ...]} and nothing else, read without building a JSON tree
// (nlohmann's parser was ~15 % of the path's CPU at 50 documents a request). nullopt for any other
// body — invalid, another member, a repeated key, over `max_bytes` — which then takes the general
// path and gets its exact error; so both paths accept the same bodies with the same documents.
std::optional<std::vector<std::string>> PlainPutDocuments(std::string_view body, size_t max_bytes);
// PutTraceSegments on documents already taken out of the request.
ApiResult<nlohmann::json> PutDocuments(ApiContext& ctx, std::vector<std::string> docs);
ApiResult<nlohmann::json> GetTraceSummaries(ApiContext& ctx, const nlohmann::json& in);
// Answers with the response body itself (JSON text): see RawHandler in xray_api.cc.
ApiResult<std::string> BatchGetTraces(ApiContext& ctx, const nlohmann::json& in);

}  // namespace xrayd::api
