#include "api/request_schema.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>

namespace xrayd::api {
namespace {

using nlohmann::json;

constexpr double kMaxEpoch = 253402300799;  // 9999-12-31T23:59:59Z

std::string Number(double v) {
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  return s;
}

const char* TypeName(FieldType t) {
  switch (t) {
    case FieldType::kString: return "a string";
    case FieldType::kInteger: return "an integer";
    case FieldType::kDouble: return "a number";
    case FieldType::kBoolean: return "a boolean";
    case FieldType::kTimestamp: return "a timestamp (epoch seconds or ISO 8601)";
    case FieldType::kStructure: return "an object";
    case FieldType::kList: return "a list";
    case FieldType::kMap: return "an object";
  }
  return "?";
}

// "must be between 1 and 32" / "at least 0" / "at most 5", with `unit` ("characters", "entries", "").
std::string Bounds(const Field& f, const char* unit) {
  const std::string u = *unit ? std::string(" ") + unit : "";
  if (f.min != Field::kNoMin && f.max != Field::kNoMax)
    return "between " + Number(f.min) + " and " + Number(f.max) + u;
  if (f.min != Field::kNoMin) return "at least " + Number(f.min) + u;
  return "at most " + Number(f.max) + u;
}

ApiStatus OutOfBounds(const std::string& path, const Field& f, double v, const char* what, const char* unit) {
  if (v >= f.min && v <= f.max) return Ok{};
  return ApiError::Invalid(path + (*what ? std::string(" ") + what : "") + " must be " + Bounds(f, unit));
}

bool IsInteger(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d);
}

ApiStatus CheckValue(const json& v, const Field& f, const std::string& path);

ApiStatus CheckString(const json& v, const Field& f, const std::string& path) {
  const auto& s = v.get_ref<const std::string&>();
  if (!f.enum_values.empty()) {
    for (auto e : f.enum_values)
      if (s == e) return Ok{};
    std::string list;
    for (auto e : f.enum_values) list += (list.empty() ? "" : ", ") + std::string(e);
    return ApiError::Invalid(path + " must be one of: " + list);
  }
  return OutOfBounds(path, f, static_cast<double>(Utf8Length(s)), "length", "characters");
}

ApiStatus CheckStructure(const json& v, const Shape& shape, const std::string& path) {
  const std::string prefix = path.empty() ? "" : path + ".";
  for (const Field& member : shape.fields) {
    auto it = v.find(std::string(member.name));
    if (it == v.end()) {
      if (member.required) return ApiError::Invalid(prefix + std::string(member.name) + " is required");
      continue;
    }
    if (auto st = CheckValue(*it, member, prefix + std::string(member.name)); !st) return st;
  }
  return Ok{};
}

ApiStatus CheckList(const json& v, const Field& f, const std::string& path) {
  if (auto st = OutOfBounds(path, f, static_cast<double>(v.size()), "count", "entries"); !st) return st;
  for (size_t i = 0; i < v.size(); ++i)
    if (auto st = CheckValue(v[i], *f.element, path + "[" + std::to_string(i) + "]"); !st) return st;
  return Ok{};
}

ApiStatus CheckMap(const json& v, const Field& f, const std::string& path) {
  if (auto st = OutOfBounds(path, f, static_cast<double>(v.size()), "count", "entries"); !st) return st;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string at = path + "." + it.key();
    if (auto st = CheckValue(json(it.key()), *f.key, path + " key " + json(it.key()).dump()); !st) return st;
    if (auto st = CheckValue(it.value(), *f.element, at); !st) return st;
  }
  return Ok{};
}

bool HasType(const json& v, FieldType t) {
  switch (t) {
    case FieldType::kString: return v.is_string();
    case FieldType::kInteger: return IsInteger(v);
    case FieldType::kDouble: return v.is_number();
    case FieldType::kBoolean: return v.is_boolean();
    case FieldType::kTimestamp: return v.is_number() || v.is_string();
    case FieldType::kStructure: return v.is_object();
    case FieldType::kList: return v.is_array();
    case FieldType::kMap: return v.is_object();
  }
  return false;
}

ApiStatus CheckValue(const json& v, const Field& f, const std::string& path) {
  if (!HasType(v, f.type)) return ApiError::Invalid(path + " must be " + TypeName(f.type));
  switch (f.type) {
    case FieldType::kString: return CheckString(v, f, path);
    case FieldType::kInteger: {
      const double d = v.get<double>();
      if (d < std::numeric_limits<int32_t>::min() || d > std::numeric_limits<int32_t>::max())
        return ApiError::Invalid(path + " must be a 32-bit integer");
      return OutOfBounds(path, f, d, "", "");
    }
    case FieldType::kDouble: return OutOfBounds(path, f, v.get<double>(), "", "");
    case FieldType::kBoolean: return Ok{};
    case FieldType::kTimestamp:
      if (!ParseTimestamp(v)) return ApiError::Invalid(path + " must be " + TypeName(f.type) + " in years 1970-9999");
      return Ok{};
    case FieldType::kStructure: return CheckStructure(v, *f.shape, path);
    case FieldType::kList: return CheckList(v, f, path);
    case FieldType::kMap: return CheckMap(v, f, path);
  }
  return Ok{};
}

std::optional<double> InRange(double t) {
  if (!std::isfinite(t) || t < 0 || t > kMaxEpoch) return std::nullopt;
  return t;
}

}  // namespace

ApiStatus Validate(const json& input, const Shape& shape) {
  if (!input.is_object()) return ApiError::Invalid("request body must be a JSON object");
  return CheckStructure(input, shape, "");
}

std::optional<double> ParseTimestamp(const json& v) {
  if (v.is_number()) return InRange(v.get<double>());
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 64) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end == s.c_str() + s.size() && s.find_first_of("xXnN") == std::string::npos) return InRange(d);
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return std::nullopt;
  double frac = 0;
  if (*rest == '.') {
    char* after = nullptr;
    frac = std::strtod(rest, &after);
    rest = after;
  }
  const std::string_view zone(rest);
  double offset = 0;  // seconds east of UTC
  if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int h = 0, m = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &h, &m) != 2 || h > 23 || m > 59) return std::nullopt;
    offset = (zone[0] == '+' ? 1 : -1) * (h * 3600.0 + m * 60.0);
  } else if (!zone.empty() && zone != "Z") {
    return std::nullopt;
  }
  return InRange(static_cast<double>(timegm(&tm)) + frac - offset);
}

size_t Utf8Length(std::string_view text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace xrayd::api
