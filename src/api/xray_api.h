// XrayApiServer: the X-Ray REST-JSON API of `xrayd serve`, answered from the TraceStore, so the
// AWS CLI, AWS SDKs and Grafana's X-Ray data source can use xrayd as their endpoint.
//
// Routes are the exact paths of AWS's service model (POST /TraceSegments, /TraceSummaries,
// /Traces, /GetSamplingRules, /SamplingTargets, /Groups, ...). Answers keep every list field
// present even when empty and use epoch-second numbers for timestamps; errors use the shapes
// the SDKs parse (x-amzn-ErrorType header and {"__type","message"} body). Unknown operations get
// an UnknownOperationException, never an HTML 404.
//
// Owns an http::Server (listening socket, one I/O thread, `threads` handler threads). Start()
// binds; Stop() is idempotent and joins. Stop it before the TraceStore it borrows.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/request_auth.h"
#include "common/result.h"
#include "http/server.h"
#include "store/trace_store.h"

namespace xrayd::api {

class SamplingRules;
class Groups;

struct ApiOptions {
  std::string listen_address = "127.0.0.1:2020";
  int threads = 8;                  // handler threads
  http::ServerLimits limits;        // body, header, connection limits and deadlines (threads: above)
  bool verify_signatures = false;  // every request must be SigV4-signed with one of `keys`
  std::vector<AccessKey> keys;
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
  store::TraceStore& store_;
  std::unique_ptr<SamplingRules> sampling_;
  std::unique_ptr<Groups> groups_;
  http::Server server_{"API", HttpListener::kApi};
  int port_ = 0;
};

}  // namespace xrayd::api
