// Checks X-Ray request bodies against the limits of AWS's service model, driven by tables.
//
// A Shape lists the members of a JSON object as Fields: type, required, min/max (length in
// characters for strings, entries for lists and maps, value for numbers), enum values, and the
// shape of nested structures, list entries and map keys/values. The tables for every operation
// (request_shapes.cc) are transcribed from botocore's X-Ray model (xray/2016-04-12/service-2.json);
// where the model sets no bound xrayd sets its own, stated there. One walker (Validate) checks any
// body against its shape, so each limit is a line of data, not an `if`.
//
// Members the model does not know are ignored (newer SDKs may send them); JSON null counts as the
// wrong type. Integers are 32-bit, as in the model. Validation is non-recursive in the input's
// depth beyond the shape's own (at most 4 levels).
#pragma once

#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string_view>

#include "api/api_error.h"

namespace xrayd::api {

enum class FieldType { kString, kInteger, kDouble, kBoolean, kTimestamp, kStructure, kList, kMap };

struct Shape;

struct Field {
  static constexpr double kNoMin = -std::numeric_limits<double>::infinity();
  static constexpr double kNoMax = std::numeric_limits<double>::infinity();

  std::string_view name;  // member name; for list entries and map keys/values, unused
  FieldType type = FieldType::kString;
  bool required = false;
  double min = kNoMin;
  double max = kNoMax;
  std::span<const std::string_view> enum_values = {};
  const Shape* shape = nullptr;    // kStructure
  const Field* element = nullptr;  // kList: each entry; kMap: each value
  const Field* key = nullptr;      // kMap: each key (a string)
};

struct Shape {
  std::span<const Field> fields;
};

// Ok, or InvalidRequestException naming the field ("SamplingRule.Priority must be between 1 and
// 9999", "TraceIds[2] is longer than 35 characters").
ApiStatus Validate(const nlohmann::json& input, const Shape& shape);

// A timestamp as the SDKs send them: epoch seconds (number or numeric string) or ISO 8601
// ("2024-01-02T03:04:05Z", fractions allowed); nullopt if it is neither or outside years 1970-9999.
std::optional<double> ParseTimestamp(const nlohmann::json& value);

// Characters in UTF-8 text (what the model's string lengths count).
size_t Utf8Length(std::string_view text);

}  // namespace xrayd::api
