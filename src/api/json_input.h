// Request bodies of the X-Ray API, checked before any recursive work.
//
// nlohmann's parser (and the destructor of what it builds) recurse once per nesting level, so a
// value nested 100,000 deep overflows the stack. CheckJsonLimits() scans the text once, without
// recursion, and refuses a body over `max_bytes` or nested deeper than `max_depth` before the
// parser sees it. The deepest X-Ray request shape is 4 levels (CreateSamplingRule → SamplingRule →
// Attributes / SamplingRateBoost, Tags → Tag), so the default depth leaves room without risk.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_error.h"

namespace xrayd::api {

struct JsonLimits {
  size_t max_bytes = 8 * 1024 * 1024;
  int max_depth = 16;
};

// The problem with `text` ("request body nested deeper than 16 levels"), or nullopt. Linear time,
// constant stack. Brackets inside strings (escapes included) do not count.
std::optional<std::string> CheckJsonLimits(std::string_view text, const JsonLimits& limits);

// The body as a JSON object: empty (or whitespace) is {}; otherwise it must be within `limits` and
// parse to an object. Errors are InvalidRequestException naming the problem.
ApiResult<nlohmann::json> ParseRequestBody(std::string_view body, const JsonLimits& limits);

}  // namespace xrayd::api
