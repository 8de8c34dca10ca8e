#include "xray/segment.h"

#include <cxxabi.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <typeinfo>

#include "json_text.h"
#include "xray/ids.h"
#include "xray/log.h"

namespace xray {

#ifdef XRAY_SDK_BUILD_VERSION
static_assert(kSdkVersion == std::string_view(XRAY_SDK_BUILD_VERSION),
              "kSdkVersion in segment.h must equal the project version in the top-level CMakeLists.txt");
#endif

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

// Free-form values the application handed over, written compactly; invalid UTF-8 becomes U+FFFD.
void AppendJson(std::string& out, const Json& value) {
  out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
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
  std::lock_guard lock(mu());
  http_request_ = std::move(r);
}

void Entity::SetHttpResponse(int status, int64_t content_length) {
  std::lock_guard lock(mu());
  has_http_response_ = true;
  http_status_ = status;
  http_content_length_ = content_length;
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
  std::lock_guard lock(mu());
  sql_ = std::move(s);
}

bool Entity::PutAnnotationValue(std::string_view key, AnnotationValue value) {
  if (!IsValidAnnotationKey(key)) {
    Log(LogLevel::kWarn, "annotation key \"" + std::string(key.substr(0, 64)) +
                             "\" refused: keys are 1-500 ASCII letters, digits or '_'");
    return false;
  }
  std::lock_guard lock(mu());
  for (auto& [k, v] : annotations_) {
    if (k == key) {
      v = std::move(value);
      return true;
    }
  }
  annotations_.emplace_back(std::string(key), std::move(value));
  return true;
}

bool Entity::PutAnnotation(std::string_view key, std::string_view value) {
  if (value.size() > kMaxAnnotationString) value = value.substr(0, kMaxAnnotationString);
  return PutAnnotationValue(key, std::string(value));
}

bool Entity::PutAnnotation(std::string_view key, double value) {
  if (!std::isfinite(value)) {
    Log(LogLevel::kWarn, "annotation \"" + std::string(key.substr(0, 64)) + "\" refused: not a finite number");
    return false;
  }
  return PutAnnotationValue(key, value);
}

bool Entity::PutAnnotation(std::string_view key, int64_t value) { return PutAnnotationValue(key, value); }

bool Entity::PutAnnotation(std::string_view key, bool value) { return PutAnnotationValue(key, value); }

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
  std::string text;
  {
    std::lock_guard lock(mu());
    WriteLocked(text);
  }
  return Json::parse(text);
}

void Entity::WriteCommonLocked(json_text::Object& out) const {
  out.String("name", name_);
  out.String("id", id_);
  out.Double("start_time", RoundMicros(start_time_));
  if (end_time_ != 0) {
    out.Double("end_time", RoundMicros(end_time_));
  } else {
    out.Bool("in_progress", true);
  }
  if (error_) out.Bool("error", true);
  if (fault_) out.Bool("fault", true);
  if (throttle_) out.Bool("throttle", true);
  if (http_request_ || has_http_response_) {
    json_text::Object http(out.Key("http"));
    if (http_request_) {
      json_text::Object req(http.Key("request"));
      req.StringIfSet("method", http_request_->method);
      req.StringIfSet("url", http_request_->url);
      req.StringIfSet("user_agent", http_request_->user_agent);
      req.StringIfSet("client_ip", http_request_->client_ip);
      if (http_request_->x_forwarded_for) req.Bool("x_forwarded_for", true);
      if (http_request_->traced) req.Bool("traced", true);
    }
    if (has_http_response_) {
      json_text::Object resp(http.Key("response"));
      if (http_status_ > 0) resp.Int("status", http_status_);
      if (http_content_length_ >= 0) resp.Int("content_length", http_content_length_);
    }
  }
  if (this == root_) {
    // The segment names the SDK that wrote it, as every AWS X-Ray SDK does, beside whatever the
    // application put in "aws" (its own aws.xray.sdk/sdk_version win). Subsegments do not repeat it.
    if (!aws_.is_object()) {
      json_text::Object aws(out.Key("aws"));
      json_text::Object xray(aws.Key("xray"));
      xray.String("sdk", kSdkName);
      xray.String("sdk_version", kSdkVersion);
    } else {
      Json aws = aws_;
      Json& sdk = aws["xray"];
      if (sdk.is_null()) sdk = Json::object();
      if (sdk.is_object()) {
        if (!sdk.contains("sdk")) sdk["sdk"] = kSdkName;
        if (!sdk.contains("sdk_version")) sdk["sdk_version"] = kSdkVersion;
      }
      AppendJson(out.Key("aws"), aws);
    }
  } else if (aws_.is_object()) {
    AppendJson(out.Key("aws"), aws_);
  }
  if (sql_) {
    json_text::Object sql(out.Key("sql"));
    sql.StringIfSet("connection_string", sql_->connection_string);
    sql.StringIfSet("url", sql_->url);
    sql.StringIfSet("sanitized_query", sql_->sanitized_query);
    sql.StringIfSet("database_type", sql_->database_type);
    sql.StringIfSet("database_version", sql_->database_version);
    sql.StringIfSet("driver_version", sql_->driver_version);
    sql.StringIfSet("user", sql_->user);
    sql.StringIfSet("preparation", sql_->preparation);
  }
  if (!annotations_.empty()) {
    json_text::Object annotations(out.Key("annotations"));
    for (const auto& [key, value] : annotations_) {
      std::string& to = annotations.Key(key);
      if (const auto* text = std::get_if<std::string>(&value)) json_text::AppendString(to, *text);
      else if (const auto* d = std::get_if<double>(&value)) json_text::AppendDouble(to, *d);
      else if (const auto* i = std::get_if<int64_t>(&value)) json_text::AppendInt(to, *i);
      else to += std::get<bool>(value) ? "true" : "false";
    }
  }
  if (metadata_.is_object()) AppendJson(out.Key("metadata"), metadata_);
  if (cause_.is_object()) AppendJson(out.Key("cause"), cause_);
  if (!subsegments_.empty()) {
    std::string& to = out.Key("subsegments");
    to += '[';
    for (size_t i = 0; i < subsegments_.size(); ++i) {
      if (i > 0) to += ',';
      subsegments_[i]->WriteLocked(to);
    }
    to += ']';
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

void Subsegment::WriteLocked(std::string& out) const {
  json_text::Object o(out);
  WriteCommonLocked(o);
  if (!namespace_.empty()) o.String("namespace", namespace_);
  if (!precursor_ids_.empty()) {
    std::string& to = o.Key("precursor_ids");
    to += '[';
    for (size_t i = 0; i < precursor_ids_.size(); ++i) {
      if (i > 0) to += ',';
      json_text::AppendString(to, precursor_ids_[i]);
    }
    to += ']';
  }
}

Json Subsegment::ToStandaloneJson() const {
  Json out = ToJson();
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

void Segment::WriteLocked(std::string& out) const {
  json_text::Object o(out);
  // trace_id first: it is what a reader of a raw datagram looks for.
  o.String("trace_id", trace_id_);
  WriteCommonLocked(o);
  if (!parent_id_.empty()) o.String("parent_id", parent_id_);
  if (!origin_.empty()) o.String("origin", origin_);
  if (!user_.empty()) o.String("user", user_);
  if (!service_version_.empty()) {
    json_text::Object service(o.Key("service"));
    service.String("version", service_version_);
  }
}

std::string Segment::Serialize() const {
  std::string out;
  out.reserve(1024);
  std::lock_guard lock(mu_);
  WriteLocked(out);
  return out;
}

}  // namespace xray
