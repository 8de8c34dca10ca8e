// Segments and subsegments: the documents X-Ray stores, and their JSON form.
//
// A Segment is one service's record of one request; Subsegments are the work inside it, nested to any
// depth. The Segment owns its whole tree (subsegments are owned by their parent through unique_ptr and
// handed out as raw pointers that stay valid as long as the Segment lives). Share a Segment through
// std::shared_ptr<Segment>.
//
// Thread safety: every method of every entity in one tree locks that tree's single mutex, so work on
// other threads (thread pools, async callbacks) may add subsegments, annotations and metadata to the
// same segment concurrently. Serialize() sees a consistent snapshot.
//
// Shape (see "AWS X-Ray segment documents"): times are epoch seconds with microsecond precision; an
// entity without an end time is written with "in_progress": true; empty optional fields are left out.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace xray {

using Json = nlohmann::json;

// Every segment names the SDK that wrote it in "aws": {"xray": {"sdk": ..., "sdk_version": ...}}, as the
// AWS X-Ray SDKs do ("X-Ray for Node.js", "X-Ray for Python", ...). kSdkVersion must equal the project
// version in the top-level CMakeLists.txt (a static_assert in segment.cc fails the build otherwise).
inline constexpr std::string_view kSdkName = "X-Ray for C++";
inline constexpr std::string_view kSdkVersion = "0.1.0";

struct StackFrame {
  std::string path;
  int line = 0;        // 0 = unknown, left out
  std::string label;   // function name
};

struct ExceptionInfo {
  std::string id;      // 16 hex; filled in by AddException when empty
  std::string message;
  std::string type;
  bool remote = false;  // raised by a downstream service
  std::vector<StackFrame> stack;
  int truncated = 0;    // frames left out of `stack`
  int skipped = 0;      // exceptions left out between this one and its cause
  std::string cause;    // id of the exception that caused this one
};

// message = e.what(), type = the demangled dynamic type (e.g. "std::runtime_error").
ExceptionInfo MakeExceptionInfo(const std::exception& e, bool remote = false);

struct HttpRequestInfo {
  std::string method;
  std::string url;
  std::string user_agent;
  std::string client_ip;
  bool x_forwarded_for = false;  // client_ip came from X-Forwarded-For
  bool traced = false;           // (subsegments) the downstream call carried our trace header
};

struct SqlInfo {
  std::string connection_string;  // without passwords
  std::string url;                // or this, without passwords
  std::string sanitized_query;
  std::string database_type;
  std::string database_version;
  std::string driver_version;
  std::string user;
  std::string preparation;        // "call" or "statement"
};

// Seconds since the epoch, microsecond precision.
double NowSeconds();

// True when `key` is a valid annotation key: 1..500 characters, ASCII letters, digits and '_'.
bool IsValidAnnotationKey(std::string_view key);

class Segment;
class Subsegment;
namespace json_text {
class Object;  // sdk/src/json_text.h
}

// What segments and subsegments share. Not constructible on its own.
class Entity {
 public:
  Entity(const Entity&) = delete;
  Entity& operator=(const Entity&) = delete;
  virtual ~Entity();

  // Constant after construction; no lock needed.
  const std::string& name() const { return name_; }
  const std::string& id() const { return id_; }
  Segment& segment() { return *root_; }
  const Segment& segment() const { return *root_; }
  Entity* parent() const { return parent_; }  // nullptr for a Segment

  double start_time() const;
  double end_time() const;  // 0 while in progress
  bool in_progress() const;

  // Sets the end time (now, or `end_time`); closing twice keeps the first end time.
  void Close(double end_time = 0);

  void SetHttpRequest(HttpRequestInfo request);
  // Records status and content length (< 0: left out) and derives the flags the way the X-Ray SDKs do:
  // 429 → throttle + error, other 4xx → error, 5xx → fault.
  void SetHttpResponse(int status, int64_t content_length = -1);
  // Merged into the "aws" object (top-level keys replace earlier ones).
  void SetAws(const Json& fields);
  void SetSql(SqlInfo sql);

  // Annotations are indexed by X-Ray for filter expressions: string, number or bool values only.
  // An invalid key is logged and the call returns false; the same key set twice keeps the last value.
  bool PutAnnotation(std::string_view key, std::string_view value);
  bool PutAnnotation(std::string_view key, const char* value) { return PutAnnotation(key, std::string_view(value)); }
  bool PutAnnotation(std::string_view key, double value);
  bool PutAnnotation(std::string_view key, int64_t value);
  bool PutAnnotation(std::string_view key, int value) { return PutAnnotation(key, static_cast<int64_t>(value)); }
  bool PutAnnotation(std::string_view key, bool value);

  // Any JSON value, grouped by namespace ("default" unless given; "AWS." prefixes are reserved by X-Ray
  // and refused).
  bool PutMetadata(std::string_view key, Json value, std::string_view ns = "default");

  void SetError(bool v = true);
  void SetFault(bool v = true);
  void SetThrottle(bool v = true);  // also sets error, as X-Ray expects
  // Appends to cause.exceptions; sets fault unless error or throttle is already set.
  void AddException(ExceptionInfo exception);
  // The working directory and source paths reported with the exceptions.
  void SetCauseContext(std::string working_directory, std::vector<std::string> paths = {});

  // Starts a child subsegment (in progress until Close()). Never returns nullptr.
  Subsegment* AddSubsegment(std::string_view name);

  // This entity as a JSON object (a Segment as a full document; a Subsegment nested, without
  // trace_id/parent_id/type).
  Json ToJson() const;

 protected:
  Entity(Segment* root, Entity* parent, std::string_view name, std::string id);
  std::mutex& mu() const;
  // Appends the shared members to an object being written; the caller holds mu().
  void WriteCommonLocked(json_text::Object& out) const;
  // Appends this entity as one JSON object; the caller holds mu().
  virtual void WriteLocked(std::string& out) const = 0;

 private:
  using AnnotationValue = std::variant<std::string, double, int64_t, bool>;
  bool PutAnnotationValue(std::string_view key, AnnotationValue value);

  // Constant after construction.
  Segment* const root_;
  Entity* const parent_;
  const std::string name_;
  const std::string id_;

  // Guarded by the segment's mutex.
  double start_time_;
  double end_time_ = 0;
  bool error_ = false, fault_ = false, throttle_ = false;
  // The hot fields are kept typed and written straight to text (see Serialize); the free-form ones
  // the application fills with JSON values stay Json.
  std::optional<HttpRequestInfo> http_request_;
  bool has_http_response_ = false;
  int http_status_ = 0;               // <= 0: left out
  int64_t http_content_length_ = -1;  // < 0: left out
  std::optional<SqlInfo> sql_;
  std::vector<std::pair<std::string, AnnotationValue>> annotations_;  // in insertion order, keys unique
  Json aws_;          // object or null
  Json metadata_;     // object of namespaces or null
  Json cause_;        // object or null
  std::vector<std::unique_ptr<Subsegment>> subsegments_;

  friend class Segment;
  friend class Subsegment;
};

class Subsegment final : public Entity {
 public:
  // "remote" for calls to other services, "aws" for AWS SDK calls; empty = left out.
  void SetNamespace(std::string_view ns);
  void AddPrecursorId(std::string_view id);

  // The subsegment as an independent document (type "subsegment", with trace_id and parent_id), as
  // sent when a segment is too big for one datagram.
  Json ToStandaloneJson() const;

 private:
  Subsegment(Segment* root, Entity* parent, std::string_view name);
  void WriteLocked(std::string& out) const override;

  std::string namespace_;                  // guarded by the segment's mutex
  std::vector<std::string> precursor_ids_;  // guarded by the segment's mutex

  friend class Entity;
};

class Segment final : public Entity {
 public:
  // `trace_id` empty → a new one; `parent_id` is the caller's segment/subsegment id (from the trace
  // header), empty when this service starts the trace. `name` is cut to 200 characters and characters
  // X-Ray does not accept are replaced by '_'.
  static std::shared_ptr<Segment> Create(std::string_view name, std::string_view trace_id = {},
                                         std::string_view parent_id = {}, bool sampled = true);

  // Constant after construction.
  const std::string& trace_id() const { return trace_id_; }
  const std::string& parent_id() const { return parent_id_; }
  bool sampled() const { return sampled_; }

  void SetOrigin(std::string_view origin);  // e.g. "AWS::EC2::Instance"
  void SetUser(std::string_view user);
  void SetServiceVersion(std::string_view version);

  // The document as X-Ray wants it, compact JSON.
  std::string Serialize() const;

 private:
  Segment(std::string_view name, std::string trace_id, std::string parent_id, bool sampled);
  void WriteLocked(std::string& out) const override;

  // Constant after construction.
  const std::string trace_id_;
  const std::string parent_id_;
  const bool sampled_;

  mutable std::mutex mu_;  // guards every entity of this tree
  std::string origin_, user_, service_version_;  // guarded by mu_

  friend class Entity;
};

// X-Ray's name rules applied: at most 200 characters, disallowed ASCII characters replaced by '_'.
std::string SanitizeName(std::string_view name);

}  // namespace xray
