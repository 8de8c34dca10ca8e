#include "api/xray_api.h"

#include <string_view>

#include "api/graphs.h"
#include "api/groups.h"
#include "api/operation_percentiles.h"
#include "api/request_shapes.h"
#include "api/sampling_rules.h"
#include "api/traces.h"
#include "common/log.h"
#include "http/json_error.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

// No insight engine, no encryption, telemetry accepted and dropped: well-formed answers, so
// Grafana's Insights queries and daemons pointed at xrayd do not fail.
ApiResult<json> PutTelemetryRecords(ApiContext&, const json&) { return json::object(); }
ApiResult<json> GetInsightSummaries(ApiContext&, const json&) {
  return json{{"InsightSummaries", json::array()}};
}
ApiResult<json> GetEncryptionConfig(ApiContext&, const json&) {
  return json{{"EncryptionConfig", {{"Status", "ACTIVE"}, {"Type", "NONE"}}}};
}

// xrayd's own extension (operation_percentiles.h): its errors' messages are the client's to read.
ApiResult<json> GetOperationPercentiles(ApiContext& ctx, const json& in) {
  auto out = OperationPercentiles(ctx.store, in);
  if (!out && out.error().kind == Error::Kind::kInvalidArgument) return ApiError::Invalid(out.error().message);
  if (!out) return ApiError::Internal("OperationPercentiles", out.error());
  return std::move(*out);
}

// A handler that writes its response body itself (BatchGetTraces: mostly documents, which
// nlohmann's escaper is slow on); the text must be valid JSON.
using RawHandler = ApiResult<std::string> (*)(ApiContext& ctx, const json& input);

struct Route {
  std::string_view path;       // requestUri in AWS's model; every operation is a POST
  std::string_view operation;  // for logs
  const Shape* input;
  Handler handler;
  RawHandler raw = nullptr;  // instead of `handler` when set
  // Reads stored segments: waits first until what PutTraceSegments accepted is stored
  // (SegmentSink::AwaitStored), so a client reads its own writes back.
  bool reads_segments = false;
};

const Route kRoutes[] = {
    {"/TraceSegments", "PutTraceSegments", &shapes::kPutTraceSegments, PutTraceSegments},
    {"/TelemetryRecords", "PutTelemetryRecords", &shapes::kPutTelemetryRecords, PutTelemetryRecords},
    {"/TraceSummaries", "GetTraceSummaries", &shapes::kGetTraceSummaries, GetTraceSummaries, nullptr, true},
    {"/Traces", "BatchGetTraces", &shapes::kBatchGetTraces, nullptr, BatchGetTraces, true},
    {"/ServiceGraph", "GetServiceGraph", &shapes::kGetServiceGraph, GetServiceGraph, nullptr, true},
    {"/TraceGraph", "GetTraceGraph", &shapes::kGetTraceGraph, GetTraceGraph, nullptr, true},
    {"/TimeSeriesServiceStatistics", "GetTimeSeriesServiceStatistics", &shapes::kGetTimeSeriesServiceStatistics,
     GetTimeSeriesServiceStatistics, nullptr, true},
    {"/GetSamplingRules", "GetSamplingRules", &shapes::kGetSamplingRules, GetSamplingRules},
    {"/SamplingTargets", "GetSamplingTargets", &shapes::kGetSamplingTargets, GetSamplingTargets},
    {"/CreateSamplingRule", "CreateSamplingRule", &shapes::kCreateSamplingRule, CreateSamplingRule},
    {"/UpdateSamplingRule", "UpdateSamplingRule", &shapes::kUpdateSamplingRule, UpdateSamplingRule},
    {"/DeleteSamplingRule", "DeleteSamplingRule", &shapes::kDeleteSamplingRule, DeleteSamplingRule},
    {"/SamplingStatisticSummaries", "GetSamplingStatisticSummaries", &shapes::kGetSamplingStatisticSummaries,
     GetSamplingStatisticSummaries},
    {"/Groups", "GetGroups", &shapes::kGetGroups, GetGroups},
    {"/GetGroup", "GetGroup", &shapes::kGetGroup, GetGroup},
    {"/CreateGroup", "CreateGroup", &shapes::kCreateGroup, CreateGroup},
    {"/UpdateGroup", "UpdateGroup", &shapes::kUpdateGroup, UpdateGroup},
    {"/DeleteGroup", "DeleteGroup", &shapes::kDeleteGroup, DeleteGroup},
    {"/InsightSummaries", "GetInsightSummaries", &shapes::kGetInsightSummaries, GetInsightSummaries},
    {"/EncryptionConfig", "GetEncryptionConfig", &shapes::kGetEncryptionConfig, GetEncryptionConfig},
    {"/xrayd/OperationPercentiles", "xrayd:OperationPercentiles", &shapes::kOperationPercentiles,
     GetOperationPercentiles, nullptr, true},
};

const Route* FindRoute(std::string_view method, std::string_view path) {
  if (method != "POST") return nullptr;
  for (const Route& r : kRoutes)
    if (r.path == path) return &r;
  return nullptr;
}

http::OutgoingResponse ErrorResponse(const ApiError& e) { return http::JsonErrorResponse(e.status, e.type, e.message); }

http::OutgoingResponse InternalFailure() {
  return http::JsonErrorResponse(500, "InternalFailure", kInternalFailureMessage);
}

// Body, shape, handler: the steps every operation shares, each returning its error as a value;
// the response body's text.
ApiResult<std::string> Run(const Route& route, ApiContext& ctx, std::string_view body, const JsonLimits& limits) {
  if (route.handler == PutTraceSegments)  // the common body without a JSON tree (traces.h)
    if (auto docs = PlainPutDocuments(body, limits.max_bytes)) {
      auto out = PutDocuments(ctx, std::move(*docs));
      if (!out) return out.error();
      return out->dump(-1, ' ', false, json::error_handler_t::replace);
    }
  auto input = ParseRequestBody(body, limits);
  if (!input) return input.error();
  if (auto st = Validate(*input, *route.input); !st) return st.error();
  if (route.reads_segments && ctx.sink != nullptr) ctx.sink->AwaitStored();
  if (route.raw) return route.raw(ctx, *input);
  auto out = route.handler(ctx, *input);
  if (!out) return out.error();
  return out->dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Shorten(std::string_view s) {
  constexpr size_t kMax = 128;
  return s.size() <= kMax ? std::string(s) : std::string(s.substr(0, kMax)) + "...";
}

}  // namespace

XrayApi::XrayApi(const ApiOptions& options, store::TraceStore& store)
    : json_limits_(options.json_limits),
      limits_(options.limits),
      verifier_(options.verify_signatures ? std::optional<RequestVerifier>(options.keys) : std::nullopt),
      store_(store),
      sink_(options.sink),
      sampling_(std::make_unique<SamplingRules>(store)),
      groups_(std::make_unique<Groups>(store)) {}

XrayApi::~XrayApi() = default;

http::OutgoingResponse XrayApi::Handle(const http::IncomingRequest& req) {
  if (verifier_)
    if (auto failure = verifier_->Verify(req.method, req.path, req.query, req.headers, req.body, NowSeconds()))
      return http::JsonErrorResponse(failure->status, failure->type, failure->message);
  const Route* route = FindRoute(req.method, req.path);
  if (route == nullptr)
    return ErrorResponse(ApiError::UnknownOperation("no X-Ray operation at " + Shorten(req.method) + " " +
                                                    Shorten(req.path)));
  // The one catch: handlers return errors as values, so anything thrown here is a bug (or memory
  // exhaustion). It is logged; the client gets InternalFailure without the exception's text.
  try {
    ApiContext ctx{store_, *sampling_, *groups_, limits_, truncation_log_, sink_};
    ApiResult<std::string> result = Run(*route, ctx, req.body, json_limits_);
    if (!result) return ErrorResponse(result.error());
    http::OutgoingResponse out;
    out.body = std::move(*result);
    return out;
  } catch (const std::exception& e) {
    XLOG_ERROR("X-Ray API {} failed (a bug): {}", route->operation, e.what());
  } catch (...) {
    XLOG_ERROR("X-Ray API {} failed (a bug): unknown exception", route->operation);
  }
  return InternalFailure();
}

XrayApiServer::XrayApiServer(ApiOptions options, store::TraceStore& store)
    : options_(std::move(options)), api_(options_, store) {}

XrayApiServer::~XrayApiServer() { Stop(); }

Status XrayApiServer::Start() {
  http::ServerLimits limits = options_.server_limits;
  limits.handler_threads = options_.threads;
  // GETs are public (the web UI's files carry no data); everything else is the API, signed when
  // signatures are on.
  auto serve = [this](const http::IncomingRequest& req) {
    if (req.method == "GET" && options_.get_handler) return options_.get_handler(req);
    return api_.Handle(req);
  };
  auto port = server_.Start(options_.listen_address, std::move(serve), limits);
  if (!port) return port.error();
  port_ = *port;
  return OkStatus();
}

void XrayApiServer::Stop() { server_.Stop(); }

}  // namespace xrayd::api
