#include "otlp/otlp_to_xray.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "otlp/conventions.h"
#include "otlp/test_data.h"
#include "otlp/xray_to_otlp.h"
#include "segment/segment.h"

namespace xrayd::otlp {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1700000100;  // the test spans' "now"
const std::string kTraceHex = "6553f100e7d1852db8c4fd35d88bf49a";  // epoch 0x6553f100 = 1700000000

void Put(pb::Span* s, const std::string& k, const std::string& v) {
  auto* kv = s->add_attributes();
  kv->set_key(k);
  kv->mutable_value()->set_string_value(v);
}
void PutInt(pb::Span* s, const std::string& k, int64_t v) {
  auto* kv = s->add_attributes();
  kv->set_key(k);
  kv->mutable_value()->set_int_value(v);
}

pb::Span* NewSpan(pb::ExportTraceServiceRequest* req, const std::string& id, const std::string& parent,
                  pb::Span::SpanKind kind) {
  if (req->resource_spans_size() == 0) {
    auto* kv = req->add_resource_spans()->mutable_resource()->add_attributes();
    kv->set_key("service.name");
    kv->mutable_value()->set_string_value("cart");
    auto* plat = req->mutable_resource_spans(0)->mutable_resource()->add_attributes();
    plat->set_key("cloud.platform");
    plat->mutable_value()->set_string_value("aws_eks");
    req->mutable_resource_spans(0)->add_scope_spans();
  }
  pb::Span* s = req->mutable_resource_spans(0)->mutable_scope_spans(0)->add_spans();
  s->set_trace_id(*Unhex(kTraceHex));
  s->set_span_id(*Unhex(id));
  if (!parent.empty()) s->set_parent_span_id(*Unhex(parent));
  s->set_kind(kind);
  s->set_name("op " + id);
  s->set_start_time_unix_nano(1700000000000000000ull);
  s->set_end_time_unix_nano(1700000000250000000ull);
  return s;
}

std::vector<json> ToDocs(const pb::ExportTraceServiceRequest& req, ToXrayOptions opt, ToXrayStats* stats) {
  opt.now_epoch_seconds = kNow;
  std::vector<json> out;
  for (const auto& d : RequestToSegments(req, opt, stats)) out.push_back(json::parse(d));
  return out;
}

TEST(OtlpToXray, SpanKindDecidesSegmentOrSubsegment) {
  pb::ExportTraceServiceRequest req;
  NewSpan(&req, "00000000000000a1", "", pb::Span::SPAN_KIND_SERVER);
  pb::Span* client = NewSpan(&req, "00000000000000a2", "00000000000000a1", pb::Span::SPAN_KIND_CLIENT);
  Put(client, "http.url", "http://inventory:8080/x");
  Put(client, "peer.service", "inventory");
  PutInt(client, "http.status_code", 429);
  pb::Span* ddb = NewSpan(&req, "00000000000000a3", "00000000000000a1", pb::Span::SPAN_KIND_CLIENT);
  Put(ddb, "rpc.system", "aws-api");
  Put(ddb, "rpc.service", "DynamoDB");
  Put(ddb, "aws.operation", "GetItem");
  NewSpan(&req, "00000000000000a4", "00000000000000a2", pb::Span::SPAN_KIND_SERVER);  // remote parent
  pb::Span* internal = NewSpan(&req, "00000000000000a5", "00000000000000a1", pb::Span::SPAN_KIND_INTERNAL);
  internal->mutable_status()->set_code(pb::Status::STATUS_CODE_ERROR);
  ToXrayStats stats;
  std::vector<json> docs = ToDocs(req, {}, &stats);
  // a2, a3 and a5 are nested in a1; a4 (SERVER) is a segment of its own.
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(stats.documents, 2u);
  EXPECT_EQ(stats.spans, 5u);
  std::vector<json> subs = docs[0]["subsegments"];
  ASSERT_EQ(subs.size(), 3u);
  for (auto& sub : subs) {
    EXPECT_FALSE(sub.contains("trace_id"));
    EXPECT_FALSE(sub.contains("parent_id"));
    sub["type"] = "subsegment";
    sub["parent_id"] = "00000000000000a1";
  }
  docs = {docs[0], subs[0], subs[1], docs[1], subs[2]};

  EXPECT_EQ(docs[0]["name"], "cart");
  EXPECT_EQ(docs[0]["trace_id"], "1-6553f100-e7d1852db8c4fd35d88bf49a");
  EXPECT_EQ(docs[0]["origin"], "AWS::EKS::Container");
  EXPECT_FALSE(docs[0].contains("type"));
  EXPECT_FALSE(docs[0].contains("parent_id"));
  EXPECT_DOUBLE_EQ(docs[0]["start_time"].get<double>(), 1700000000.0);
  EXPECT_DOUBLE_EQ(docs[0]["end_time"].get<double>(), 1700000000.25);

  EXPECT_EQ(docs[1]["type"], "subsegment");  // as restored above
  EXPECT_EQ(docs[1]["parent_id"], "00000000000000a1");
  EXPECT_EQ(docs[1]["name"], "inventory");
  EXPECT_EQ(docs[1]["namespace"], "remote");
  EXPECT_EQ(docs[1]["http"]["request"]["url"], "http://inventory:8080/x");
  EXPECT_EQ(docs[1]["http"]["response"]["status"], 429);
  EXPECT_EQ(docs[1]["error"], true);
  EXPECT_EQ(docs[1]["throttle"], true);
  EXPECT_FALSE(docs[1].contains("origin"));  // resource facts only on segments

  EXPECT_EQ(docs[2]["namespace"], "aws");
  EXPECT_EQ(docs[2]["name"], "DynamoDB");
  EXPECT_EQ(docs[2]["aws"]["operation"], "GetItem");

  EXPECT_FALSE(docs[3].contains("type"));  // a SERVER span with a parent: a segment
  EXPECT_EQ(docs[3]["parent_id"], "00000000000000a2");

  EXPECT_EQ(docs[4]["fault"], true);  // ERROR without an HTTP status: a fault
  EXPECT_EQ(docs[4]["name"], "op 00000000000000a5");
}

TEST(OtlpToXray, IndexedAttributesBecomeAnnotationsTheRestMetadata) {
  pb::ExportTraceServiceRequest req;
  pb::Span* s = NewSpan(&req, "00000000000000b1", "", pb::Span::SPAN_KIND_SERVER);
  Put(s, "customer.tier", "gold");
  PutInt(s, "items", 3);
  Put(s, "note", "kept as metadata");
  ToXrayOptions opt;
  opt.indexed_attributes = {"customer.tier"};
  ToXrayStats stats;
  std::vector<json> docs = ToDocs(req, opt, &stats);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0]["annotations"], json::parse(R"({"customer_tier":"gold"})"));
  EXPECT_EQ(docs[0]["metadata"]["default"]["items"], 3);
  EXPECT_EQ(docs[0]["metadata"]["default"]["note"], "kept as metadata");
  opt.indexed_attributes.clear();
  opt.index_all_attributes = true;
  docs = ToDocs(req, opt, &stats);
  EXPECT_EQ(docs[0]["annotations"]["items"], 3);
  EXPECT_EQ(docs[0]["annotations"]["note"], "kept as metadata");
}

// aws.xray.metadata.* strings are parsed as JSON only when they nest at most 64 levels: the document's
// dump() recurses once per level, and a value 100,000 deep overflowed the stack (a crash from one
// OTLP request). Deeper text stays a string in the default metadata.
TEST(OtlpToXray, MetadataJsonNestedTooDeepStaysTextInsteadOfOverflowingTheStack) {
  pb::ExportTraceServiceRequest req;
  pb::Span* s = NewSpan(&req, "00000000000000c1", "", pb::Span::SPAN_KIND_SERVER);
  Put(s, "aws.xray.metadata.ok", std::string(64, '[') + std::string(64, ']'));
  Put(s, "aws.xray.metadata.deep", std::string(65, '[') + std::string(65, ']'));
  ToXrayStats stats;
  std::vector<json> docs = ToDocs(req, {}, &stats);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_TRUE(docs[0]["metadata"]["ok"].is_array());
  EXPECT_EQ(docs[0]["metadata"]["default"]["aws.xray.metadata.deep"], std::string(65, '[') + std::string(65, ']'));

  pb::ExportTraceServiceRequest huge;
  Put(NewSpan(&huge, "00000000000000c2", "", pb::Span::SPAN_KIND_SERVER), "aws.xray.metadata.deep",
      std::string(200000, '[') + std::string(200000, ']'));
  stats = {};
  EXPECT_TRUE(ToDocs(huge, {}, &stats).empty());  // a 400 KB string: over X-Ray's 64 KB per document
  EXPECT_EQ(stats.invalid_span, 1u);
}

TEST(OtlpToXray, TraceIdsThatCannotBeXrayIdsAreDroppedAndCounted) {
  pb::ExportTraceServiceRequest req;
  NewSpan(&req, "00000000000000c1", "", pb::Span::SPAN_KIND_SERVER);
  pb::Span* random = NewSpan(&req, "00000000000000c2", "", pb::Span::SPAN_KIND_SERVER);
  random->set_trace_id(*Unhex("f1e2d3c4b5a6978812345678abcdef01"));  // epoch far in the future
  pb::Span* old = NewSpan(&req, "00000000000000c3", "", pb::Span::SPAN_KIND_SERVER);
  old->set_trace_id(*Unhex("5f84c7a1e7d1852db8c4fd35d88bf49a"));  // 2020: older than 28 days
  pb::Span* zero = NewSpan(&req, "00000000000000c4", "", pb::Span::SPAN_KIND_SERVER);
  zero->set_span_id(std::string(8, '\0'));
  ToXrayStats stats;
  std::vector<json> docs = ToDocs(req, {}, &stats);
  EXPECT_EQ(docs.size(), 1u);
  EXPECT_EQ(stats.invalid_trace_id, 2u);
  EXPECT_EQ(stats.invalid_span, 1u);
  EXPECT_EQ(stats.dropped(), 3u);
  ToXrayOptions skip;
  skip.skip_timestamp_validation = true;
  ToXrayStats stats2;
  docs = ToDocs(req, skip, &stats2);
  EXPECT_EQ(docs.size(), 3u);  // the ids are used as they are
  EXPECT_EQ(stats2.invalid_trace_id, 0u);
}

TEST(OtlpToXray, ParentCyclesStaySeparateDocumentsNothingLost) {
  pb::ExportTraceServiceRequest req;
  NewSpan(&req, "00000000000000d1", "00000000000000d2", pb::Span::SPAN_KIND_INTERNAL);
  NewSpan(&req, "00000000000000d2", "00000000000000d1", pb::Span::SPAN_KIND_INTERNAL);
  NewSpan(&req, "00000000000000d3", "00000000000000d3", pb::Span::SPAN_KIND_CLIENT);  // its own parent
  ToXrayStats stats;
  std::vector<json> docs = ToDocs(req, {}, &stats);
  // The cycle is cut at its first span (d2 nests in d1); d3 stands alone. Every span is kept.
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0]["id"], "00000000000000d1");
  ASSERT_EQ(docs[0]["subsegments"].size(), 1u);
  EXPECT_EQ(docs[0]["subsegments"][0]["id"], "00000000000000d2");
  EXPECT_EQ(docs[1]["id"], "00000000000000d3");
  EXPECT_EQ(stats.dropped(), 0u);
}

// ---- round trip: X-Ray -> OTLP -> X-Ray keeps every mapped field ----

struct Node {
  json seg;
  std::string parent;
  bool top;
};

void Flatten(const json& s, const std::string& parent, bool top, std::vector<Node>* out) {
  out->push_back({s, parent, top});
  for (const auto& sub : s.value("subsegments", json::array())) Flatten(sub, s["id"].get<std::string>(), false, out);
}

json At(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* p : path) {
    if (!cur->is_object() || !cur->contains(p)) return nullptr;
    cur = &(*cur)[p];
  }
  return *cur;
}

// null and absent are the same to X-Ray (SDKs send "line": null); so is an empty stack.
json Normalized(json j) {
  if (j.is_object()) {
    json out = json::object();
    for (auto& [k, v] : j.items())
      if (!v.is_null() && !(k == "stack" && v.empty())) out[k] = Normalized(v);
    return out;
  }
  if (j.is_array())
    for (auto& e : j) e = Normalized(e);
  return j;
}

// The fields the mapping carries (docs/OTLP.md), compared one by one.
void ExpectSameMappedFields(const Node& n, const json& back, const json& root) {
  const json& o = n.seg;
  SCOPED_TRACE(o["name"].get<std::string>() + " " + o["id"].get<std::string>());
  EXPECT_EQ(back["id"], o["id"]);
  if (n.top) { EXPECT_EQ(back.value("parent_id", ""), n.parent); }
  EXPECT_EQ(back["name"], o["name"]);
  EXPECT_NEAR(back["start_time"].get<double>(), o["start_time"].get<double>(), 1e-6);
  if (o.contains("end_time")) { EXPECT_NEAR(back["end_time"].get<double>(), o["end_time"].get<double>(), 1e-6); }
  EXPECT_EQ(back.value("in_progress", false), o.value("in_progress", false));
  if (o.contains("user")) { EXPECT_EQ(back["user"], o["user"]); }
  std::string ns = o.value("namespace", "");
  if (ns == "aws" || ns == "remote") { EXPECT_EQ(back["namespace"], ns); }
  for (auto path : std::vector<std::vector<const char*>>{
           {"http", "request", "method"}, {"http", "request", "url"}, {"http", "request", "client_ip"},
           {"http", "request", "user_agent"}, {"http", "request", "x_forwarded_for"},
           {"http", "request", "traced"}, {"http", "response", "status"},
           {"http", "response", "content_length"}, {"aws", "operation"}, {"aws", "region"},
           {"aws", "request_id"}, {"aws", "retries"}, {"aws", "table_name"}, {"aws", "queue_url"},
           {"sql", "url"}, {"sql", "database_type"}, {"sql", "sanitized_query"}, {"sql", "user"}}) {
    json want = o, got = back;
    for (const char* p : path) {
      want = want.is_object() && want.contains(p) ? json(want[p]) : json(nullptr);
      got = got.is_object() && got.contains(p) ? json(got[p]) : json(nullptr);
    }
    EXPECT_EQ(got, want) << path.front() << "." << path.back();
  }
  EXPECT_EQ(back.value("annotations", json::object()), o.value("annotations", json::object()));
  EXPECT_EQ(back.value("metadata", json::object()), o.value("metadata", json::object()));
  bool has_status = At(o, {"http", "response", "status"}).is_number();
  EXPECT_EQ(back.value("fault", false), o.value("fault", false) || (!has_status && o.value("error", false)));
  if (has_status || !o.value("error", false)) { EXPECT_EQ(back.value("error", false), o.value("error", false)); }
  if (has_status) { EXPECT_EQ(back.value("throttle", false), o.value("throttle", false)); }
  const json cause = o.value("cause", json());
  if (cause.is_string()) { EXPECT_EQ(back["cause"], cause); }
  if (cause.is_object() && cause.contains("exceptions")) {
    const json want = Normalized(cause["exceptions"]);
    const json& got = back["cause"]["exceptions"];
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      for (const char* k : {"id", "message", "type", "remote", "truncated", "skipped", "cause", "stack"})
        EXPECT_EQ(Normalized(At(got[i], {k})), Normalized(At(want[i], {k}))) << "exception " << i << " " << k;
  }
  if (n.top) {
    for (const char* k : {"origin", "resource_arn"}) EXPECT_EQ(At(back, {k}), At(o, {k})) << k;
    for (const char* k : {"version", "runtime", "runtime_version"})
      EXPECT_EQ(At(back, {"service", k}), At(o, {"service", k})) << k;
    EXPECT_EQ(At(back, {"aws", "xray", "sdk"}), At(o, {"aws", "xray", "sdk"}));
    EXPECT_EQ(At(back, {"aws", "xray", "sdk_version"}), At(o, {"aws", "xray", "sdk_version"}));
    EXPECT_EQ(At(back, {"aws", "account_id"}), At(o, {"aws", "account_id"}));
  }
}

TEST(OtlpRoundTrip, RealSdkSegmentsKeepEveryMappedField) {
  std::vector<std::string> docs = testing::AllSdkSegments();
  ASSERT_GE(docs.size(), 15u);
  size_t compared = 0;
  for (const std::string& text : docs) {
    json orig = json::parse(text);
    if (orig.value("in_progress", false)) continue;  // not exported (see xray_to_otlp.h)
    ToOtlpStats to_stats;
    pb::ExportTraceServiceRequest req;
    ASSERT_TRUE(AppendSegment(text, &req, &to_stats).ok());
    // Through the wire format, as the exporter and the receiver see it.
    pb::ExportTraceServiceRequest wire;
    ASSERT_TRUE(wire.ParseFromString(req.SerializeAsString()));
    ToXrayOptions opt;
    opt.now_epoch_seconds = segment::TraceIdEpoch(orig["trace_id"].get<std::string>()) + 60;
    ToXrayStats stats;
    std::map<std::string, json> back;
    std::map<std::string, std::string> back_parent;
    for (const auto& d : RequestToSegments(wire, opt, &stats)) {
      std::vector<Node> flat;
      json j = json::parse(d);
      EXPECT_EQ(j["trace_id"], orig["trace_id"]);
      Flatten(j, j.value("parent_id", ""), true, &flat);
      for (auto& n : flat) {
        back_parent[n.seg["id"].get<std::string>()] = n.parent;
        n.seg.erase("subsegments");
        back[n.seg["id"].get<std::string>()] = n.seg;
      }
    }
    std::vector<Node> nodes;
    Flatten(orig, orig.value("parent_id", ""), orig.value("type", "") != "subsegment", &nodes);
    EXPECT_EQ(stats.dropped(), 0u);
    ASSERT_EQ(back.size(), nodes.size()) << text.substr(0, 300);
    for (const Node& n : nodes) {
      ASSERT_TRUE(back.count(n.seg["id"].get<std::string>()));
      EXPECT_EQ(back_parent[n.seg["id"].get<std::string>()], n.parent);
      ExpectSameMappedFields(n, back[n.seg["id"].get<std::string>()], orig);
      ++compared;
    }
  }
  EXPECT_GE(compared, 40u);
}

}  // namespace
}  // namespace xrayd::otlp
