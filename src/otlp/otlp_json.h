// OTLP/JSON (the OTLP/HTTP JSON encoding) for the trace messages, written from the OTLP
// specification: protobuf's JSON mapping with lowerCamelCase field names, trace and span ids as hex
// (not base64), enums as integers, 64-bit integers as decimal strings. Decoding also takes the
// original snake_case field names and numbers for 64-bit fields, and skips unknown fields, as the
// specification asks of receivers. Protobuf's lite runtime has no JSON support, hence this file.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "otlp/otlp_trace.pb.h"

namespace xrayd::otlp {

std::string EncodeJson(const pb::ExportTraceServiceRequest& request);
std::string EncodeJson(const pb::ExportTraceServiceResponse& response);

// A clear InvalidArgument error on anything that is not an OTLP/JSON export request: bad JSON,
// a field of the wrong type, an id that is not hex of the right length, values nested too deep.
Result<pb::ExportTraceServiceRequest> DecodeJsonRequest(std::string_view body);
Result<pb::ExportTraceServiceResponse> DecodeJsonResponse(std::string_view body);

}  // namespace xrayd::otlp
