#include "xray/segment.h"

#include <cxxabi.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <typeinfo>

#include "xray/ids.h"
#include "xray/log.h"

namespace xray {
namespace {

constexpr size_t kMaxNameChars = 200;
constexpr size_t kMaxAnnotationKey = 500;
constexpr size_t kMaxAnnotationString = 1000;

bool AllowedNameChar(unsigned char c) {
  if (c >= 0x80) return true;  // part of a UTF-8 sequence: Unicode letters are allowed
  if (std::isalnum(c) || c == ' ' || c == '\t') return true;
  switch (c) {
    case '_': case '.': case ':': case '/': case '%': case '&': case '#': case '=': case '+':
    case '\\': case '-': case '@':
      return true;
    default:
      return false;
  }
}

void PutIfSet(Json& obj, const char* key, const std::string& value) {
  if (!value.empty()) obj[key] = value;
}

// Microsecond precision, as the X-Ray SDKs send it.
double RoundMicros(double t) { return std::round(t * 1e6) / 1e6; }

}  // namespace

double NowSeconds() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return static_cast<double>(us.count()) / 1e6;
}

ExceptionInfo MakeExceptionInfo(const std::exception& e, bool remote) {
  ExceptionInfo info;
  info.message = e.what();
  const char* mangled = typeid(e).name();
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  info.type = status == 0 && demangled != nullptr ? demangled : mangled;
  std::free(demangled);
  info.remote = remote;
  return info;
}

bool IsValidAnnotationKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxAnnotationKey) return false;
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

std::string SanitizeName(std::string_view name) {
  std::string out;
  out.reserve(std::min(name.size(), kMaxNameChars));
  size_t chars = 0;
  for (char ch : name) {
    unsigned char c = static_cast<unsigned char>(ch);
    if ((c & 0xC0) != 0x80) {  // a new character starts (ASCII or a UTF-8 lead byte)
      if (chars == kMaxNameChars) break;
      ++chars;
    }
    out += AllowedNameChar(c) ? ch : '_';
  }
  if (out.empty()) out = "_";
  return out;
}

// ---------------------------------------------------------------------------------------------- Entity

Entity::Entity(Segment* root, Entity* parent, std::string_view name, std::string id)
    : root_(root), parent_(parent), name_(SanitizeName(name)), id_(std::move(id)), start_time_(NowSeconds()) {}

Entity::~Entity() = default;

std::mutex& Entity::mu() const { return root_->mu_; }

double Entity::start_time() const {
  std::lock_guard lock(mu());
  return start_time_;
}

double Entity::end_time() const {
  std::lock_guard lock(mu());
  return end_time_;
}

bool Entity::in_progress() const {
  std::lock_guard lock(mu());
  return end_time_ == 0;
}

void Entity::Close(double end_time) {
  std::lock_guard lock(mu());
  if (end_time_ != 0) return;
  end_time_ = end_time > 0 ? end_time : NowSeconds();
  if (end_time_ < start_time_) end_time_ = start_time_;
}

void Entity::SetHttpRequest(HttpRequestInfo r) {
  Json req = Json::object();
  PutIfSet(req, "method", r.method);
  PutIfSet(req, "url", r.url);
  PutIfSet(req, "user_agent", r.user_agent);
  PutIfSet(req, "client_ip", r.client_ip);
  if (r.x_forwarded_for) req["x_forwarded_for"] = true;
  if (r.traced) req["traced"] = true;
  std::lock_guard lock(mu());
  if (!http_.is_object()) http_ = Json::object();
  http_["request"] = std::move(req);
}

void Entity::SetHttpResponse(int status, int64_t content_length) {
  Json resp = Json::object();
  if (status > 0) resp["status"] = status;
  if (content_length >= 0) resp["content_length"] = content_length;
  std::lock_guard lock(mu());
  if (!http_.is_object()) http_ = Json::object();
  http_["response"] = std::move(resp);
  if (status == 429) {
    throttle_ = true;
    error_ = true;
  } else if (status >= 400 && status < 500) {
    error_ = true;
  } else if (status >= 500) {
    fault_ = true;
  }
}

void Entity::SetAws(const Json& fields) {
  if (!fields.is_object()) return;
  std::lock_guard lock(mu());
  if (!aws_.is_object()) aws_ = Json::object();
  for (auto it = fields.begin(); it != fields.end(); ++it) aws_[it.key()] = it.value();
}

void Entity::SetSql(SqlInfo s) {
  Json sql = Json::object();
  PutIfSet(sql, "connection_string", s.connection_string);
  PutIfSet(sql, "url", s.url);
  PutIfSet(sql, "sanitized_query", s.sanitized_query);
  PutIfSet(sql, "database_type", s.database_type);
  PutIfSet(sql, "database_version", s.database_version);
  PutIfSet(sql, "driver_version", s.driver_version);
  PutIfSet(sql, "user", s.user);
  PutIfSet(sql, "preparation", s.preparation);
  std::lock_guard lock(mu());
  sql_ = std::move(sql);
}

bool Entity::PutAnnotationJson(std::string_view key, Json value) {
  if (!IsValidAnnotationKey(key)) {
    Log(LogLevel::kWarn, "annotation key \"" + std::string(key.substr(0, 64)) +
                             "\" refused: keys are 1-500 ASCII letters, digits or '_'");
    return false;
  }
  std::lock_guard lock(mu());
  if (!annotations_.is_object()) annotations_ = Json::object();
  annotations_[std::string(key)] = std::move(value);
  return true;
}

bool Entity::PutAnnotation(std::string_view key, std::string_view value) {
  if (value.size() > kMaxAnnotationString) value = value.substr(0, kMaxAnnotationString);
  return PutAnnotationJson(key, Json(std::string(value)));
}

bool Entity::PutAnnotation(std::string_view key, double value) {
  if (!std::isfinite(value)) {
    Log(LogLevel::kWarn, "annotation \"" + std::string(key.substr(0, 64)) + "\" refused: not a finite number");
    return false;
  }
  return PutAnnotationJson(key, Json(value));
}

bool Entity::PutAnnotation(std::string_view key, int64_t value) { return PutAnnotationJson(key, Json(value)); }

bool Entity::PutAnnotation(std::string_view key, bool value) { return PutAnnotationJson(key, Json(value)); }

bool Entity::PutMetadata(std::string_view key, Json value, std::string_view ns) {
  if (ns.empty()) ns = "default";
  if (ns.size() >= 4 && ns.substr(0, 4) == "AWS.") {
    Log(LogLevel::kWarn, "metadata namespace \"" + std::string(ns.substr(0, 64)) + "\" refused: AWS. is reserved");
    return false;
  }
  if (key.empty()) return false;
  std::lock_guard lock(mu());
  if (!metadata_.is_object()) metadata_ = Json::object();
  Json& space = metadata_[std::string(ns)];
  if (!space.is_object()) space = Json::object();
  space[std::string(key)] = std::move(value);
  return true;
}

void Entity::SetError(bool v) {
  std::lock_guard lock(mu());
  error_ = v;
}

void Entity::SetFault(bool v) {
  std::lock_guard lock(mu());
  fault_ = v;
}

void Entity::SetThrottle(bool v) {
  std::lock_guard lock(mu());
  throttle_ = v;
  if (v) error_ = true;
}

void Entity::AddException(ExceptionInfo e) {
  Json ex = Json::object();
  ex["id"] = IsValidSegmentId(e.id) ? e.id : NewSegmentId();
  PutIfSet(ex, "message", e.message);
  PutIfSet(ex, "type", e.type);
  if (e.remote) ex["remote"] = true;
  if (e.truncated > 0) ex["truncated"] = e.truncated;
  if (e.skipped > 0) ex["skipped"] = e.skipped;
  PutIfSet(ex, "cause", e.cause);
  if (!e.stack.empty()) {
    Json stack = Json::array();
    for (const auto& f : e.stack) {
      Json frame = Json::object();
      PutIfSet(frame, "path", f.path);
      if (f.line > 0) frame["line"] = f.line;
      PutIfSet(frame, "label", f.label);
      stack.push_back(std::move(frame));
    }
    ex["stack"] = std::move(stack);
  }
  std::lock_guard lock(mu());
  if (!cause_.is_object()) cause_ = Json::object();
  Json& list = cause_["exceptions"];
  if (!list.is_array()) list = Json::array();
  list.push_back(std::move(ex));
  if (!error_ && !throttle_) fault_ = true;
}

void Entity::SetCauseContext(std::string working_directory, std::vector<std::string> paths) {
  std::lock_guard lock(mu());
  if (!cause_.is_object()) cause_ = Json::object();
  if (!working_directory.empty()) cause_["working_directory"] = std::move(working_directory);
  if (!paths.empty()) cause_["paths"] = std::move(paths);
}

Subsegment* Entity::AddSubsegment(std::string_view name) {
  std::unique_ptr<Subsegment> sub(new Subsegment(root_, this, name));
  Subsegment* raw = sub.get();
  std::lock_guard lock(mu());
  subsegments_.push_back(std::move(sub));
  return raw;
}

Json Entity::ToJson() const {
  Json out = Json::object();
  std::lock_guard lock(mu());
  WriteLocked(out);
  return out;
}

void Entity::WriteCommonLocked(Json& out) const {
  out["name"] = name_;
  out["id"] = id_;
  out["start_time"] = RoundMicros(start_time_);
  if (end_time_ != 0) {
    out["end_time"] = RoundMicros(end_time_);
  } else {
    out["in_progress"] = true;
  }
  if (error_) out["error"] = true;
  if (fault_) out["fault"] = true;
  if (throttle_) out["throttle"] = true;
  if (http_.is_object()) out["http"] = http_;
  if (aws_.is_object()) out["aws"] = aws_;
  if (sql_.is_object()) out["sql"] = sql_;
  if (annotations_.is_object()) out["annotations"] = annotations_;
  if (metadata_.is_object()) out["metadata"] = metadata_;
  if (cause_.is_object()) out["cause"] = cause_;
  if (!subsegments_.empty()) {
    Json subs = Json::array();
    for (const auto& s : subsegments_) {
      Json child = Json::object();
      s->WriteLocked(child);
      subs.push_back(std::move(child));
    }
    out["subsegments"] = std::move(subs);
  }
}

// ------------------------------------------------------------------------------------------ Subsegment

Subsegment::Subsegment(Segment* root, Entity* parent, std::string_view name)
    : Entity(root, parent, name, NewSegmentId()) {}

void Subsegment::SetNamespace(std::string_view ns) {
  std::lock_guard lock(mu());
  namespace_ = std::string(ns);
}

void Subsegment::AddPrecursorId(std::string_view id) {
  if (!IsValidSegmentId(id)) return;
  std::lock_guard lock(mu());
  precursor_ids_.emplace_back(id);
}

void Subsegment::WriteLocked(Json& out) const {
  WriteCommonLocked(out);
  if (!namespace_.empty()) out["namespace"] = namespace_;
  if (!precursor_ids_.empty()) out["precursor_ids"] = precursor_ids_;
}

Json Subsegment::ToStandaloneJson() const {
  Json out = Json::object();
  std::lock_guard lock(mu());
  WriteLocked(out);
  out["type"] = "subsegment";
  out["trace_id"] = segment().trace_id();
  out["parent_id"] = parent()->id();
  return out;
}

// --------------------------------------------------------------------------------------------- Segment

Segment::Segment(std::string_view name, std::string trace_id, std::string parent_id, bool sampled)
    : Entity(this, nullptr, name, NewSegmentId()),
      trace_id_(std::move(trace_id)),
      parent_id_(std::move(parent_id)),
      sampled_(sampled) {}

std::shared_ptr<Segment> Segment::Create(std::string_view name, std::string_view trace_id,
                                         std::string_view parent_id, bool sampled) {
  std::string tid = IsValidTraceId(trace_id) ? std::string(trace_id) : NewTraceId();
  std::string pid = IsValidSegmentId(parent_id) ? std::string(parent_id) : std::string();
  return std::shared_ptr<Segment>(new Segment(name, std::move(tid), std::move(pid), sampled));
}

void Segment::SetOrigin(std::string_view origin) {
  std::lock_guard lock(mu_);
  origin_ = std::string(origin);
}

void Segment::SetUser(std::string_view user) {
  std::lock_guard lock(mu_);
  user_ = std::string(user);
}

void Segment::SetServiceVersion(std::string_view version) {
  std::lock_guard lock(mu_);
  service_version_ = std::string(version);
}

void Segment::WriteLocked(Json& out) const {
  WriteCommonLocked(out);
  out["trace_id"] = trace_id_;
  if (!parent_id_.empty()) out["parent_id"] = parent_id_;
  if (!origin_.empty()) out["origin"] = origin_;
  if (!user_.empty()) out["user"] = user_;
  if (!service_version_.empty()) out["service"] = Json{{"version", service_version_}};
}

std::string Segment::Serialize() const {
  // error_handler_t::replace: invalid UTF-8 from the application becomes U+FFFD instead of throwing.
  return ToJson().dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace xray
