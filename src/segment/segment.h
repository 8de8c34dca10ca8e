// The X-Ray segment document: the one home of its rules.
//
// Every path a document enters by (UDP datagrams, PutTraceSegments) and every reader of stored
// documents (the trace store, the service graph, root causes) takes its rules from here: what a
// valid document is, which facts a document carries, and how a called service is named.
//
// A document is accepted when it is a JSON object of at most 64 KB with
//   - trace_id  "1-<8 hex>-<24 hex>"
//   - id        16 hex digits
//   - name      a non-empty string of at most 200 characters
//   - parent_id 16 hex digits, required when "type" is "subsegment" (an independent subsegment)
//   - start_time a finite number of epoch seconds within [kMinTime, kMaxTime]
//   - end_time  absent or null, or a finite number within the same bounds and not before start_time.
// The time bounds are xrayd's, not AWS's (AWS documents none): 2000-01-01T00:00:00Z to
// 9999-12-31T23:59:59Z. They catch start_time sent in milliseconds or microseconds (SDK bugs seen
// in the wild), which would otherwise be stored and break every later listing that covers it
// (Python's datetime, and so boto3 and the AWS CLI, stop at year 9999). Nested subsegments (down to
// depth 64, as far as the graph readers walk) may leave their times out, but a start_time or end_time
// they give must be within the same bounds (graph nodes and edges report them); their order is not
// checked (a nested end before its start only skews a statistic).
//
// Parser owns a simdjson parser and its scratch memory: one per thread, not thread-safe.
// The free functions are pure and thread-safe.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/reasons.h"

namespace xrayd::segment {

inline constexpr size_t kMaxDocumentBytes = 64 * 1024;  // X-Ray's per-document limit
inline constexpr size_t kPadding = simdjson::SIMDJSON_PADDING;
inline constexpr size_t kMaxNameChars = 200;
inline constexpr double kMinTime = 946684800.0;     // 2000-01-01T00:00:00Z
inline constexpr double kMaxTime = 253402300799.0;  // 9999-12-31T23:59:59Z

// A service a document calls: a subsegment (at any depth) in the "remote" or "aws" namespace.
struct CalledService {
  std::string name;
  std::string type;  // InferredServiceType(namespace, name)
  bool error = false, fault = false, throttle = false;  // the calling subsegment's own flags
};

// One exception of an entity's cause.exceptions list.
struct Exception {
  std::string type = "unknown";          // "type", or "unknown" when not a string
  std::optional<std::string> message;   // "message", when a string
};

// One (sub)segment of a document's tree: the document itself or a nested subsegment.
struct Entity {
  std::string id, name, ns;  // ns: "namespace"
  int parent = -1;           // index in Facts::entities of the enclosing entity; -1 for the document
  std::vector<int> children;  // indices in Facts::entities, in document order
  std::optional<double> start_time, end_time;
  bool error = false, fault = false, throttle = false;  // this entity's own flags
  std::vector<Exception> exceptions;                    // cause.exceptions
};

struct Annotation {
  std::string key;
  std::string value_json;  // a JSON string, number or boolean, as sent (minified)
};

// What one valid document says, extracted in the same parse that validated it.
struct Facts {
  std::string trace_id, id, parent_id, name, origin, user;
  bool independent_subsegment = false;  // "type": "subsegment"
  bool in_progress = false;
  double start_time = 0;
  std::optional<double> end_time;
  bool error = false, fault = false, throttle = false;              // anywhere in the tree
  bool own_error = false, own_fault = false, own_throttle = false;  // the document's top level
  std::string http_url, http_method, user_agent, client_ip;        // http.request
  std::optional<int> http_status;                                   // http.response.status
  std::vector<Annotation> annotations;                              // every level of the tree
  // Nested subsegments that carry an end_time and are not in progress: they supersede in-progress
  // copies of themselves streamed earlier as independent subsegments.
  std::vector<std::string> embedded_complete_ids;
  // Services called from any level, named as the service graph names them when they send no
  // segment of their own.
  std::vector<CalledService> called_services;
  // The document's tree: entities[0] is the document itself, then its nested subsegments in
  // document order (depth first), down to depth 64. What the service graph and root causes read.
  std::vector<Entity> entities;
};

struct Verdict {
  std::optional<RejectReason> reject;  // set when the document is refused
  std::string_view detail;             // a short static explanation when refused (names the rule)
  std::string_view document;           // when accepted: the document, trailing whitespace trimmed
  bool ok() const { return !reject; }
};

class Parser {
 public:
  Parser();

  // Validates one document. `data` must be followed by kPadding readable bytes and stay valid
  // while the returned view is used.
  Verdict Validate(const char* data, size_t len);
  // Validates and, when valid, fills `facts` (left unspecified when refused). Same contract.
  Verdict Parse(const char* data, size_t len, Facts* facts);
  // The same for a document without padding (copied once into padded memory).
  Verdict Parse(std::string_view doc, Facts* facts);
  // The facts of a document read back from the store, or assembled from stored ones (streamed
  // subsegments merged in, so possibly over kMaxDocumentBytes): the same rules but no size bound.
  Verdict FactsOf(std::string_view doc, Facts* facts);

 private:
  Verdict Load(const char* data, size_t len, bool padded, simdjson::dom::object* out, size_t max_bytes = kMaxDocumentBytes);

  simdjson::dom::parser parser_;
  std::string scratch_;  // padded copy for unpadded input
};

// The rules, exposed for the other readers of documents and for tests.
bool IsValidTraceId(std::string_view s);
bool IsHexId(std::string_view s, size_t digits);
bool IsPlausibleTime(double epoch_seconds);  // finite and within [kMinTime, kMaxTime]
// A subsegment in one of these namespaces is a call to another service.
bool IsCallNamespace(std::string_view ns);
// The type of the node a call in namespace `ns` to `name` makes when the callee sends no segment
// of its own: "AWS::<name>" for the aws namespace (AWS::DynamoDB), "remote" otherwise.
std::string InferredServiceType(std::string_view ns, std::string_view name);
// The epoch seconds in a trace id's second field (0 when malformed).
int64_t TraceIdEpoch(std::string_view trace_id);

}  // namespace xrayd::segment
