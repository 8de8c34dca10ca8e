#include "otlp/otlp_receiver.h"

#include <utility>

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
