#include "otlp/otlp_receiver.h"

#include <utility>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "otlp/otlp_json.h"

namespace xrayd::otlp {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (http::IncomingRequest::Lower(s[i]) != prefix[i]) return false;
  return true;
}

namespace gp = google::protobuf;
using gp::internal::WireFormatLite;

// What a protobuf body may cost once parsed, in multiples of its size (plus kParsedFloorBytes). A
// real export is far below (strings are most of it); 8 MB of empty spans ("\x12\x00" each) took
// 812 MB as parsed messages.
constexpr size_t kParsedBytesPerBodyByte = 16;
constexpr size_t kParsedFloorBytes = 1 << 20;
constexpr size_t kPerMessageOverhead = 24;  // each message's heap block header and its parent's pointer

// The messages of otlp_trace.proto that hold messages (a lite runtime: no descriptors to ask), and
// each one's in-memory size.
enum class Msg { kRequest, kResourceSpans, kResource, kScopeSpans, kScope, kSpan, kEvent, kLink, kStatus,
                 kKeyValue, kAnyValue, kArrayValue, kKeyValueList, kNone };

size_t SizeOf(Msg m) {
  switch (m) {
    case Msg::kRequest: return sizeof(pb::ExportTraceServiceRequest);
    case Msg::kResourceSpans: return sizeof(pb::ResourceSpans);
    case Msg::kResource: return sizeof(pb::Resource);
    case Msg::kScopeSpans: return sizeof(pb::ScopeSpans);
    case Msg::kScope: return sizeof(pb::InstrumentationScope);
    case Msg::kSpan: return sizeof(pb::Span);
    case Msg::kEvent: return sizeof(pb::Span::Event);
    case Msg::kLink: return sizeof(pb::Span::Link);
    case Msg::kStatus: return sizeof(pb::Status);
    case Msg::kKeyValue: return sizeof(pb::KeyValue);
    case Msg::kAnyValue: return sizeof(pb::AnyValue);
    case Msg::kArrayValue: return sizeof(pb::ArrayValue);
    case Msg::kKeyValueList: return sizeof(pb::KeyValueList);
    case Msg::kNone: break;
  }
  return 0;
}

// The message type field `field` of a `parent` holds (kNone: not a message field).
Msg Child(Msg parent, uint32_t field) {
  switch (parent) {
    case Msg::kRequest: return field == 1 ? Msg::kResourceSpans : Msg::kNone;
    case Msg::kResourceSpans: return field == 1 ? Msg::kResource : field == 2 ? Msg::kScopeSpans : Msg::kNone;
    case Msg::kResource: return field == 1 ? Msg::kKeyValue : Msg::kNone;
    case Msg::kScopeSpans: return field == 1 ? Msg::kScope : field == 2 ? Msg::kSpan : Msg::kNone;
    case Msg::kScope: return field == 3 ? Msg::kKeyValue : Msg::kNone;
    case Msg::kSpan:
      return field == 9 ? Msg::kKeyValue : field == 11 ? Msg::kEvent : field == 13 ? Msg::kLink
             : field == 15 ? Msg::kStatus : Msg::kNone;
    case Msg::kEvent: return field == 3 ? Msg::kKeyValue : Msg::kNone;
    case Msg::kLink: return field == 4 ? Msg::kKeyValue : Msg::kNone;
    case Msg::kKeyValue: return field == 2 ? Msg::kAnyValue : Msg::kNone;
    case Msg::kAnyValue: return field == 5 ? Msg::kArrayValue : field == 6 ? Msg::kKeyValueList : Msg::kNone;
    case Msg::kArrayValue: return field == 1 ? Msg::kAnyValue : Msg::kNone;
    case Msg::kKeyValueList: return field == 1 ? Msg::kKeyValue : Msg::kNone;
    case Msg::kStatus: case Msg::kNone: break;
  }
  return Msg::kNone;
}

// Adds up the in-memory size of every message an ExportTraceServiceRequest body holds (strings and
// repeated scalars are at most the body again) from its wire format, without building any, and
// says whether that stays within `budget`. Bytes the parser would refuse end the scan (Handle's
// ParseFromString then refuses them); nesting deeper than protobuf's own limit (100) is not walked.
class ParsedCost {
 public:
  explicit ParsedCost(size_t budget) : budget_(budget) {}

  bool Within(std::string_view body) {
    gp::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(body.data()), static_cast<int>(body.size()));
    in.PushLimit(static_cast<int>(body.size()));  // so BytesUntilLimit() bounds every length
    return Scan(in, Msg::kRequest, 0);
  }

 private:
  bool Scan(gp::io::CodedInputStream& in, Msg type, int depth) {
    while (const uint32_t tag = in.ReadTag()) {
      const Msg child = Child(type, WireFormatLite::GetTagFieldNumber(tag));
      if (child == Msg::kNone || WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        if (!WireFormatLite::SkipField(&in, tag)) return true;
        continue;
      }
      uint32_t length = 0;
      if (!in.ReadVarint32(&length) || length > static_cast<uint32_t>(in.BytesUntilLimit()) || depth >= 100)
        return true;
      cost_ += SizeOf(child) + kPerMessageOverhead;
      if (cost_ > budget_) return false;
      const auto limit = in.PushLimit(static_cast<int>(length));
      if (!Scan(in, child, depth + 1)) return false;
      in.PopLimit(limit);
    }
    return true;
  }

  const size_t budget_;
  size_t cost_ = 0;
};

}  // namespace

OtlpReceiver::OtlpReceiver(OtlpReceiverConfig config, pipeline::SegmentSink& sink)
    : config_(std::move(config)), sink_(sink) {}

OtlpReceiver::~OtlpReceiver() { Stop(); }

Result<int> OtlpReceiver::Start() {
  server_ = std::make_unique<http::Server>("OTLP", HttpListener::kOtlp);
  http::ServerLimits limits;
  limits.max_body_bytes = config_.max_body_bytes;
  auto port = server_->Start(config_.listen, [this](const http::IncomingRequest& r) { return Handle(r); }, limits);
  if (port && !registered_) {
    GlobalMetrics().AddSource(this);
    registered_ = true;
  }
  return port;
}

void OtlpReceiver::Stop() {
  if (server_) server_->Stop();
  if (registered_) {
    GlobalMetrics().RemoveSource(this);
    registered_ = false;
  }
}

void OtlpReceiver::RenderMetrics(std::string& out) const {
  const auto& c = counters_;
  AppendCounterFamily(out, "xrayd_otlp_receiver_requests_total", "OTLP/HTTP export requests, by result.", "result",
                      {{"ok", c.requests_ok.load()},
                       {"malformed", c.requests_malformed.load()},
                       {"unsupported", c.requests_unsupported.load()},
                       {"overloaded", c.requests_overloaded.load()}});
  AppendCounterFamily(out, "xrayd_otlp_receiver_spans_total",
                      "Spans received over OTLP, and those refused as invalid (by reason).", "result",
                      {{"received", c.spans_received.load()},
                       {"invalid_trace_id", c.spans_invalid_trace_id.load()},
                       {"invalid", c.spans_invalid.load()}});
  AppendCounterFamily(out, "xrayd_otlp_receiver_segments_total",
                      "X-Ray documents made from OTLP spans: accepted by the pipeline, or refused (every exporter "
                      "full).",
                      "result", {{"accepted", c.segments_accepted.load()}, {"refused", c.segments_refused_by_pipeline.load()}});
}

// An error answer: a google.rpc.Status in the request's encoding.
http::OutgoingResponse OtlpReceiver::Reply(int status, bool json, const std::string& message) {
  http::OutgoingResponse r;
  r.status = status;
  pb::RpcStatus st;
  st.set_code(status == 400 ? 3 : (status == 503 ? 14 : 12));  // INVALID_ARGUMENT, UNAVAILABLE, UNIMPLEMENTED
  st.set_message(message);
  if (json) {
    r.content_type = "application/json";
    r.body = nlohmann::json{{"code", st.code()}, {"message", message}}.dump(-1, ' ', false,
                                                                            nlohmann::json::error_handler_t::replace);
  } else {
    r.content_type = "application/x-protobuf";
    r.body = st.SerializeAsString();
  }
  return r;
}

http::OutgoingResponse OtlpReceiver::Handle(const http::IncomingRequest& request) {
  std::string_view type = request.Header("Content-Type");
  bool json = StartsWith(type, "application/json");
  if (request.path != "/v1/traces") {
    ++counters_.requests_unsupported;
    return Reply(404, json, "OTLP/HTTP traces are served at /v1/traces");
  }
  if (request.method != "POST") {
    ++counters_.requests_unsupported;
    http::OutgoingResponse r = Reply(405, json, "/v1/traces takes POST");
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  if (!json && !StartsWith(type, "application/x-protobuf")) {
    ++counters_.requests_unsupported;
    return Reply(415, false, "Content-Type must be application/x-protobuf or application/json");
  }

  pb::ExportTraceServiceRequest export_request;
  if (json) {
    Result<pb::ExportTraceServiceRequest> decoded = DecodeJsonRequest(request.body);
    if (!decoded.ok()) {
      ++counters_.requests_malformed;
      return Reply(400, true, "not an OTLP/JSON ExportTraceServiceRequest: " + decoded.error().message);
    }
    export_request = std::move(*decoded);
  } else if (!ParsedCost(kParsedBytesPerBodyByte * request.body.size() + kParsedFloorBytes)
                  .Within(request.body)) {
    ++counters_.requests_malformed;
    return Reply(400, false, "the body holds too many messages for its size (" +
                                 std::to_string(kParsedBytesPerBodyByte) + " times its size once decoded)");
  } else if (!export_request.ParseFromString(request.body)) {
    ++counters_.requests_malformed;
    return Reply(400, false, "not an OTLP protobuf ExportTraceServiceRequest");
  }

  ToXrayStats stats;
  std::vector<std::string> docs = RequestToSegments(export_request, config_.translation, &stats);
  counters_.spans_received += stats.spans;
  counters_.spans_invalid_trace_id += stats.invalid_trace_id;
  counters_.spans_invalid += stats.invalid_span;
  size_t offered = docs.size();
  size_t accepted = offered ? sink_.Offer(docs) : 0;
  counters_.segments_accepted += accepted;
  counters_.segments_refused_by_pipeline += offered - accepted;
  if (offered > 0 && accepted == 0) {
    ++counters_.requests_overloaded;
    http::OutgoingResponse r = Reply(503, json, "the pipeline is full; retry later");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  ++counters_.requests_ok;

  pb::ExportTraceServiceResponse response;
  size_t rejected = stats.dropped() + (offered - accepted);
  if (rejected > 0) {
    auto* p = response.mutable_partial_success();
    p->set_rejected_spans(static_cast<int64_t>(rejected));
    std::string why;
    if (stats.invalid_trace_id)
      why += std::to_string(stats.invalid_trace_id) + " spans with trace ids X-Ray cannot take (the first 4 bytes "
             "must be the epoch second of the trace's start, within 28 days: use an X-Ray id generator); ";
    if (stats.invalid_span) why += std::to_string(stats.invalid_span) + " spans not valid as X-Ray segments; ";
    if (offered > accepted) why += std::to_string(offered - accepted) + " segments refused by a full pipeline; ";
    why.resize(why.size() - 2);
    p->set_error_message(why);
    XLOG_DEBUG("OTLP receiver: {} of {} spans from {} dropped: {}", rejected, stats.spans, request.peer, why);
  }
  http::OutgoingResponse r;
  r.content_type = json ? "application/json" : "application/x-protobuf";
  r.body = json ? EncodeJson(response) : response.SerializeAsString();
  return r;
}

}  // namespace xrayd::otlp
