// The PutTraceSegments wire format (REST-JSON, POST /TraceSegments), both halves:
// building the request body and reading the answer, including error classification.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "http/http_client.h"

namespace xrayd::xray {

// {"TraceSegmentDocuments":["<doc>",...]}: each document embedded as a JSON string.
std::string BuildPutTraceSegmentsBody(const std::vector<std::string>& segments);
// The same into `body` (replacing what it held, keeping its capacity: senders reuse one buffer).
void BuildPutTraceSegmentsBody(const std::vector<std::string>& segments, std::string& body);

struct UnprocessedSegment {
  std::string id;
  std::string error_code;
  std::string message;
};

// Reads a 2xx answer's UnprocessedTraceSegments (absent or empty: all accepted).
Result<std::vector<UnprocessedSegment>> ParsePutTraceSegmentsResponse(std::string_view body);

// Classifies a non-2xx answer by status and AWS error code (x-amzn-ErrorType header or the
// body's __type/code): throttling → Throttled (Retry-After honoured), 5xx/408/expired
// credentials → Retryable, other 4xx → Permanent.
Error ClassifyErrorResponse(const http::Response& response);

// The AWS error code of an error answer ("ThrottledException"), or "" if none.
std::string ErrorCode(const http::Response& response);

}  // namespace xrayd::xray
