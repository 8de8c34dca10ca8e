// OtlpReceiver: the OTLP/HTTP trace receiver. POST /v1/traces with an ExportTraceServiceRequest in
// protobuf (Content-Type application/x-protobuf) or JSON (application/json), optionally gzip- or
// deflate-encoded; every span becomes an X-Ray segment document (otlp/otlp_to_xray.h) offered to
// the pipeline's SegmentSink. Answers as OTLP/HTTP specifies:
//   200  ExportTraceServiceResponse, in the request's encoding; partial_success.rejected_spans
//        counts spans dropped (trace ids X-Ray cannot take, bad span ids, documents X-Ray refuses,
//        documents the pipeline refused)
//   400  the body is not an export request (a google.rpc.Status says why)
//   404/405/415  another path, another method, another content type
//   413  body over max_body_bytes, compressed or not (refused by http::Server before the handler)
//   503 + Retry-After  the pipeline took none of a batch (every exporter full): try again later
// Everything is counted in counters(); nothing the client sends can crash or stall it: sizes,
// framing and deadlines are http::Server's (http/server.h).
//
// Owns an http::Server (handler_threads + 1 threads, as many handler slots as handler_threads) once
// Start() succeeds. Stop() (idempotent; also from the destructor) stops the server: in-flight
// handlers finish their Offer(), then the threads are joined. The sink must outlive Stop().
// Handle() is the handler itself: thread-safe, usable without a socket (tests, fuzzing).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/server.h"
#include "otlp/otlp_to_xray.h"
#include "pipeline/segment_sink.h"
#include "telemetry/metrics.h"

namespace xrayd::otlp {

struct OtlpReceiverConfig {
  std::string listen = "127.0.0.1:4318";  // host:port; port 0 picks a free one
  size_t max_body_bytes = 8 * 1024 * 1024;  // per request, compressed and decompressed
  ToXrayOptions translation;               // indexed attributes, trace-id validation
};

struct OtlpReceiverCounters {
  std::atomic<uint64_t> requests_ok{0};
  std::atomic<uint64_t> requests_malformed{0};    // 400
  std::atomic<uint64_t> requests_unsupported{0};  // 404, 405, 415
  std::atomic<uint64_t> requests_overloaded{0};   // 503: the pipeline took nothing
  std::atomic<uint64_t> spans_received{0};
  std::atomic<uint64_t> segments_accepted{0};     // documents the pipeline took
  std::atomic<uint64_t> spans_invalid_trace_id{0};
  std::atomic<uint64_t> spans_invalid{0};
  std::atomic<uint64_t> segments_refused_by_pipeline{0};
};

class OtlpReceiver final : public MetricsSource {
 public:
  OtlpReceiver(OtlpReceiverConfig config, pipeline::SegmentSink& sink);
  ~OtlpReceiver() override;
  OtlpReceiver(const OtlpReceiver&) = delete;
  OtlpReceiver& operator=(const OtlpReceiver&) = delete;

  // Binds config.listen and serves; returns the bound port or an error naming the address.
  Result<int> Start();
  void Stop();

  http::OutgoingResponse Handle(const http::IncomingRequest& request);
  const OtlpReceiverCounters& counters() const { return counters_; }
  // xrayd_otlp_receiver_*: on /metrics between Start() and Stop().
  void RenderMetrics(std::string& out) const override;

 private:
  http::OutgoingResponse Reply(int status, bool json, const std::string& message);

  const OtlpReceiverConfig config_;
  pipeline::SegmentSink& sink_;
  OtlpReceiverCounters counters_;
  std::unique_ptr<http::Server> server_;  // set by Start(); Start/Stop from one thread
  bool registered_ = false;               // in GlobalMetrics()' sources
};

}  // namespace xrayd::otlp
