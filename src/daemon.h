// Daemon: wires the stages together for the drop-in daemon mode:
//   UdpReceiver → SegmentBuffer → XrayExporter → X-Ray API, with the SamplingProxy (TCP),
//   TelemetryReporter (PutTelemetryRecords) and HealthServer on the side. It resolves the region
//   and endpoint (instance metadata unless local mode) and owns the credentials provider: the
//   standard chain (aws/credential_chain.h), with --role-arn's STS AssumeRole on top; the provider
//   outlives every stage that borrows it.
//
// In `xrayd serve` mode the exporter is a StoreExporter into the embedded TraceStore, an
// XrayApiServer answers the X-Ray API from that store, and the sampling proxy forwards to it.
//
// Owns every stage. Start() brings them up in data-flow order, from the sink back to the
// source (exporter first, receiver last) so nothing is received before it can be sent.
// Shutdown() goes the other way: stop receiving, close the buffer, let the exporter flush for
// the grace period, send the final telemetry record, then stop health. Not thread-safe: call from the main thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "aws/credentials.h"
#include "aws/imds.h"
#include "buffer/segment_buffer.h"
#include "cli/config.h"
#include "common/result.h"
#include "export/xray/xray_exporter.h"
#include "ingest/udp_receiver.h"
#include "proxy/sampling_proxy.h"
#include "api/xray_api.h"
#include "export/store/store_exporter.h"
#include "store/trace_store.h"
#include "telemetry/health_server.h"
#include "telemetry/telemetry_reporter.h"
#include "common/thread_annotations.h"
#include "otlp/otlp_receiver.h"
#include "pipeline/segment_sink.h"

namespace xrayd {

class Daemon {
 public:
  Daemon(cli::Config config, aws::EnvLookup env);
  ~Daemon();

  Status Start();
  void Shutdown();

 private:
  Status StartServe(BufferOptions buffer_options);
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
  std::unique_ptr<SegmentBuffer> buffer_;
  std::unique_ptr<xray::XrayExporter> exporter_;
  std::unique_ptr<store::TraceStore> store_;
  std::unique_ptr<StoreExporter> store_exporter_;
  std::unique_ptr<api::XrayApiServer> api_;
  std::thread retention_thread_;
  Mutex retention_mu_;
  std::condition_variable retention_cv_;  // waits on retention_mu_: stop requested
  bool retention_stop_ XRAYD_GUARDED_BY(retention_mu_) = false;
  std::unique_ptr<UdpReceiver> receiver_;
  // --otlp-listen (serve mode): the OTLP receiver, offering into the buffer through otlp_sink_
  // until the pipeline's fan-out replaces it. Stopped with the UDP receiver.
  std::unique_ptr<pipeline::SegmentSink> otlp_sink_;
  std::unique_ptr<otlp::OtlpReceiver> otlp_receiver_;
  std::unique_ptr<SamplingProxy> proxy_;
  std::unique_ptr<TelemetryReporter> telemetry_;
  std::unique_ptr<HealthServer> health_;
  std::atomic<bool> ready_{false};
};

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
// `imds` may be null: no instance metadata lookups (local mode).
Result<ResolvedEndpoint> ResolveXrayEndpoint(const cli::Config& config, const aws::EnvLookup& env,
                                             aws::ImdsClient* imds);
// The same, with its own instance metadata client unless in local mode (for --check-config).
Result<ResolvedEndpoint> ResolveXrayEndpoint(const cli::Config& config, const aws::EnvLookup& env);

}  // namespace xrayd
