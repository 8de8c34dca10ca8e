#include "otlp/otlp_to_xray.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/json_depth.h"
#include "otlp/conventions.h"
#include "segment/segment.h"

namespace xrayd::otlp {
namespace {

using nlohmann::json;
using KeyValues = google::protobuf::RepeatedPtrField<pb::KeyValue>;

// A span's (or resource's) attributes, with what the mapping took from them marked, so that the rest
// can go to metadata.
class AttrView {
 public:
  explicit AttrView(const KeyValues& kvs) : kvs_(kvs), used_(static_cast<size_t>(kvs.size()), false) {}

  const pb::AnyValue* Peek(std::string_view key) const {
    for (int i = 0; i < kvs_.size(); ++i)
      if (kvs_[i].key() == key) return &kvs_[i].value();
    return nullptr;
  }
  const pb::AnyValue* Take(std::string_view key) {
    for (int i = 0; i < kvs_.size(); ++i)
      if (kvs_[i].key() == key) {
        used_[static_cast<size_t>(i)] = true;
        return &kvs_[i].value();
      }
    return nullptr;
  }
  // The first of two names present (a 1.x semantic-convention name and its newer replacement).
  const pb::AnyValue* Take(std::string_view key, std::string_view alt) {
    const pb::AnyValue* v = Take(key);
    return v ? v : Take(alt);
  }
  template <typename F>
  void ForEachUnused(F&& f) const {
    for (int i = 0; i < kvs_.size(); ++i)
      if (!used_[static_cast<size_t>(i)]) f(kvs_[i].key(), kvs_[i].value());
  }

 private:
  const KeyValues& kvs_;
  std::vector<bool> used_;
};

std::string Str(const pb::AnyValue* v) {
  return v && v->value_case() == pb::AnyValue::kStringValue ? v->string_value() : std::string();
}

// An AnyValue as plain JSON (metadata); bytes as hex.
json Raw(const pb::AnyValue& v, int depth = 0) {
  if (depth > 32) return nullptr;
  switch (v.value_case()) {
    case pb::AnyValue::kStringValue: return v.string_value();
    case pb::AnyValue::kBoolValue: return v.bool_value();
    case pb::AnyValue::kIntValue: return v.int_value();
    case pb::AnyValue::kDoubleValue: return v.double_value();
    case pb::AnyValue::kBytesValue: return Hex(v.bytes_value());
    case pb::AnyValue::kArrayValue: {
      json a = json::array();
      for (const auto& e : v.array_value().values()) a.push_back(Raw(e, depth + 1));
      return a;
    }
    case pb::AnyValue::kKvlistValue: {
      json o = json::object();
      for (const auto& kv : v.kvlist_value().values()) o[kv.key()] = Raw(kv.value(), depth + 1);
      return o;
    }
    default: return nullptr;
  }
}

// A scalar for an annotation; null when the value is not one.
json Scalar(const pb::AnyValue& v) {
  switch (v.value_case()) {
    case pb::AnyValue::kStringValue: return v.string_value();
    case pb::AnyValue::kBoolValue: return v.bool_value();
    case pb::AnyValue::kIntValue: return v.int_value();
    case pb::AnyValue::kDoubleValue: return v.double_value();
    default: return nullptr;
  }
}

void SetString(json& obj, const char* key, const pb::AnyValue* v) {
  if (v && v->value_case() == pb::AnyValue::kStringValue) obj[key] = v->string_value();
}
void SetInt(json& obj, const char* key, const pb::AnyValue* v) {
  if (!v) return;
  if (v->value_case() == pb::AnyValue::kIntValue) obj[key] = v->int_value();
  else if (v->value_case() == pb::AnyValue::kDoubleValue) obj[key] = static_cast<int64_t>(v->double_value());
}
void SetBool(json& obj, const char* key, const pb::AnyValue* v) {
  if (v && v->value_case() == pb::AnyValue::kBoolValue) obj[key] = v->bool_value();
}

// Annotation keys: X-Ray takes [A-Za-z0-9_]; anything else becomes '_' (as the exporter does).
std::string AnnotationKey(std::string_view key) {
  std::string out(key);
  for (char& c : out)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) c = '_';
  return out;
}

// Segment names: X-Ray's allowed characters (letters, digits, whitespace and _ . : / % & # = + \ - @),
// at most 200; "span" when nothing is left. Non-ASCII bytes are kept (letters in other scripts).
std::string SegmentName(std::string_view name) {
  static constexpr std::string_view kAllowed = " _.:/%&#=+\\-@,";
  std::string out;
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        kAllowed.find(c) != std::string_view::npos)
      out.push_back(c);
  }
  if (out.size() > segment::kMaxNameChars) {
    out.resize(segment::kMaxNameChars);
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
  }
  return out.empty() ? "span" : out;
}

// aws.xray.metadata.* string values parsed as JSON only up to this nesting (deeper: kept as text).
constexpr int kMaxMetadataDepth = 64;
constexpr int64_t kMaxTraceAge = 28 * 24 * 3600;
constexpr int64_t kMaxTraceSkew = 5 * 60;

bool IsXrayTraceId(const std::string& id, int64_t now) {
  if (id.size() != 16 || id == std::string(16, '\0')) return false;
  int64_t epoch = 0;
  for (int i = 0; i < 4; ++i) epoch = epoch << 8 | static_cast<unsigned char>(id[static_cast<size_t>(i)]);
  int64_t delta = now - epoch;
  return delta <= kMaxTraceAge && delta >= -kMaxTraceSkew;
}

struct Context {
  const ToXrayOptions& options;
  const pb::Resource& resource;
};

// Span attributes -> the segment's http block.
void MapHttp(AttrView& a, bool server, json& seg) {
  json req = json::object(), resp = json::object();
  SetString(req, "method", a.Take(attr::kHttpMethod, attr::kHttpRequestMethod));
  SetString(req, "url", a.Take(attr::kHttpUrl, attr::kUrlFull));
  SetString(req, "user_agent", a.Take(attr::kHttpUserAgent, attr::kUserAgentOriginal));
  SetString(req, "client_ip", server ? a.Take(attr::kHttpClientIp, attr::kClientAddress)
                                     : a.Take(attr::kHttpClientIp));
  SetBool(req, "x_forwarded_for", a.Take(attr::kXForwardedFor));
  SetBool(req, "traced", a.Take(attr::kTraced));
  SetInt(resp, "status", a.Take(attr::kHttpStatus, attr::kHttpResponseStatus));
  SetInt(resp, "content_length", a.Take(attr::kHttpContentLength));
  if (req.empty() && resp.empty()) return;
  json& http = seg["http"];
  if (!req.empty()) http["request"] = std::move(req);
  if (!resp.empty()) http["response"] = std::move(resp);
}

// Span attributes (and, for a segment, the resource) -> the aws block.
void MapAws(AttrView& a, AttrView* res, json& seg) {
  json aws = json::object();
  SetString(aws, "account_id", a.Take(attr::kAwsAccount));
  SetString(aws, "operation", a.Take(attr::kAwsOperation));
  SetString(aws, "region", a.Take(attr::kAwsRegion));
  SetString(aws, "request_id", a.Take(attr::kAwsRequestId));
  SetString(aws, "queue_url", a.Take(attr::kAwsQueueUrl));
  SetString(aws, "table_name", a.Take(attr::kAwsTableName));
  SetInt(aws, "retries", a.Take(attr::kAwsRetries));
  if (res) {
    if (const pb::AnyValue* acct = res->Take(attr::kCloudAccountId); acct && !aws.contains("account_id"))
      SetString(aws, "account_id", acct);
    json ec2 = json::object(), ecs = json::object(), eks = json::object(), eb = json::object(),
         xr = json::object();
    std::string platform = Str(res->Peek(attr::kCloudPlatform));
    const pb::AnyValue* zone = res->Take(attr::kCloudZone);
    SetString(platform == "aws_ecs" ? ecs : ec2, "availability_zone", zone);
    SetString(ec2, "instance_id", res->Take(attr::kHostId));
    SetString(ec2, "instance_size", res->Take(attr::kHostType));
    SetString(ec2, "ami_id", res->Take(attr::kHostImageId));
    SetString(ecs, "container", res->Take(attr::kContainerName));
    const pb::AnyValue* container_id = res->Take(attr::kContainerId);
    SetString(platform == "aws_eks" ? eks : ecs, "container_id", container_id);
    SetString(eks, "cluster_name", res->Take(attr::kK8sCluster));
    SetString(eks, "pod", res->Take(attr::kK8sPod));
    SetString(eb, "environment_name", res->Take(attr::kServiceNamespace));
    if (const pb::AnyValue* d = res->Take(attr::kServiceInstanceId)) {
      std::string s = Str(d);
      if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 18)
        eb["deployment_id"] = std::stoll(s);
    }
    std::string sdk = Str(res->Take(attr::kSdkName)), lang = Str(res->Take(attr::kSdkLanguage));
    if (!sdk.empty()) xr["sdk"] = sdk.find(" for ") != std::string::npos || lang.empty() ? sdk : sdk + " for " + lang;
    SetString(xr, "sdk_version", res->Take(attr::kSdkVersion));
    for (auto [key, obj] : {std::pair{"ec2", &ec2}, {"ecs", &ecs}, {"eks", &eks},
                            {"elastic_beanstalk", &eb}, {"xray", &xr}})
      if (!obj->empty()) aws[key] = std::move(*obj);
  }
  if (!aws.empty()) seg["aws"] = std::move(aws);
}

void MapSql(AttrView& a, json& seg) {
  const pb::AnyValue* conn = a.Peek(attr::kDbConnection);
  const pb::AnyValue* stmt = a.Peek(attr::kDbStatement);
  const pb::AnyValue* user = a.Peek(attr::kDbUser);
  if (!conn && !stmt && !user) return;  // a database span without SQL facts keeps its db.* in metadata
  json sql = json::object();
  std::string url = Str(a.Take(attr::kDbConnection));
  if (std::string db = Str(a.Peek(attr::kDbName)); !url.empty() && !db.empty()) {
    url += "/" + db;
    a.Take(attr::kDbName);
  }
  if (!url.empty()) sql["url"] = url;
  SetString(sql, "database_type", a.Take(attr::kDbSystem));
  SetString(sql, "sanitized_query", a.Take(attr::kDbStatement));
  SetString(sql, "user", a.Take(attr::kDbUser));
  seg["sql"] = std::move(sql);
}

// "<type>: <message>\n\tat <label>(<path>: <line>)\n"... -> X-Ray stack frames (our own format,
// the one the X-Ray -> OTLP direction writes); other formats give no frames.
json ParseStack(const std::string& trace) {
  json frames = json::array();
  size_t pos = trace.find('\n');
  while (pos != std::string::npos && pos + 1 < trace.size()) {
    size_t end = trace.find('\n', pos + 1);
    std::string line = trace.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
    pos = end;
    if (line.rfind("\tat ", 0) != 0 || line.back() != ')') continue;
    size_t open = line.find('(');
    size_t colon = line.rfind(": ");
    if (open == std::string::npos || colon == std::string::npos || colon < open) continue;
    json f = json::object();
    f["label"] = line.substr(4, open - 4);
    f["path"] = line.substr(open + 1, colon - open - 1);
    std::string num = line.substr(colon + 2, line.size() - colon - 3);
    if (!num.empty() && num.size() < 10 && num.find_first_not_of("0123456789") == std::string::npos)
      f["line"] = std::stoi(num);
    frames.push_back(std::move(f));
  }
  return frames;
}

// Exception events -> cause.exceptions; a bare 16-hex status message -> cause (an exception id).
void MapCause(const pb::Span& span, json& seg) {
  json exceptions = json::array();
  int n = 0;
  for (const auto& ev : span.events()) {
    if (ev.name() != attr::kExceptionEvent) continue;
    AttrView a(ev.attributes());
    json ex = json::object();
    std::string id = Str(a.Take(attr::kExceptionId));
    if (!SpanIdBytes(id)) {  // X-Ray wants 16 hex digits: derive one from the span id and position
      std::string b = span.span_id();
      b.resize(8, '\0');
      b[7] = static_cast<char>(b[7] ^ static_cast<char>(++n));
      id = Hex(b);
    }
    ex["id"] = id;
    SetString(ex, "message", a.Take(attr::kExceptionMessage));
    SetString(ex, "type", a.Take(attr::kExceptionType));
    SetBool(ex, "remote", a.Take(attr::kExceptionRemote));
    SetInt(ex, "truncated", a.Take(attr::kExceptionTruncated));
    SetInt(ex, "skipped", a.Take(attr::kExceptionSkipped));
    SetString(ex, "cause", a.Take(attr::kExceptionCause));
    if (std::string st = Str(a.Take(attr::kExceptionStack)); !st.empty())
      if (json frames = ParseStack(st); !frames.empty()) ex["stack"] = std::move(frames);
    exceptions.push_back(std::move(ex));
  }
  if (!exceptions.empty()) seg["cause"] = json{{"exceptions", std::move(exceptions)}};
  else if (SpanIdBytes(span.status().message())) seg["cause"] = span.status().message();
}

// error/fault/throttle from the span status and the HTTP status, as the exporter derives them.
void MapFlags(const pb::Span& span, json& seg) {
  int64_t status = 0;
  if (auto it = seg.find("http"); it != seg.end())
    if (auto r = it->find("response"); r != it->end() && r->contains("status") && (*r)["status"].is_number())
      status = (*r)["status"].get<int64_t>();
  bool is_error = span.status().code() == pb::Status::STATUS_CODE_ERROR;
  if (status >= 400 && status < 500) {
    seg["error"] = true;
    if (status == 429) seg["throttle"] = true;
  } else if (status >= 500 || is_error) {
    seg["fault"] = true;
  }
}

std::string SegmentNameFor(const pb::Span& span, AttrView& a, const Context& ctx, std::string& ns) {
  if (Str(a.Peek(attr::kRpcSystem)) == "aws-api") ns = "aws";
  if (std::string s = Str(a.Take(attr::kPeerService)); !s.empty()) return s;
  if (std::string s = Str(a.Take(attr::kAwsService)); !s.empty()) {
    ns = "aws";
    return s;
  }
  if (std::string db = Str(a.Peek(attr::kDbName)); !db.empty()) {
    std::string conn = Str(a.Peek(attr::kDbConnection));
    if (size_t at = conn.find("//"); at != std::string::npos) {
      std::string host = conn.substr(at + 2);
      host = host.substr(0, host.find_first_of(":/?"));
      if (!host.empty()) return db + "@" + host;
    }
    return db;
  }
  if (span.kind() == pb::Span::SPAN_KIND_SERVER) {
    for (const auto& kv : ctx.resource.attributes())
      if (kv.key() == attr::kServiceName && !kv.value().string_value().empty()) return kv.value().string_value();
  }
  for (std::string_view key : {attr::kRpcService, attr::kHttpHost, attr::kNetPeerName})
    if (std::string s = Str(a.Peek(key)); !s.empty()) return s;
  return span.name();
}

// Annotations and metadata from what the mapping left unused.
void MapRest(AttrView& a, AttrView* res, const ToXrayOptions& opt, json& seg) {
  std::vector<std::string> indexed = opt.indexed_attributes;
  if (const pb::AnyValue* keys = a.Take(attr::kAnnotations);
      keys && keys->value_case() == pb::AnyValue::kArrayValue)
    for (const auto& k : keys->array_value().values())
      if (k.value_case() == pb::AnyValue::kStringValue) indexed.push_back(k.string_value());
  auto is_indexed = [&](std::string_view key) {
    if (opt.index_all_attributes) return true;
    for (const auto& k : indexed)
      if (k == key) return true;
    return false;
  };
  json annotations = json::object(), metadata = json::object(), def = json::object();
  auto place = [&](const std::string& key, const pb::AnyValue& v) {
    // Metadata JSON nested deeper than kMaxMetadataDepth stays a string: the document's dump()
    // recurses per level (a value 200,000 deep overflowed the stack: one OTLP request crashed the daemon).
    if (key.rfind(attr::kMetadataPrefix, 0) == 0 && v.value_case() == pb::AnyValue::kStringValue &&
        JsonNestedWithin(v.string_value(), kMaxMetadataDepth)) {
      json parsed = json::parse(v.string_value(), nullptr, false);
      if (!parsed.is_discarded()) {
        metadata[key.substr(attr::kMetadataPrefix.size())] = std::move(parsed);
        return;
      }
    }
    if (is_indexed(key))
      if (json s = Scalar(v); !s.is_null()) {
        annotations[AnnotationKey(key)] = std::move(s);
        return;
      }
    def[key] = Raw(v);
  };
  a.ForEachUnused(place);
  if (res) res->ForEachUnused([&](const std::string& key, const pb::AnyValue& v) {
    place("otel.resource." + key, v);
  });
  if (!def.empty()) {
    json& d = metadata["default"];
    if (!d.is_object()) d = json::object();
    d.update(def);
  }
  if (!annotations.empty()) seg["annotations"] = std::move(annotations);
  if (!metadata.empty()) seg["metadata"] = std::move(metadata);
}

// One span -> one document, or an error naming why it was dropped (counted by the caller).
std::optional<json> SpanToDocument(const pb::Span& span, const Context& ctx, bool* bad_trace_id) {
  const ToXrayOptions& opt = ctx.options;
  int64_t now = opt.now_epoch_seconds ? opt.now_epoch_seconds
                                      : std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch()).count();
  *bad_trace_id = false;
  if (span.trace_id().size() != 16 || span.trace_id() == std::string(16, '\0') ||
      (!opt.skip_timestamp_validation && !IsXrayTraceId(span.trace_id(), now))) {
    *bad_trace_id = true;
    return std::nullopt;
  }
  if (span.span_id().size() != 8 || span.span_id() == std::string(8, '\0')) return std::nullopt;
  bool has_parent = span.parent_span_id().size() == 8 && span.parent_span_id() != std::string(8, '\0');
  bool subsegment = span.kind() != pb::Span::SPAN_KIND_SERVER && has_parent;
  bool server = span.kind() == pb::Span::SPAN_KIND_SERVER;

  AttrView a(span.attributes());
  AttrView res(ctx.resource.attributes());
  json seg = json::object();
  std::string ns;
  seg["name"] = SegmentName(SegmentNameFor(span, a, ctx, ns));
  seg["id"] = Hex(span.span_id());
  seg["trace_id"] = XrayTraceId(span.trace_id());
  if (has_parent) seg["parent_id"] = Hex(span.parent_span_id());
  if (subsegment) seg["type"] = "subsegment";
  seg["start_time"] = NanosToSeconds(span.start_time_unix_nano());
  if (span.end_time_unix_nano()) seg["end_time"] = NanosToSeconds(span.end_time_unix_nano());
  else seg["in_progress"] = true;
  a.Take(attr::kInProgress);
  if (ns.empty() && span.kind() == pb::Span::SPAN_KIND_CLIENT) ns = "remote";
  if (!ns.empty()) seg["namespace"] = ns;
  SetString(seg, "user", a.Take(attr::kEnduserId));
  MapHttp(a, server, seg);
  MapAws(a, subsegment ? nullptr : &res, seg);
  MapSql(a, seg);
  MapFlags(span, seg);
  MapCause(span, seg);
  if (!subsegment) {
    std::string provider = Str(res.Take(attr::kCloudProvider));
    std::string platform = Str(res.Take(attr::kCloudPlatform));
    std::string launch = Str(res.Take(attr::kEcsLaunchType));
    if (provider.empty() || provider == "aws")
      if (std::string_view origin = OriginForPlatform(platform, launch); !origin.empty()) seg["origin"] = origin;
    res.Take(attr::kServiceName);
    json service = json::object();
    SetString(service, "version", res.Take(attr::kServiceVersion));
    SetString(service, "runtime", res.Take(attr::kRuntimeName));
    SetString(service, "runtime_version", res.Take(attr::kRuntimeVersion));
    if (!service.empty()) seg["service"] = std::move(service);
    SetString(seg, "resource_arn", res.Take(attr::kResourceArn));
  }
  MapRest(a, subsegment ? nullptr : &res, opt, seg);
  return seg;
}


// The documents of one ResourceSpans: a subsegment whose parent span is in the same ResourceSpans
// (same service, same trace) is nested in its parent's "subsegments" instead of standing alone, so
// that readers that look only inside documents (service graphs of calls to AWS and remote services)
// see it. Parent chains longer than 64 or cycles leave the spans concerned as separate documents.
class Nester {
 public:
  void Add(json doc) { docs_.push_back(std::move(doc)); }

  // Calls emit(document, spans in it) for every top-level document.
  template <typename F>
  void Emit(F&& emit) {
    std::unordered_map<std::string, size_t> by_id;
    for (size_t i = 0; i < docs_.size(); ++i) by_id.emplace(docs_[i]["id"].get<std::string>(), i);
    std::vector<std::optional<size_t>> parent(docs_.size());
    for (size_t i = 0; i < docs_.size(); ++i) {
      if (docs_[i].value("type", "") != "subsegment") continue;
      auto it = by_id.find(docs_[i]["parent_id"].get<std::string>());
      if (it != by_id.end() && it->second != i && docs_[it->second]["trace_id"] == docs_[i]["trace_id"])
        parent[i] = it->second;
    }
    // Keep a link only when following links from here reaches a top-level document within 64 steps.
    for (size_t i = 0; i < docs_.size(); ++i) {
      size_t cur = i;
      int steps = 0;
      while (parent[cur] && steps <= 64) cur = *parent[cur], ++steps;
      if (parent[cur]) parent[i].reset();
    }
    std::vector<std::vector<size_t>> children(docs_.size());
    for (size_t i = 0; i < docs_.size(); ++i)
      if (parent[i]) children[*parent[i]].push_back(i);
    for (size_t i = 0; i < docs_.size(); ++i) {
      if (parent[i]) continue;
      size_t spans = 0;
      json doc = Build(i, children, &spans);
      emit(doc, spans);
    }
  }

 private:
  json Build(size_t i, const std::vector<std::vector<size_t>>& children, size_t* spans) {
    json doc = std::move(docs_[i]);
    ++*spans;
    for (size_t c : children[i]) {
      json child = Build(c, children, spans);
      for (const char* k : {"trace_id", "type", "parent_id"}) child.erase(k);
      doc["subsegments"].push_back(std::move(child));
    }
    return doc;
  }

  std::vector<json> docs_;
};

}  // namespace

std::vector<std::string> RequestToSegments(const pb::ExportTraceServiceRequest& request,
                                           const ToXrayOptions& options, ToXrayStats* stats) {
  thread_local segment::Parser parser;
  std::vector<std::string> out;
  for (const auto& rs : request.resource_spans()) {
    Context ctx{options, rs.resource()};
    Nester nester;
    for (const auto& ss : rs.scope_spans())
      for (const auto& span : ss.spans()) {
        ++stats->spans;
        bool bad_trace_id = false;
        std::optional<json> doc = SpanToDocument(span, ctx, &bad_trace_id);
        if (!doc) {
          ++(bad_trace_id ? stats->invalid_trace_id : stats->invalid_span);
          continue;
        }
        nester.Add(std::move(*doc));
      }
    nester.Emit([&](const json& doc, size_t spans) {
      std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace);
      segment::Facts facts;
      if (!parser.Parse(text, &facts).ok()) {
        stats->invalid_span += spans;
        return;
      }
      ++stats->documents;
      out.push_back(std::move(text));
    });
  }
  return out;
}

}  // namespace xrayd::otlp
