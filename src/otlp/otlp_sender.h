// OtlpSender: the sending half of the OTLP exporter (pipeline::BatchSender). One Send() converts a
// batch of X-Ray segment documents to one OTLP ExportTraceServiceRequest (otlp/xray_to_otlp.h) and
// POSTs it once to the endpoint's /v1/traces, classifying the answer by OTLP/HTTP's rules:
//   200                          -> kDelivered; partial_success.rejected_spans -> `refused`
//                                   (spans, capped at the batch's document count: one refused
//                                   span is counted as one refused document)
//   429, 502, 503, 504           -> kRetryable, with the Retry-After delay (seconds or HTTP date)
//   any other status             -> kPermanent (the request would fail again as it is)
//   transport failure, Abort()   -> kRetryable
// It never retries or sleeps: the pipeline owns retries, backoff, queue and spool.
// Documents that are in progress are not sent (see xray_to_otlp.h); documents that are not X-Ray
// segments are reported as refused. Every outcome and drop is counted in counters().
//
// Thread-safe: Send() may run on several sender threads at once; each takes an http::Client
// (one curl handle, kept alive between requests) from a small pool and puts it back. Owns no
// thread. Abort() makes a transfer in progress end at once and later ones fail fast.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/thread_annotations.h"
#include "http/http_client.h"
#include "pipeline/batch_sender.h"
#include "telemetry/metrics.h"

namespace xrayd::otlp {

struct OtlpExporterConfig {
  enum class Encoding { kProtobuf, kJson };

  // "http(s)://host:port" (then "/v1/traces" is added, as OTEL_EXPORTER_OTLP_ENDPOINT does), or a
  // URL with a path, used as it is (as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is).
  std::string endpoint;
  Encoding encoding = Encoding::kProtobuf;
  bool gzip = true;                          // Content-Encoding: gzip
  http::Headers headers;                     // extra request headers (auth tokens, tenant ids)
  std::chrono::milliseconds timeout{10000};  // one request, connect included
  bool insecure_skip_verify = false;         // TLS: do not verify the server's certificate
  std::string ca_file;                       // TLS: PEM CA bundle to trust instead of the system's
  std::string cert_file, key_file;           // TLS: client certificate and key (mutual TLS), both or neither
  std::string proxy;                         // "http://host:port"; empty: the environment's

  // Every problem in one message, or OK.
  Status Validate() const;
  // The URL requests go to.
  std::string TracesUrl() const;
};

// "protobuf"/"proto" or "json" -> the encoding; an error naming the value otherwise.
Result<OtlpExporterConfig::Encoding> ParseEncoding(std::string_view name);

// What the sender did, for /metrics and tests. Monotonic; any thread reads them.
struct OtlpSenderCounters {
  std::atomic<uint64_t> requests_ok{0};
  std::atomic<uint64_t> requests_retryable{0};   // 429/502/503/504 and transport failures
  std::atomic<uint64_t> requests_throttled{0};   // of which 429
  std::atomic<uint64_t> requests_permanent{0};
  std::atomic<uint64_t> spans_sent{0};           // in requests answered 200
  std::atomic<uint64_t> spans_rejected{0};       // partial_success.rejected_spans
  std::atomic<uint64_t> documents_in_progress{0};  // not sent: in progress
  std::atomic<uint64_t> documents_invalid{0};      // not sent: not X-Ray segments
  std::atomic<uint64_t> bytes_sent{0};             // request bodies as sent (after gzip)
};

class OtlpSender final : public pipeline::BatchSender, public MetricsSource {
 public:
  // `config` must be valid (Validate()).
  explicit OtlpSender(OtlpExporterConfig config);
  ~OtlpSender() override;

  std::string_view name() const override { return "otlp"; }
  pipeline::SendOutcome Send(const std::vector<std::string>& segments) override;
  void Abort() override;

  const OtlpSenderCounters& counters() const { return counters_; }
  // xrayd_otlp_exporter_*: on /metrics for the sender's lifetime.
  void RenderMetrics(std::string& out) const override;

  // The request body a batch becomes (encoded, not compressed), for the benchmark and tests.
  std::string EncodeBody(const std::vector<std::string>& segments, size_t* spans) const;

 private:
  std::unique_ptr<http::Client> TakeClient();
  void ReturnClient(std::unique_ptr<http::Client> client);
  pipeline::SendOutcome Classify(const http::Response& response, size_t documents, size_t spans);

  // Constant after construction
  const OtlpExporterConfig config_;
  const std::string url_;
  // Shared with the clients (ClientOptions::abort)
  std::atomic<bool> aborted_{false};
  OtlpSenderCounters counters_;

  Mutex mu_;
  std::vector<std::unique_ptr<http::Client>> idle_clients_ XRAYD_GUARDED_BY(mu_);
};

// The one line of wiring: the OTLP exporter's sender for `config`, or the config's problems.
Result<std::unique_ptr<pipeline::BatchSender>> MakeOtlpSender(const OtlpExporterConfig& config);

// gzip (RFC 1952) of `data`; exposed for tests.
std::string Gzip(std::string_view data);

}  // namespace xrayd::otlp
