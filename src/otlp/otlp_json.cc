#include "otlp/otlp_json.h"

#include <cerrno>
#include <cmath>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "common/json_depth.h"
#include "otlp/conventions.h"

namespace xrayd::otlp {
namespace {

using nlohmann::json;
constexpr int kMaxValueDepth = 32;  // AnyValue nesting (arrays, kvlists) accepted
// Text nesting parsed at all: room for kMaxValueDepth kvlists (4 levels each) under a span event's
// attributes (12 levels); deeper text is refused before nlohmann builds it (common/json_depth.h).
constexpr int kMaxTextDepth = 256;

// ---- encoding ----

json EncodeValue(const pb::AnyValue& v);

json EncodeAttrs(const google::protobuf::RepeatedPtrField<pb::KeyValue>& kvs) {
  json out = json::array();
  for (const auto& kv : kvs) out.push_back({{"key", kv.key()}, {"value", EncodeValue(kv.value())}});
  return out;
}

json EncodeValue(const pb::AnyValue& v) {
  switch (v.value_case()) {
    case pb::AnyValue::kStringValue: return {{"stringValue", v.string_value()}};
    case pb::AnyValue::kBoolValue: return {{"boolValue", v.bool_value()}};
    case pb::AnyValue::kIntValue: return {{"intValue", std::to_string(v.int_value())}};
    case pb::AnyValue::kDoubleValue: return {{"doubleValue", v.double_value()}};
    case pb::AnyValue::kArrayValue: {
      json values = json::array();
      for (const auto& e : v.array_value().values()) values.push_back(EncodeValue(e));
      return {{"arrayValue", {{"values", std::move(values)}}}};
    }
    case pb::AnyValue::kKvlistValue:
      return {{"kvlistValue", {{"values", EncodeAttrs(v.kvlist_value().values())}}}};
    case pb::AnyValue::kBytesValue: return {{"bytesValue", Hex(v.bytes_value())}};
    default: return json::object();
  }
}

json EncodeSpan(const pb::Span& s) {
  json o = {{"traceId", Hex(s.trace_id())}, {"spanId", Hex(s.span_id())}, {"name", s.name()},
            {"kind", static_cast<int>(s.kind())},
            {"startTimeUnixNano", std::to_string(s.start_time_unix_nano())},
            {"endTimeUnixNano", std::to_string(s.end_time_unix_nano())},
            {"attributes", EncodeAttrs(s.attributes())}};
  if (!s.parent_span_id().empty()) o["parentSpanId"] = Hex(s.parent_span_id());
  if (!s.events().empty()) {
    json events = json::array();
    for (const auto& e : s.events())
      events.push_back({{"timeUnixNano", std::to_string(e.time_unix_nano())}, {"name", e.name()},
                        {"attributes", EncodeAttrs(e.attributes())}});
    o["events"] = std::move(events);
  }
  if (s.has_status()) {
    json st = json::object();
    if (!s.status().message().empty()) st["message"] = s.status().message();
    if (s.status().code()) st["code"] = static_cast<int>(s.status().code());
    o["status"] = std::move(st);
  }
  return o;
}

// ---- decoding ----
// Each Decode* returns false with `err` set; nothing throws (nlohmann's accessors are only used after
// a type check).

struct Decoder {
  std::string err;

  bool Fail(std::string what) {
    if (err.empty()) err = std::move(what);
    return false;
  }

  // A field by its lowerCamelCase or snake_case name; null/absent -> nullptr.
  static const json* F(const json& o, const char* camel, const char* snake = nullptr) {
    auto it = o.find(camel);
    if (it == o.end() && snake) it = o.find(snake);
    return it == o.end() || it->is_null() ? nullptr : &*it;
  }

  bool String(const json* v, std::string* out, const char* what) {
    if (!v) return true;
    if (!v->is_string()) return Fail(std::string(what) + " is not a string");
    *out = v->get<std::string>();
    return true;
  }

  // int64/uint64/fixed64: a decimal string or a number.
  template <typename T>
  bool Integer(const json* v, T* out, const char* what) {
    if (!v) return true;
    if (v->is_number_unsigned()) *out = static_cast<T>(v->get<uint64_t>());
    else if (v->is_number_integer()) *out = static_cast<T>(v->get<int64_t>());
    else if (v->is_number_float() && std::isfinite(v->get<double>()) && std::fabs(v->get<double>()) < 9.2e18 &&
             (std::is_signed_v<T> || v->get<double>() >= 0))
      *out = static_cast<T>(v->get<double>());
    else if (v->is_string()) {
      const std::string& s = v->get_ref<const std::string&>();
      if (s.empty() || s.size() > 20) return Fail(std::string(what) + " is not an integer");
      size_t i = s[0] == '-' ? 1 : 0;
      if (i == s.size() || s.find_first_not_of("0123456789", i) != std::string::npos)
        return Fail(std::string(what) + " is not an integer");
      errno = 0;
      if (i) *out = static_cast<T>(std::strtoll(s.c_str(), nullptr, 10));
      else *out = static_cast<T>(std::strtoull(s.c_str(), nullptr, 10));
      if (errno == ERANGE) return Fail(std::string(what) + " is out of range");
    } else {
      return Fail(std::string(what) + " is not an integer");
    }
    return true;
  }

  bool HexId(const json* v, size_t bytes, std::string* out, const char* what) {
    if (!v) return true;
    if (!v->is_string()) return Fail(std::string(what) + " is not a hex string");
    const std::string& s = v->get_ref<const std::string&>();
    if (s.empty()) return true;
    std::optional<std::string> b = Unhex(s);
    if (!b || s.size() != bytes * 2) return Fail(std::string(what) + " is not " + std::to_string(bytes * 2) + " hex digits");
    *out = std::move(*b);
    return true;
  }

  static bool Base64(const std::string& in, std::string* out) {
    auto val = [](char c) -> int {
      if (c >= 'A' && c <= 'Z') return c - 'A';
      if (c >= 'a' && c <= 'z') return c - 'a' + 26;
      if (c >= '0' && c <= '9') return c - '0' + 52;
      if (c == '+' || c == '-') return 62;
      if (c == '/' || c == '_') return 63;
      return -1;
    };
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
      if (c == '=') break;
      int v = val(c);
      if (v < 0) return false;
      acc = acc << 6 | static_cast<uint32_t>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out->push_back(static_cast<char>(acc >> bits & 0xFF));
      }
    }
    return true;
  }

  bool Value(const json& v, pb::AnyValue* out, int depth) {
    if (depth > kMaxValueDepth) return Fail("attribute values nested too deep");
    if (!v.is_object()) return Fail("an AnyValue is not an object");
    if (const json* s = F(v, "stringValue", "string_value")) return String(s, out->mutable_string_value(), "stringValue");
    if (const json* b = F(v, "boolValue", "bool_value")) {
      if (!b->is_boolean()) return Fail("boolValue is not a boolean");
      out->set_bool_value(b->get<bool>());
      return true;
    }
    if (const json* i = F(v, "intValue", "int_value")) {
      int64_t n = 0;
      if (!Integer(i, &n, "intValue")) return false;
      out->set_int_value(n);
      return true;
    }
    if (const json* d = F(v, "doubleValue", "double_value")) {
      if (d->is_number()) out->set_double_value(d->get<double>());
      else if (d->is_string() && (*d == "NaN" || *d == "Infinity" || *d == "-Infinity"))
        out->set_double_value(*d == "NaN" ? NAN : (*d == "Infinity" ? INFINITY : -INFINITY));
      else return Fail("doubleValue is not a number");
      return true;
    }
    if (const json* a = F(v, "arrayValue", "array_value")) {
      pb::ArrayValue* arr = out->mutable_array_value();
      if (!a->is_object()) return Fail("arrayValue is not an object");
      const json* values = F(*a, "values");
      if (!values) return true;
      if (!values->is_array()) return Fail("arrayValue.values is not an array");
      for (const json& e : *values)
        if (!Value(e, arr->add_values(), depth + 1)) return false;
      return true;
    }
    if (const json* kv = F(v, "kvlistValue", "kvlist_value")) {
      pb::KeyValueList* list = out->mutable_kvlist_value();
      if (!kv->is_object()) return Fail("kvlistValue is not an object");
      return Attrs(F(*kv, "values"), list->mutable_values(), depth + 1);
    }
    if (const json* b = F(v, "bytesValue", "bytes_value")) {
      if (!b->is_string() || !Base64(b->get<std::string>(), out->mutable_bytes_value()))
        return Fail("bytesValue is not base64");
      return true;
    }
    return true;  // an empty AnyValue
  }

  bool Attrs(const json* list, google::protobuf::RepeatedPtrField<pb::KeyValue>* out, int depth = 0) {
    if (!list) return true;
    if (!list->is_array()) return Fail("attributes is not an array");
    for (const json& e : *list) {
      if (!e.is_object()) return Fail("an attribute is not an object");
      pb::KeyValue* kv = out->Add();
      if (!String(F(e, "key"), kv->mutable_key(), "key")) return false;
      if (const json* v = F(e, "value"); v && !Value(*v, kv->mutable_value(), depth + 1)) return false;
    }
    return true;
  }

  bool Event(const json& e, pb::Span::Event* out) {
    if (!e.is_object()) return Fail("an event is not an object");
    uint64_t t = 0;
    if (!Integer(F(e, "timeUnixNano", "time_unix_nano"), &t, "timeUnixNano")) return false;
    out->set_time_unix_nano(t);
    return String(F(e, "name"), out->mutable_name(), "event name") &&
           Attrs(F(e, "attributes"), out->mutable_attributes());
  }

  bool Span(const json& s, pb::Span* out) {
    if (!s.is_object()) return Fail("a span is not an object");
    if (!HexId(F(s, "traceId", "trace_id"), 16, out->mutable_trace_id(), "traceId") ||
        !HexId(F(s, "spanId", "span_id"), 8, out->mutable_span_id(), "spanId") ||
        !HexId(F(s, "parentSpanId", "parent_span_id"), 8, out->mutable_parent_span_id(), "parentSpanId") ||
        !String(F(s, "name"), out->mutable_name(), "name") ||
        !String(F(s, "traceState", "trace_state"), out->mutable_trace_state(), "traceState"))
      return false;
    int64_t kind = 0;
    uint64_t start = 0, end = 0;
    if (!Integer(F(s, "kind"), &kind, "kind") ||
        !Integer(F(s, "startTimeUnixNano", "start_time_unix_nano"), &start, "startTimeUnixNano") ||
        !Integer(F(s, "endTimeUnixNano", "end_time_unix_nano"), &end, "endTimeUnixNano"))
      return false;
    if (kind < 0 || kind > 5) return Fail("kind is not a SpanKind");
    out->set_kind(static_cast<pb::Span::SpanKind>(kind));
    out->set_start_time_unix_nano(start);
    out->set_end_time_unix_nano(end);
    if (!Attrs(F(s, "attributes"), out->mutable_attributes())) return false;
    if (const json* events = F(s, "events")) {
      if (!events->is_array()) return Fail("events is not an array");
      for (const json& e : *events)
        if (!Event(e, out->add_events())) return false;
    }
    if (const json* st = F(s, "status")) {
      if (!st->is_object()) return Fail("status is not an object");
      int64_t code = 0;
      if (!Integer(F(*st, "code"), &code, "status code") || code < 0 || code > 2) return Fail("bad status code");
      out->mutable_status()->set_code(static_cast<pb::Status::StatusCode>(code));
      if (!String(F(*st, "message"), out->mutable_status()->mutable_message(), "status message")) return false;
    }
    return true;
  }

  bool ResourceSpans(const json& r, pb::ResourceSpans* out) {
    if (!r.is_object()) return Fail("a resourceSpans entry is not an object");
    if (const json* res = F(r, "resource")) {
      if (!res->is_object()) return Fail("resource is not an object");
      if (!Attrs(F(*res, "attributes"), out->mutable_resource()->mutable_attributes())) return false;
    }
    const json* scopes = F(r, "scopeSpans", "scope_spans");
    if (!scopes) return true;
    if (!scopes->is_array()) return Fail("scopeSpans is not an array");
    for (const json& sc : *scopes) {
      if (!sc.is_object()) return Fail("a scopeSpans entry is not an object");
      pb::ScopeSpans* ss = out->add_scope_spans();
      if (const json* scope = F(sc, "scope"); scope && scope->is_object()) {
        if (!String(F(*scope, "name"), ss->mutable_scope()->mutable_name(), "scope name") ||
            !String(F(*scope, "version"), ss->mutable_scope()->mutable_version(), "scope version"))
          return false;
      }
      const json* spans = F(sc, "spans");
      if (!spans) continue;
      if (!spans->is_array()) return Fail("spans is not an array");
      for (const json& s : *spans)
        if (!Span(s, ss->add_spans())) return false;
    }
    return true;
  }
};

json ParseObject(std::string_view body) {
  if (!JsonNestedWithin(body, kMaxTextDepth)) return json();
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  return doc.is_object() ? doc : json();
}

}  // namespace

std::string EncodeJson(const pb::ExportTraceServiceRequest& request) {
  json rss = json::array();
  for (const auto& rs : request.resource_spans()) {
    json scopes = json::array();
    for (const auto& ss : rs.scope_spans()) {
      json spans = json::array();
      for (const auto& s : ss.spans()) spans.push_back(EncodeSpan(s));
      scopes.push_back({{"scope", {{"name", ss.scope().name()}, {"version", ss.scope().version()}}},
                        {"spans", std::move(spans)}});
    }
    rss.push_back({{"resource", {{"attributes", EncodeAttrs(rs.resource().attributes())}}},
                   {"scopeSpans", std::move(scopes)}});
  }
  return json{{"resourceSpans", std::move(rss)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string EncodeJson(const pb::ExportTraceServiceResponse& response) {
  json o = json::object();
  if (response.has_partial_success()) {
    const auto& p = response.partial_success();
    o["partialSuccess"] = {{"rejectedSpans", std::to_string(p.rejected_spans())},
                           {"errorMessage", p.error_message()}};
  }
  return o.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<pb::ExportTraceServiceRequest> DecodeJsonRequest(std::string_view body) {
  json doc = ParseObject(body);
  if (!doc.is_object())
    return Error::InvalidArgument(JsonNestedWithin(body, kMaxTextDepth)
                                      ? "the body is not a JSON object"
                                      : "the body is nested too deep (over " + std::to_string(kMaxTextDepth) + " levels)");
  Decoder d;
  pb::ExportTraceServiceRequest request;
  if (const json* rss = Decoder::F(doc, "resourceSpans", "resource_spans")) {
    if (!rss->is_array()) return Error::InvalidArgument("resourceSpans is not an array");
    for (const json& r : *rss)
      if (!d.ResourceSpans(r, request.add_resource_spans())) return Error::InvalidArgument(d.err);
  }
  return request;
}

Result<pb::ExportTraceServiceResponse> DecodeJsonResponse(std::string_view body) {
  pb::ExportTraceServiceResponse response;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return response;
  json doc = ParseObject(body);
  if (!doc.is_object()) return Error::InvalidArgument("the response is not a JSON object");
  Decoder d;
  if (const json* p = Decoder::F(doc, "partialSuccess", "partial_success"); p && p->is_object()) {
    int64_t rejected = 0;
    if (!d.Integer(Decoder::F(*p, "rejectedSpans", "rejected_spans"), &rejected, "rejectedSpans") ||
        !d.String(Decoder::F(*p, "errorMessage", "error_message"),
                  response.mutable_partial_success()->mutable_error_message(), "errorMessage"))
      return Error::InvalidArgument(d.err);
    response.mutable_partial_success()->set_rejected_spans(rejected);
  }
  return response;
}

}  // namespace xrayd::otlp
