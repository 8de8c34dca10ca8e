#include "api/json_input.h"

namespace xrayd::api {

std::optional<std::string> CheckJsonLimits(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes)
    return "request body is " + std::to_string(text.size()) + " bytes, over the limit of " +
           std::to_string(limits.max_bytes);
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
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
