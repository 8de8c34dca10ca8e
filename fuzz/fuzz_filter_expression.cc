// Fuzzes the filter expression parser and evaluator (user input from the API), and the index
// condition the store narrows a listing by (Filter::NecessaryCondition).
//
// Checked on every parsed input, not only "does not crash": the condition is necessary — every
// trace Matches() accepts satisfies it (by IndexCondition's documented meaning, evaluated here on
// the same rows) — since a condition that is not would make the store silently skip matching
// traces. The rows carry the names the dictionary (fuzz/dict/filter.dict) offers: services "svc"
// and "remote" with their own flags, annotations k and n, a URL.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <variant>

#include "api/filter_expression.h"

namespace {

using xrayd::store::IndexCondition;
using xrayd::store::TraceSummaryRow;

bool FlagSet(IndexCondition::Flag f, bool error, bool fault, bool throttle) {
  switch (f) {
    case IndexCondition::Flag::kNone: return true;
    case IndexCondition::Flag::kError: return error;
    case IndexCondition::Flag::kFault: return fault;
    case IndexCondition::Flag::kThrottle: return throttle;
  }
  return false;
}

bool AnnotationEquals(const std::string& value_json, const IndexCondition::Value& want) {
  const auto v = nlohmann::json::parse(value_json, nullptr, false);
  if (const auto* s = std::get_if<std::string>(&want)) return v.is_string() && v.get<std::string>() == *s;
  if (const auto* b = std::get_if<bool>(&want)) return v.is_boolean() && v.get<bool>() == *b;
  const double d = std::get<double>(want);
  if (!v.is_number()) return false;
  const double x = v.get<double>();
  return x == d || std::fabs(x - d) <= 1e-9 * std::max(std::fabs(x), std::fabs(d));
}

// IndexCondition's meaning (store/trace_query.h) on one row.
bool Holds(const IndexCondition& c, const TraceSummaryRow& t) {
  switch (c.kind) {
    case IndexCondition::Kind::kAnnotation:
      for (const auto& a : t.annotations)
        if (a.key == c.key && AnnotationEquals(a.value_json, c.value)) return true;
      return false;
    case IndexCondition::Kind::kService:
      for (size_t i = 0; i < t.services.size(); ++i) {
        if (t.services[i].first != c.text || !xrayd::api::ServiceTypeMatches(c.type, t.services[i].second)) continue;
        const auto& f = t.service_flags[i];
        if (FlagSet(c.flag, f.error, f.fault, f.throttle)) return true;
      }
      return false;
    case IndexCondition::Kind::kUrlEquals: return t.http_url == c.text;
    case IndexCondition::Kind::kUrlContains: return t.http_url.find(c.text) != std::string::npos;
    case IndexCondition::Kind::kFlag: return FlagSet(c.flag, t.has_error, t.has_fault, t.has_throttle);
    case IndexCondition::Kind::kAnd:
      for (const auto& p : c.all)
        if (!Holds(p, t)) return false;
      return true;
    case IndexCondition::Kind::kOr:
      for (const auto& p : c.all)
        if (Holds(p, t)) return true;
      return false;
  }
  return false;
}

std::vector<TraceSummaryRow> Rows() {
  TraceSummaryRow a;
  a.annotations = {{"k", "svc", "\"v\""}, {"n", "", "1.5"}};
  a.services = {{"svc", "remote"}};
  a.service_flags = {{}};
  TraceSummaryRow b;
  b.start_time = 10;
  b.end_time = 12.5;
  b.root_start = 10;
  b.root_end = 11;
  b.http_url = "http://svc/path";
  b.http_method = "GET";
  b.http_status = 500;
  b.user = "u";
  b.has_error = true;
  b.has_throttle = true;
  b.annotations = {{"k", "remote", "true"}, {"n", "svc", "2"}, {"k", "svc", "\"w\""}};
  b.services = {{"svc", ""}, {"remote", "AWS::EC2::Instance"}, {"v", "service"}};
  b.service_flags = {{false, true, false}, {true, false, false}, {false, false, true}};
  return {a, b};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<TraceSummaryRow> rows = Rows();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto f = xrayd::api::Filter::Parse(text);
  if (!f) return 0;
  const auto condition = f->NecessaryCondition();
  for (const auto& t : rows) {
    if (f->Matches(t) && condition && !Holds(*condition, t)) {
      std::fprintf(stderr, "NecessaryCondition() excludes a trace the filter matches: %.*s\n",
                   static_cast<int>(size), text.data());
      std::abort();
    }
  }
  (void)xrayd::api::ParseEntitySelector(text);
  return 0;
}
