#include "otlp/xray_to_otlp.h"

#include <nlohmann/json.hpp>

#include "otlp/conventions.h"
#include "segment/segment.h"

namespace xrayd::otlp {
namespace {

using nlohmann::json;
using Attrs = google::protobuf::RepeatedPtrField<pb::KeyValue>;

constexpr int kMaxDepth = 64;  // as deep as segment::Parser lets nested subsegments go

const json* Field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

void PutString(Attrs* attrs, std::string_view key, const json* v) {
  if (!v || !v->is_string()) return;
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_string_value(v->get<std::string>());
}

void PutString(Attrs* attrs, std::string_view key, std::string value) {
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_string_value(std::move(value));
}

void PutBool(Attrs* attrs, std::string_view key, const json* v) {
  if (!v || !v->is_boolean()) return;
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_bool_value(v->get<bool>());
}

void PutInt(Attrs* attrs, std::string_view key, const json* v) {
  if (!v || !v->is_number()) return;
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_int_value(v->is_number_float() ? static_cast<int64_t>(v->get<double>())
                                                           : v->get<int64_t>());
}

// A JSON scalar as an AnyValue (annotations: string, number or boolean).
bool ScalarValue(const json& v, pb::AnyValue* out) {
  if (v.is_string()) out->set_string_value(v.get<std::string>());
  else if (v.is_boolean()) out->set_bool_value(v.get<bool>());
  else if (v.is_number_integer()) out->set_int_value(v.get<int64_t>());
  else if (v.is_number_float()) out->set_double_value(v.get<double>());
  else return false;
  return true;
}

// The resource: who sent the document (service, cloud, SDK), from its top level only.
void FillResource(const json& doc, pb::Resource* resource) {
  Attrs* a = resource->mutable_attributes();
  PutString(a, attr::kServiceName, Field(doc, "name"));
  if (const json* service = Field(doc, "service"); service && service->is_object()) {
    PutString(a, attr::kServiceVersion, Field(*service, "version"));
    PutString(a, attr::kRuntimeName, Field(*service, "runtime"));
    PutString(a, attr::kRuntimeVersion, Field(*service, "runtime_version"));
  }
  const json* origin = Field(doc, "origin");
  const json* aws = Field(doc, "aws");
  if (aws && !aws->is_object()) aws = nullptr;
  std::optional<Platform> platform;
  if (origin && origin->is_string()) platform = PlatformForOrigin(origin->get<std::string>());
  if (aws || platform) PutString(a, attr::kCloudProvider, std::string("aws"));
  if (platform) {
    PutString(a, attr::kCloudPlatform, std::string(platform->platform));
    if (!platform->ecs_launch_type.empty())
      PutString(a, attr::kEcsLaunchType, std::string(platform->ecs_launch_type));
  }
  PutString(a, attr::kResourceArn, Field(doc, "resource_arn"));
  if (!aws) return;
  PutString(a, attr::kCloudAccountId, Field(*aws, "account_id"));
  if (const json* ec2 = Field(*aws, "ec2"); ec2 && ec2->is_object()) {
    PutString(a, attr::kCloudZone, Field(*ec2, "availability_zone"));
    PutString(a, attr::kHostId, Field(*ec2, "instance_id"));
    PutString(a, attr::kHostType, Field(*ec2, "instance_size"));
    PutString(a, attr::kHostImageId, Field(*ec2, "ami_id"));
  }
  if (const json* ecs = Field(*aws, "ecs"); ecs && ecs->is_object()) {
    PutString(a, attr::kContainerName, Field(*ecs, "container"));
    PutString(a, attr::kContainerId, Field(*ecs, "container_id"));
  }
  if (const json* eks = Field(*aws, "eks"); eks && eks->is_object()) {
    PutString(a, attr::kK8sCluster, Field(*eks, "cluster_name"));
    PutString(a, attr::kK8sPod, Field(*eks, "pod"));
    PutString(a, attr::kContainerId, Field(*eks, "container_id"));
  }
  if (const json* eb = Field(*aws, "elastic_beanstalk"); eb && eb->is_object()) {
    PutString(a, attr::kServiceNamespace, Field(*eb, "environment_name"));
    if (const json* d = Field(*eb, "deployment_id"); d && d->is_number_integer())
      PutString(a, attr::kServiceInstanceId, std::to_string(d->get<int64_t>()));
  }
  if (const json* xr = Field(*aws, "xray"); xr && xr->is_object()) {
    PutString(a, attr::kSdkName, Field(*xr, "sdk"));
    PutString(a, attr::kSdkVersion, Field(*xr, "sdk_version"));
    // "X-Ray for Go" -> "Go"; the Node SDK names itself "X-Ray for Node.js".
    if (const json* sdk = Field(*xr, "sdk"); sdk && sdk->is_string()) {
      std::string s = sdk->get<std::string>();
      if (size_t at = s.find("for "); at != std::string::npos)
        PutString(a, attr::kSdkLanguage, s.substr(at + 4));
    }
  }
}

void AddHttp(const json& seg, Attrs* a) {
  const json* http = Field(seg, "http");
  if (!http || !http->is_object()) return;
  if (const json* req = Field(*http, "request"); req && req->is_object()) {
    PutString(a, attr::kHttpMethod, Field(*req, "method"));
    PutString(a, attr::kHttpUrl, Field(*req, "url"));
    PutString(a, attr::kHttpUserAgent, Field(*req, "user_agent"));
    PutString(a, attr::kHttpClientIp, Field(*req, "client_ip"));
    PutBool(a, attr::kXForwardedFor, Field(*req, "x_forwarded_for"));
    PutBool(a, attr::kTraced, Field(*req, "traced"));
  }
  if (const json* resp = Field(*http, "response"); resp && resp->is_object()) {
    PutInt(a, attr::kHttpStatus, Field(*resp, "status"));
    PutInt(a, attr::kHttpContentLength, Field(*resp, "content_length"));
  }
}

void AddAws(const json& seg, Attrs* a) {
  const json* aws = Field(seg, "aws");
  if (!aws || !aws->is_object()) return;
  PutString(a, attr::kAwsAccount, Field(*aws, "account_id"));
  PutString(a, attr::kAwsOperation, Field(*aws, "operation"));
  PutString(a, attr::kAwsRegion, Field(*aws, "region"));
  PutString(a, attr::kAwsRequestId, Field(*aws, "request_id"));
  PutString(a, attr::kAwsQueueUrl, Field(*aws, "queue_url"));
  PutString(a, attr::kAwsTableName, Field(*aws, "table_name"));
  PutInt(a, attr::kAwsRetries, Field(*aws, "retries"));
}

// sql.url "scheme://host:port/db?params" -> db.connection_string "scheme://host:port" + db.name "db".
void AddSql(const json& seg, Attrs* a) {
  const json* sql = Field(seg, "sql");
  if (!sql || !sql->is_object()) return;
  if (const json* url = Field(*sql, "url"); url && url->is_string()) {
    std::string u = url->get<std::string>();
    size_t scheme = u.find("//");
    size_t slash = scheme == std::string::npos ? std::string::npos : u.find('/', scheme + 2);
    if (slash != std::string::npos && slash + 1 < u.size()) {
      std::string db = u.substr(slash + 1);
      db = db.substr(0, db.find('?'));
      PutString(a, attr::kDbConnection, u.substr(0, slash));
      PutString(a, attr::kDbName, db);
    } else {
      PutString(a, attr::kDbConnection, u);
    }
  }
  PutString(a, attr::kDbSystem, Field(*sql, "database_type"));
  PutString(a, attr::kDbStatement, Field(*sql, "sanitized_query"));
  PutString(a, attr::kDbUser, Field(*sql, "user"));
}

// Annotations keep their type; their keys are listed in aws.xray.annotations so that the X-Ray
// exporter (ours and the Collector's) indexes them again. Metadata: one JSON string per namespace.
void AddAnnotationsAndMetadata(const json& seg, Attrs* a) {
  if (const json* ann = Field(seg, "annotations"); ann && ann->is_object()) {
    pb::ArrayValue keys;
    for (const auto& [key, value] : ann->items()) {
      pb::AnyValue v;
      if (!ScalarValue(value, &v)) continue;
      auto* kv = a->Add();
      kv->set_key(key);
      *kv->mutable_value() = std::move(v);
      keys.add_values()->set_string_value(key);
    }
    if (keys.values_size() > 0) {
      auto* kv = a->Add();
      kv->set_key(std::string(attr::kAnnotations));
      *kv->mutable_value()->mutable_array_value() = std::move(keys);
    }
  }
  if (const json* meta = Field(seg, "metadata"); meta && meta->is_object())
    for (const auto& [ns, value] : meta->items())
      PutString(a, std::string(attr::kMetadataPrefix) + ns, value.dump());
}

// X-Ray's exception frames -> one stack-trace string, "<type>: <message>\n\tat <label>(<path>: <line>)\n"
// per frame, the Collector receiver's format (the exporter side parses it back).
std::string StackTrace(const json& ex) {
  auto str = [](const json* v) { return v && v->is_string() ? v->get<std::string>() : std::string(); };
  std::string out = str(Field(ex, "type")) + ": " + str(Field(ex, "message")) + "\n";
  for (const json& f : *Field(ex, "stack")) {
    if (!f.is_object()) continue;
    const json* line = Field(f, "line");
    out += "\tat " + str(Field(f, "label")) + "(" + str(Field(f, "path")) + ": " +
           (line && line->is_number_integer() ? std::to_string(line->get<int64_t>()) : "<unknown>") + ")\n";
  }
  return out;
}

void AddCause(const json& seg, pb::Span* span) {
  const json* cause = Field(seg, "cause");
  if (!cause) return;
  if (cause->is_string()) {  // the id of an exception recorded in another subsegment
    span->mutable_status()->set_message(cause->get<std::string>());
    return;
  }
  if (!cause->is_object()) return;
  const json* exceptions = Field(*cause, "exceptions");
  if (!exceptions || !exceptions->is_array()) return;
  uint64_t when = span->end_time_unix_nano() ? span->end_time_unix_nano() : span->start_time_unix_nano();
  for (const json& ex : *exceptions) {
    if (!ex.is_object()) continue;
    auto* ev = span->add_events();
    ev->set_name(std::string(attr::kExceptionEvent));
    ev->set_time_unix_nano(when);
    Attrs* a = ev->mutable_attributes();
    PutString(a, attr::kExceptionId, Field(ex, "id"));
    PutString(a, attr::kExceptionMessage, Field(ex, "message"));
    PutString(a, attr::kExceptionType, Field(ex, "type"));
    PutBool(a, attr::kExceptionRemote, Field(ex, "remote"));
    PutInt(a, attr::kExceptionTruncated, Field(ex, "truncated"));
    PutInt(a, attr::kExceptionSkipped, Field(ex, "skipped"));
    PutString(a, attr::kExceptionCause, Field(ex, "cause"));
    if (const json* stack = Field(ex, "stack"); stack && stack->is_array() && !stack->empty())
      PutString(a, attr::kExceptionStack, StackTrace(ex));
  }
}

bool Flag(const json& seg, const char* key) {
  const json* v = Field(seg, key);
  return v && v->is_boolean() && v->get<bool>();
}

// Span kind: a document's top level is SERVER (it served a request); a subsegment in the "aws" or
// "remote" namespace is CLIENT (a call out), or SERVER when it records a client_ip; else INTERNAL.
pb::Span::SpanKind KindOf(const json& seg, bool top_level_segment) {
  if (top_level_segment) return pb::Span::SPAN_KIND_SERVER;
  const json* ns = Field(seg, "namespace");
  if (ns && ns->is_string() && (*ns == "aws" || *ns == "remote")) return pb::Span::SPAN_KIND_CLIENT;
  if (const json* http = Field(seg, "http"); http && http->is_object())
    if (const json* req = Field(*http, "request"); req && req->is_object() && Field(*req, "client_ip"))
      return pb::Span::SPAN_KIND_SERVER;
  return pb::Span::SPAN_KIND_INTERNAL;
}

Status AddSpans(const json& seg, const std::string& trace_id, const std::string* parent_id,
                bool top_level_segment, int depth, pb::ScopeSpans* out) {
  if (depth > kMaxDepth) return Error::InvalidArgument("subsegments nested too deep");
  const json* id = Field(seg, "id");
  const json* name = Field(seg, "name");
  std::optional<std::string> span_id;
  if (id && id->is_string()) span_id = SpanIdBytes(id->get<std::string>());
  if (!span_id) return Error::InvalidArgument("a (sub)segment without a 16-hex-digit id");
  if (!name || !name->is_string()) return Error::InvalidArgument("a (sub)segment without a name");
  pb::Span* span = out->add_spans();
  span->set_trace_id(trace_id);
  span->set_span_id(*span_id);
  if (parent_id) span->set_parent_span_id(*parent_id);
  span->set_name(name->get<std::string>());
  span->set_kind(KindOf(seg, top_level_segment));
  if (const json* t = Field(seg, "start_time"); t && t->is_number())
    span->set_start_time_unix_nano(SecondsToNanos(t->get<double>()));
  if (const json* t = Field(seg, "end_time"); t && t->is_number())
    span->set_end_time_unix_nano(SecondsToNanos(t->get<double>()));
  Attrs* a = span->mutable_attributes();
  PutBool(a, attr::kInProgress, Field(seg, "in_progress"));
  PutString(a, attr::kEnduserId, Field(seg, "user"));
  if (const json* ns = Field(seg, "namespace"); ns && *ns == "aws") PutString(a, attr::kAwsService, name);
  // A database call is named for its database ("orders@db"); peer.service keeps the name, which the
  // X-Ray exporter would otherwise rebuild from db.name and the connection string.
  if (!top_level_segment && Field(seg, "sql")) PutString(a, attr::kPeerService, name);
  AddHttp(seg, a);
  AddAws(seg, a);
  AddSql(seg, a);
  AddAnnotationsAndMetadata(seg, a);
  if (Flag(seg, "fault") || Flag(seg, "error") || Flag(seg, "throttle"))
    span->mutable_status()->set_code(pb::Status::STATUS_CODE_ERROR);
  AddCause(seg, span);
  const json* subs = Field(seg, "subsegments");
  if (!subs || !subs->is_array()) return OkStatus();
  std::string self = *span_id;  // `span` may move as the repeated field grows
  for (const json& sub : *subs) {
    if (!sub.is_object()) continue;
    if (Status s = AddSpans(sub, trace_id, &self, false, depth + 1, out); !s.ok()) return s;
  }
  return OkStatus();
}

}  // namespace

Status AppendSegment(std::string_view document, pb::ExportTraceServiceRequest* request,
                     ToOtlpStats* stats) {
  auto invalid = [&](std::string why) -> Status {
    ++stats->invalid;
    return Error::InvalidArgument(std::move(why));
  };
  if (document.size() > segment::kMaxDocumentBytes) return invalid("document over 64 KB");
  json doc = json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return invalid("not a JSON object");
  if (Flag(doc, "in_progress")) {
    ++stats->in_progress;
    return OkStatus();
  }
  const json* tid = Field(doc, "trace_id");
  std::optional<std::string> trace_id;
  if (tid && tid->is_string()) trace_id = TraceIdBytes(tid->get<std::string>());
  if (!trace_id) return invalid("no X-Ray trace_id");
  std::optional<std::string> parent;
  if (const json* p = Field(doc, "parent_id"); p && p->is_string()) {
    parent = SpanIdBytes(p->get<std::string>());
    if (!parent) return invalid("parent_id is not 16 hex digits");
  }
  const json* type = Field(doc, "type");
  bool independent_subsegment = type && *type == "subsegment";

  pb::ResourceSpans rs;
  FillResource(doc, rs.mutable_resource());
  pb::ScopeSpans* scope = rs.add_scope_spans();
  scope->mutable_scope()->set_name("xrayd");
  scope->mutable_scope()->set_version(XRAYD_VERSION);
  if (Status s = AddSpans(doc, *trace_id, parent ? &*parent : nullptr, !independent_subsegment, 0,
                          scope);
      !s.ok())
    return invalid(s.error().message);
  ++stats->documents;
  stats->spans += static_cast<size_t>(scope->spans_size());
  *request->add_resource_spans() = std::move(rs);
  return OkStatus();
}

pb::ExportTraceServiceRequest SegmentsToRequest(const std::vector<std::string>& documents,
                                                ToOtlpStats* stats) {
  pb::ExportTraceServiceRequest request;
  for (const std::string& doc : documents) (void)AppendSegment(doc, &request, stats);
  return request;
}

}  // namespace xrayd::otlp
