#include "api/json_input.h"

#include <cstring>

namespace xrayd::api {

namespace {

// Index of the quote that closes the string opened at `open`, or text.size() if none. A quote
// closes it unless an odd run of backslashes precedes it; runs between quotes are disjoint, so the
// whole scan stays linear, and memchr makes string bodies (most of a PutTraceSegments request) fast.
size_t StringEnd(std::string_view text, size_t open) {
  for (size_t i = open + 1; i < text.size(); ++i) {
    const void* q = std::memchr(text.data() + i, '"', text.size() - i);
    if (q == nullptr) return text.size();
    i = static_cast<size_t>(static_cast<const char*>(q) - text.data());
    size_t backslashes = 0;
    while (text[i - 1 - backslashes] == '\\') ++backslashes;  // stops at the opening quote at worst
    if (backslashes % 2 == 0) return i;
  }
  return text.size();
}

}  // namespace

std::optional<std::string> CheckJsonLimits(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes)
    return "request body is " + std::to_string(text.size()) + " bytes, over the limit of " +
           std::to_string(limits.max_bytes);
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      i = StringEnd(text, i);  // brackets inside strings do not count
    } else if (c == '[' || c == '{') {
      if (++depth > limits.max_depth)
        return "request body nested deeper than " + std::to_string(limits.max_depth) + " levels";
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;  // unbalanced closers are the parser's to refuse
    }
  }
  return std::nullopt;
}

ApiResult<nlohmann::json> ParseRequestBody(std::string_view body, const JsonLimits& limits) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return nlohmann::json::object();
  if (auto problem = CheckJsonLimits(body, limits)) return ApiError::Invalid(*problem);
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ApiError::Invalid("request body is not valid JSON");
  if (!j.is_object()) return ApiError::Invalid("request body is not a JSON object");
  return j;
}

}  // namespace xrayd::api
