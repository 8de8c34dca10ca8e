// The X-Ray REST-JSON API of `xrayd serve`, answered from the TraceStore, so the AWS CLI, AWS SDKs
// and Grafana's X-Ray data source can use xrayd as their endpoint.
//
// XrayApi is the API as a function, http::IncomingRequest → http::OutgoingResponse, with no socket:
// it checks the SigV4 signature (when keys are configured), looks the path up in the route table
// (the exact paths of AWS's service model: POST /TraceSegments, /TraceSummaries, /Traces, ...),
// parses the body within JsonLimits, checks it against the operation's shape (request_shapes.h),
// and calls the operation's handler (traces.h, graphs.h, sampling_rules.h, groups.h). Answers keep
// every list field present even when empty and use epoch-second numbers for timestamps. Errors are
// values (api_error.h) written by http/json_error.h in the shape the SDKs parse; unknown
// operations get UnknownOperationException, never an HTML 404. Thread-safe: handlers may run on
// any number of threads at once.
//
// XrayApiServer owns an http::Server (listening socket, `threads` + 1 threads, `threads` handler slots)
// serving an XrayApi. Start() binds; Stop() is idempotent and joins. Stop it before the TraceStore
// it borrows.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/api_context.h"
#include "api/json_input.h"
#include "api/request_auth.h"
#include "common/result.h"
#include "http/server.h"
#include "http/server_message.h"
#include "store/trace_store.h"

namespace xrayd::api {

class SamplingRules;
class Groups;

struct ApiOptions {
  std::string listen_address = "127.0.0.1:2020";
  // Handler slots (the server runs one thread more). In `xrayd serve` a PutTraceSegments handler
  // waits until the store has taken its documents (pipeline::WaitingSink), so the slots bound how
  // many documents reach one store transaction: 8 slots held it at 39k segments/s, 32 give 41-49.5k/s
  // (bench/store_bench.py --via put --connections 48; 64 slots measured no better: CPU-bound).
  int threads = 32;
  http::ServerLimits server_limits;  // header, body, connection limits and deadlines (threads: above)
  bool verify_signatures = false;  // every request must be SigV4-signed with one of `keys`
  std::vector<AccessKey> keys;
  JsonLimits json_limits;
  ApiLimits limits;
  // Answers GET requests (no X-Ray operation is a GET): the web UI (ui/web_ui.h), given by the
  // daemon; unset, a GET is an UnknownOperationException like any unknown path.
  http::RequestHandler get_handler;
  // PutTraceSegments' destination (api_context.h); must outlive the API. Null: the store directly.
  pipeline::SegmentSink* sink = nullptr;
};

class XrayApi {
 public:
  XrayApi(const ApiOptions& options, store::TraceStore& store);
  ~XrayApi();
  XrayApi(const XrayApi&) = delete;
  XrayApi& operator=(const XrayApi&) = delete;

  http::OutgoingResponse Handle(const http::IncomingRequest& request);

 private:
  // Constant after construction (SamplingRules and Groups lock inside).
  const JsonLimits json_limits_;
  const ApiLimits limits_;
  const std::optional<RequestVerifier> verifier_;
  log::RateLimiter truncation_log_{std::chrono::minutes(1)};  // thread-safe (atomics)
  store::TraceStore& store_;
  pipeline::SegmentSink* const sink_;
  std::unique_ptr<SamplingRules> sampling_;
  std::unique_ptr<Groups> groups_;
};

class XrayApiServer {
 public:
  XrayApiServer(ApiOptions options, store::TraceStore& store);
  ~XrayApiServer();

  Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  const ApiOptions options_;
  XrayApi api_;
  http::Server server_{"API", HttpListener::kApi};
  int port_ = 0;
};

}  // namespace xrayd::api
