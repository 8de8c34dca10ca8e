#include "segment/segment.h"

#include <cmath>
#include <limits>
#include <new>

namespace xrayd::segment {
namespace {

using simdjson::SUCCESS;
using simdjson::dom::element;
using simdjson::dom::object;

constexpr int kMaxWalkDepth = 64;

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool AllHex(std::string_view s) {
  for (char c : s)
    if (!IsHex(c)) return false;
  return true;
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool IsSpace(char c) { return c == '\n' || c == '\r' || c == ' ' || c == '\t'; }

Verdict Refuse(RejectReason r, std::string_view detail) { return {r, detail, {}}; }

bool Flag(object o, const char* key) {
  bool b = false;
  return o[key].get(b) == SUCCESS && b;
}

// The members the rules read, found in one pass over an object's fields (each `object[key]` would
// scan the fields again). The first of duplicate keys counts, as object[key] finds it.
struct RuleFields {
  element trace_id, id, name, type, parent_id, start_time, end_time, subsegments;
  bool has_trace_id = false, has_id = false, has_name = false, has_type = false, has_parent_id = false,
       has_start_time = false, has_end_time = false, has_subsegments = false;
};

RuleFields ScanRuleFields(object o) {
  RuleFields f;
  auto take = [](element v, element& slot, bool& has) {
    if (!has) {
      slot = v;
      has = true;
    }
  };
  for (auto field : o) {
    const std::string_view k = field.key;
    switch (k.size()) {
      case 2: if (k == "id") take(field.value, f.id, f.has_id); break;
      case 4:
        if (k == "name") take(field.value, f.name, f.has_name);
        else if (k == "type") take(field.value, f.type, f.has_type);
        break;
      case 8:
        if (k == "trace_id") take(field.value, f.trace_id, f.has_trace_id);
        else if (k == "end_time") take(field.value, f.end_time, f.has_end_time);
        break;
      case 9: if (k == "parent_id") take(field.value, f.parent_id, f.has_parent_id); break;
      case 10: if (k == "start_time") take(field.value, f.start_time, f.has_start_time); break;
      case 11: if (k == "subsegments") take(field.value, f.subsegments, f.has_subsegments); break;
      default: break;
    }
  }
  return f;
}

// A string member's value, if the member is there and a string.
bool StringOf(bool has, element v, std::string_view* out) { return has && v.get(*out) == SUCCESS; }

// The identity rules: ids, name, parent of an independent subsegment.
Verdict CheckIdentity(const RuleFields& f) {
  std::string_view trace_id, id, name;
  if (!StringOf(f.has_trace_id, f.trace_id, &trace_id) || !IsValidTraceId(trace_id))
    return Refuse(RejectReason::kInvalidSegment, "missing or malformed trace_id");
  if (!StringOf(f.has_id, f.id, &id) || !IsHexId(id, 16))
    return Refuse(RejectReason::kInvalidSegment, "missing or malformed id");
  if (!StringOf(f.has_name, f.name, &name) || name.empty() || Utf8Length(name) > kMaxNameChars)
    return Refuse(RejectReason::kInvalidSegment, "missing or malformed name");
  std::string_view type, parent;
  if (StringOf(f.has_type, f.type, &type) && type == "subsegment" &&
      (!StringOf(f.has_parent_id, f.parent_id, &parent) || !IsHexId(parent, 16)))
    return Refuse(RejectReason::kInvalidSegment, "subsegment without a valid parent_id");
  return {};
}

// The time rules (see the header for the bounds and why).
Verdict CheckTimes(const RuleFields& f) {
  if (!f.has_start_time || !f.start_time.is_number())
    return Refuse(RejectReason::kInvalidSegment, "missing or non-numeric start_time");
  double start = 0;
  if (f.start_time.get(start) != SUCCESS || !std::isfinite(start))
    return Refuse(RejectReason::kInvalidTime, "start_time is not a finite number");
  if (!IsPlausibleTime(start))
    return Refuse(RejectReason::kInvalidTime,
                  "start_time is not epoch seconds between 2000 and 9999 (milliseconds?)");
  if (!f.has_end_time || f.end_time.is_null()) return {};
  double end = 0;
  if (!f.end_time.is_number() || f.end_time.get(end) != SUCCESS || !std::isfinite(end))
    return Refuse(RejectReason::kInvalidTime, "end_time is not a finite number");
  if (!IsPlausibleTime(end))
    return Refuse(RejectReason::kInvalidTime, "end_time is not epoch seconds between 2000 and 9999 (milliseconds?)");
  if (end < start) return Refuse(RejectReason::kInvalidTime, "end_time is before start_time");
  return {};
}

// Nested subsegments' times, where given, obey the same bounds: the service graph and root causes
// read them (node and edge StartTime/EndTime). Down to the depth those readers walk.
Verdict CheckNestedTimes(const RuleFields& f, int depth) {
  simdjson::dom::array subs;
  if (depth > kMaxWalkDepth || !f.has_subsegments || f.subsegments.get(subs) != SUCCESS) return {};
  for (auto sub : subs) {
    object so;
    if (sub.get(so) != SUCCESS) continue;
    const RuleFields sf = ScanRuleFields(so);
    double start = kMinTime, end = 0;
    if (sf.has_start_time &&
        (!sf.start_time.is_number() || sf.start_time.get(start) != SUCCESS || !IsPlausibleTime(start)))
      return Refuse(RejectReason::kInvalidTime, "a subsegment's start_time is not epoch seconds between 2000 and 9999");
    if (sf.has_end_time && !sf.end_time.is_null() &&
        (!sf.end_time.is_number() || sf.end_time.get(end) != SUCCESS || !IsPlausibleTime(end)))
      return Refuse(RejectReason::kInvalidTime, "a subsegment's end_time is not epoch seconds between 2000 and 9999");
    if (Verdict v = CheckNestedTimes(sf, depth + 1); !v.ok()) return v;
  }
  return {};
}

std::string JsonScalar(element v) {
  switch (v.type()) {
    case simdjson::dom::element_type::STRING:
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE: return simdjson::minify(v);
    case simdjson::dom::element_type::BOOL: return v.get_bool().value() ? "true" : "false";
    default: return {};
  }
}

void AddAnnotations(object o, Facts& f) {
  object ann;
  if (o["annotations"].get(ann) != SUCCESS) return;
  f.annotations.reserve(f.annotations.size() + ann.size());  // one allocation, not one per doubling
  for (auto field : ann) {
    std::string v = JsonScalar(field.value);
    if (!v.empty()) f.annotations.push_back({std::string(field.key), std::move(v)});
  }
}

// What one nested subsegment says about its parent document: superseded stubs, called services.
void NoteSubsegment(object sub, Facts& f) {
  std::string_view id, ns, name;
  if (sub["id"].get(id) == SUCCESS && sub["end_time"].is_number() && !Flag(sub, "in_progress"))
    f.embedded_complete_ids.emplace_back(id);
  if (sub["namespace"].get(ns) == SUCCESS && IsCallNamespace(ns) && sub["name"].get(name) == SUCCESS && !name.empty())
    f.called_services.push_back(
        {std::string(name), InferredServiceType(ns, name), Flag(sub, "error"), Flag(sub, "fault"), Flag(sub, "throttle")});
}

void AddExceptions(object o, Entity& e) {
  object cause;
  simdjson::dom::array list;
  if (o["cause"].get(cause) != SUCCESS || cause["exceptions"].get(list) != SUCCESS) return;
  for (auto x : list) {
    object xo;
    if (x.get(xo) != SUCCESS) continue;
    Exception ex;
    std::string_view sv;
    if (xo["type"].get(sv) == SUCCESS) ex.type = sv;
    if (xo["message"].get(sv) == SUCCESS) ex.message = std::string(sv);
    e.exceptions.push_back(std::move(ex));
  }
}

// Appends the entity `o` (child of entities[parent], or the document when parent < 0).
int AddEntity(object o, Facts& f, int parent) {
  const int index = static_cast<int>(f.entities.size());
  Entity& e = f.entities.emplace_back();
  std::string_view sv;
  if (o["id"].get(sv) == SUCCESS) e.id = sv;
  if (o["name"].get(sv) == SUCCESS) e.name = sv;
  if (o["namespace"].get(sv) == SUCCESS) e.ns = sv;
  double d = 0;
  if (o["start_time"].get(d) == SUCCESS) e.start_time = d;
  if (o["end_time"].get(d) == SUCCESS) e.end_time = d;
  e.parent = parent;
  e.error = Flag(o, "error");
  e.fault = Flag(o, "fault");
  e.throttle = Flag(o, "throttle");
  AddExceptions(o, e);
  if (parent >= 0) f.entities[static_cast<size_t>(parent)].children.push_back(index);
  return index;
}

// Walks a (sub)segment object: flags anywhere in the tree, annotations at every level, the tree.
void Walk(object o, Facts& f, int depth, int parent) {
  if (depth > kMaxWalkDepth) return;
  const int self = AddEntity(o, f, parent);
  const Entity& e = f.entities.back();
  f.error |= e.error;
  f.fault |= e.fault;
  f.throttle |= e.throttle;
  AddAnnotations(o, f);
  simdjson::dom::array subs;
  if (o["subsegments"].get(subs) != SUCCESS) return;
  for (auto sub : subs) {
    object so;
    if (sub.get(so) != SUCCESS) continue;
    NoteSubsegment(so, f);
    Walk(so, f, depth + 1, self);
  }
}

void ExtractHttp(object doc, Facts& f) {
  object http, req, resp;
  if (doc["http"].get(http) != SUCCESS) return;
  std::string_view sv;
  if (http["request"].get(req) == SUCCESS) {
    if (req["url"].get(sv) == SUCCESS) f.http_url = sv;
    if (req["method"].get(sv) == SUCCESS) f.http_method = sv;
    if (req["user_agent"].get(sv) == SUCCESS) f.user_agent = sv;
    if (req["client_ip"].get(sv) == SUCCESS) f.client_ip = sv;
  }
  int64_t status = 0;
  if (http["response"].get(resp) == SUCCESS && resp["status"].get(status) == SUCCESS && status >= 0 && status < 1000)
    f.http_status = static_cast<int>(status);
}

// Fills `f` from a document that passed the checks (so ids, name and start_time are present).
void Extract(object doc, Facts& f) {
  f = Facts{};
  // Room for the document and a few nested subsegments in one allocation (not 1, 2, 4: the store
  // profiled at ~100 mallocs per segment, most of them SQLite's; these are among the few of ours).
  f.entities.reserve(4);
  std::string_view sv;
  if (doc["trace_id"].get(sv) == SUCCESS) f.trace_id = sv;
  if (doc["id"].get(sv) == SUCCESS) f.id = sv;
  if (doc["parent_id"].get(sv) == SUCCESS) f.parent_id = sv;
  if (doc["name"].get(sv) == SUCCESS) f.name = sv;
  if (doc["origin"].get(sv) == SUCCESS) f.origin = sv;
  if (doc["user"].get(sv) == SUCCESS) f.user = sv;
  f.independent_subsegment = doc["type"].get(sv) == SUCCESS && sv == "subsegment";
  f.in_progress = Flag(doc, "in_progress");
  double d = 0;
  if (doc["start_time"].get(d) == SUCCESS) f.start_time = d;
  if (doc["end_time"].get(d) == SUCCESS) f.end_time = d;
  f.own_error = Flag(doc, "error");
  f.own_fault = Flag(doc, "fault");
  f.own_throttle = Flag(doc, "throttle");
  ExtractHttp(doc, f);
  Walk(doc, f, 0, -1);
  // A subsegment streamed on its own in a call namespace is itself a call its service makes (as
  // it would be nested in the segment).
  if (f.independent_subsegment && IsCallNamespace(f.entities.front().ns) && !f.name.empty())
    f.called_services.push_back(
        {f.name, InferredServiceType(f.entities.front().ns, f.name), f.own_error, f.own_fault, f.own_throttle});
}

}  // namespace

bool IsHexId(std::string_view s, size_t digits) { return s.size() == digits && AllHex(s); }

bool IsValidTraceId(std::string_view s) {
  // 1-<8 hex: epoch seconds>-<24 hex>
  return s.size() == 35 && s[0] == '1' && s[1] == '-' && s[10] == '-' && AllHex(s.substr(2, 8)) &&
         AllHex(s.substr(11, 24));
}

bool IsPlausibleTime(double t) { return std::isfinite(t) && t >= kMinTime && t <= kMaxTime; }

bool IsCallNamespace(std::string_view ns) { return ns == "remote" || ns == "aws"; }

std::string InferredServiceType(std::string_view ns, std::string_view name) {
  return ns == "aws" ? "AWS::" + std::string(name) : std::string("remote");
}

int64_t TraceIdEpoch(std::string_view trace_id) {
  if (trace_id.size() < 10 || !AllHex(trace_id.substr(2, 8))) return 0;
  int64_t v = 0;
  for (char c : trace_id.substr(2, 8)) v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  return v;
}

Parser::Parser() {
  if (parser_.allocate(kMaxDocumentBytes) != SUCCESS) throw std::bad_alloc();
}

Verdict Parser::Load(const char* data, size_t len, bool padded, object* out, size_t max_bytes) {
  while (len > 0 && IsSpace(data[len - 1])) --len;
  if (len == 0) return Refuse(RejectReason::kBadJson, "empty segment document");
  if (len > max_bytes) return Refuse(RejectReason::kTooLarge, "segment document over 64 KB");
  if (!padded) {
    scratch_.assign(data, len);
    scratch_.append(kPadding, '\0');
    data = scratch_.data();
  }
  element root;
  if (parser_.parse(data, len, false).get(root) != SUCCESS) return Refuse(RejectReason::kBadJson, "segment is not valid JSON");
  if (root.get(*out) != SUCCESS) return Refuse(RejectReason::kInvalidSegment, "segment is not a JSON object");
  const RuleFields fields = ScanRuleFields(*out);
  if (Verdict v = CheckIdentity(fields); !v.ok()) return v;
  if (Verdict v = CheckTimes(fields); !v.ok()) return v;
  if (Verdict v = CheckNestedTimes(fields, 0); !v.ok()) return v;
  return {std::nullopt, {}, std::string_view(data, len)};
}

Verdict Parser::Validate(const char* data, size_t len) {
  object doc;
  return Load(data, len, true, &doc);
}

Verdict Parser::Parse(const char* data, size_t len, Facts* facts) {
  object doc;
  Verdict v = Load(data, len, true, &doc);
  if (v.ok()) Extract(doc, *facts);
  return v;
}

Verdict Parser::Parse(std::string_view text, Facts* facts) {
  object doc;
  Verdict v = Load(text.data(), text.size(), false, &doc);
  if (!v.ok()) return v;
  Extract(doc, *facts);
  v.document = text.substr(0, v.document.size());  // a view of the caller's text, not of scratch_
  return v;
}

Verdict Parser::FactsOf(std::string_view text, Facts* facts) {
  object doc;
  Verdict v = Load(text.data(), text.size(), false, &doc, std::numeric_limits<size_t>::max());
  if (!v.ok()) return v;
  Extract(doc, *facts);
  v.document = text.substr(0, v.document.size());  // a view of the caller's text, not of scratch_
  return v;
}

}  // namespace xrayd::segment
