// Daemon: wires the stages together. The data path is receivers → pipeline::FanOut → one
// pipeline::Exporter per destination (pipeline/exporter.h):
//   daemon mode:  UDP → fan-out → [xray]
//   xrayd serve:  UDP + PutTraceSegments → fan-out → [store] (+ [xray] with --forward)
// with the SamplingProxy (TCP), TelemetryReporter (PutTelemetryRecords) and HealthServer on the side.
// AddExporter() builds an exporter from the Config; a new destination is one call of it. It resolves the region
//   and endpoint (instance metadata unless local mode) and owns the credentials provider: the
//   standard chain (aws/credential_chain.h), with --role-arn's STS AssumeRole on top; the provider
//   outlives every stage that borrows it.
//
// In `xrayd serve` mode the exporter is a StoreExporter into the embedded TraceStore, an
// XrayApiServer answers the X-Ray API from that store, and the sampling proxy forwards to it.
//
// Owns every stage. Start() brings them up in data-flow order, from the sink back to the
// source (exporters first, receivers last) so nothing is received before it can be sent.
// Shutdown() goes the other way: stop the receivers (UDP, the API), let every exporter flush for
// the grace period at once (then what is left goes to its spool, or is dropped{shutdown}), send
// the final telemetry record, then stop health. Not thread-safe: call from the main thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "aws/credentials.h"
#include "aws/imds.h"
#include "api/xray_api.h"
#include "cli/config.h"
#include "common/result.h"
#include "ingest/udp_receiver.h"
#include "pipeline/exporter.h"
#include "pipeline/fan_out.h"
#include "proxy/sampling_proxy.h"
#include "store/trace_store.h"
#include "telemetry/health_server.h"
#include "telemetry/telemetry_reporter.h"
#include "common/thread_annotations.h"
#include "lb/log_sources.h"
#include "otlp/otlp_receiver.h"
#include "otlp/otlp_sender.h"
#include "pipeline/segment_sink.h"

namespace xrayd {

// The region (aws/region.h) and the X-Ray endpoint the daemon sends to: the config file's
// Endpoint / --endpoint, else AWS_ENDPOINT_URL_XRAY / AWS_ENDPOINT_URL (aws::ConfiguredEndpointUrl),
// else the region's endpoint (FIPS / dual-stack from the environment). With an explicit endpoint
// and no region found, requests are signed for us-east-1.
struct ResolvedEndpoint {
  std::string url;
  std::string signing_region;
  std::string region;         // as resolved (may carry a fips- prefix / -fips suffix)
  std::string region_source;  // for the log
};
class Daemon {
 public:
  Daemon(cli::Config config, aws::EnvLookup env);
  ~Daemon();

  Status Start();
  void Shutdown();

 private:
  Status StartServe();
  Status StartDaemonMode();
  // Region, endpoint and credentials for the X-Ray API (daemon mode; serve --forward).
  Result<ResolvedEndpoint> SetUpAws();
  // The X-Ray exporter's sender, for `endpoint` with credentials_.
  Result<std::unique_ptr<pipeline::BatchSender>> MakeXraySender(const ResolvedEndpoint& endpoint);
  // One exporter per destination, with the Config's queue, spool and retry settings.
  void AddExporter(std::unique_ptr<pipeline::BatchSender> sender);
  Status AddOtlpExporter();    // --otlp-endpoint
  Status StartOtlpReceiver();  // --otlp-listen
  Status StartOtlpOnly();      // daemon mode with --otlp-only
  // Starts every exporter (spools are opened and replayed first) and builds the fan-out.
  void StartPipeline();
  void StopPipeline();
  Status StartHealth();
  void StartProxy(const SamplingProxyOptions& options);
  void RetentionLoop();

 public:
  int udp_port() const { return receiver_ ? receiver_->port() : 0; }

 private:
  const cli::Config config_;
  const aws::EnvLookup env_;
  std::shared_ptr<aws::ImdsClient> imds_;
  std::shared_ptr<aws::CredentialsProvider> credentials_;  // outlives every stage below
  std::shared_ptr<aws::CredentialsProvider> proxy_credentials_;  // serve: the sampling proxy's own keys
  std::unique_ptr<store::TraceStore> store_;
  // The pipeline: senders outlive their exporters, exporters outlive the sinks and receivers.
  std::vector<std::unique_ptr<pipeline::BatchSender>> senders_;
  std::vector<std::unique_ptr<pipeline::Exporter>> exporters_;
  std::unique_ptr<pipeline::FanOut> fan_out_;
  // serve: PutTraceSegments' sink; the API's reads wait on it (AwaitStored) so clients read their writes back
  std::unique_ptr<pipeline::WaitingSink> api_sink_;
  std::unique_ptr<api::XrayApiServer> api_;
  // `serve --lb-logs`: load-balancer access logs, a receiver (stopped first); its sink waits for the
  // store exporter after each batch (the reader keeps the store's pace).
  std::unique_ptr<pipeline::WaitingSink> lb_sink_;
  std::unique_ptr<lb::LbLogs> lb_logs_;
  std::thread retention_thread_;
  Mutex retention_mu_;
  std::condition_variable retention_cv_;  // waits on retention_mu_: stop requested
  bool retention_stop_ XRAYD_GUARDED_BY(retention_mu_) = false;
  std::unique_ptr<UdpReceiver> receiver_;
  // --otlp-listen: the OTLP/HTTP receiver, offering into fan_out_; stopped with the UDP receiver.
  std::unique_ptr<otlp::OtlpReceiver> otlp_receiver_;
  std::unique_ptr<SamplingProxy> proxy_;
  std::unique_ptr<TelemetryReporter> telemetry_;
  std::unique_ptr<HealthServer> health_;
  std::atomic<bool> ready_{false};
};

// `imds` may be null: no instance metadata lookups (local mode).
Result<ResolvedEndpoint> ResolveXrayEndpoint(const cli::Config& config, const aws::EnvLookup& env,
                                             aws::ImdsClient* imds);
// The same, with its own instance metadata client unless in local mode (for --check-config).
Result<ResolvedEndpoint> ResolveXrayEndpoint(const cli::Config& config, const aws::EnvLookup& env);

// The exporters `config` runs, in order ("store", "xray", "otlp"); the first is the primary.
std::vector<std::string> ExporterNames(const cli::Config& config);
// The options of the exporter named `name` ("xray", "store") under `config`; `primary` (the first
// exporter) also counts into the process-wide counters. The memory bound (-m) is a total: each
// exporter's queue gets an even share, so two exporters never hold more than -m between them.
pipeline::ExporterOptions ExporterOptionsFor(const cli::Config& config, std::string_view name, bool primary);
// The pipeline that `config` runs, for --check-config: receivers → exporters with their queue,
// spool and retry settings; `xray_endpoint` names where the xray exporter sends ("" if unknown).
std::string DescribePipeline(const cli::Config& config, const std::string& xray_endpoint);

}  // namespace xrayd
