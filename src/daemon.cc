#include "daemon.h"

#include <unistd.h>

#include "aws/credential_chain.h"
#include "aws/endpoint.h"
#include "aws/region.h"
#include "aws/sts.h"
#include "common/log.h"
#include "telemetry/metrics.h"
#include "common/thread_name.h"
#include "ui/web_ui.h"

namespace xrayd {
namespace {

bool EnvTrue(const aws::EnvLookup& env, std::string_view name) {
  auto v = env(name);
  return v && (*v == "true" || *v == "TRUE" || *v == "True" || *v == "1");
}

// The signing region drops a fips- prefix or -fips suffix (ServiceEndpoint reads them as FIPS).
std::string SigningRegion(std::string region) {
  if (region.rfind("fips-", 0) == 0) region = region.substr(5);
  if (region.size() > 5 && region.compare(region.size() - 5, 5, "-fips") == 0) region.resize(region.size() - 5);
  return region;
}

uint64_t HostMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

}  // namespace

Result<ResolvedEndpoint> ResolveXrayEndpoint(const cli::Config& config, const aws::EnvLookup& env,
                                             aws::ImdsClient* imds) {
  auto region = aws::ResolveRegion(config.region, config.local_mode, env, imds);
  std::string explicit_url = config.endpoint;
  if (explicit_url.empty()) explicit_url = aws::ConfiguredEndpointUrl(env, "XRay").value_or("");
  if (!explicit_url.empty()) {
    if (auto u = aws::ParseUrl(explicit_url); !u) return u.error();
    if (!region) return ResolvedEndpoint{explicit_url, "us-east-1", "", "none found; signing for us-east-1"};
    return ResolvedEndpoint{explicit_url, SigningRegion(region->region), region->region, region->source};
  }
  if (!region) return region.error();
  aws::EndpointVariant variant{EnvTrue(env, "AWS_USE_FIPS_ENDPOINT"), EnvTrue(env, "AWS_USE_DUALSTACK_ENDPOINT")};
  auto url = aws::ServiceEndpoint("xray", region->region, variant);
  if (!url) return url.error();
  return ResolvedEndpoint{*url, SigningRegion(region->region), region->region, region->source};
}

Result<ResolvedEndpoint> ResolveXrayEndpoint(const cli::Config& config, const aws::EnvLookup& env) {
  if (config.local_mode) return ResolveXrayEndpoint(config, env, nullptr);
  auto imds_options = aws::ImdsOptions::FromEnvironment(env);
  if (!imds_options) return imds_options.error();
  aws::ImdsClient imds(*imds_options);
  return ResolveXrayEndpoint(config, env, &imds);
}

Daemon::Daemon(cli::Config config, aws::EnvLookup env) : config_(std::move(config)), env_(std::move(env)) {}

Daemon::~Daemon() { Shutdown(); }

namespace {

// Until the pipeline's fan-out exists: the OTLP receiver's segments go into the serve-mode buffer,
// as UDP datagrams do (a full buffer spills, counted by the buffer).
class BufferSink final : public pipeline::SegmentSink {
 public:
  explicit BufferSink(SegmentBuffer& buffer) : buffer_(buffer) {}
  size_t Offer(std::vector<std::string>& documents) override {
    size_t n = buffer_.Push(documents);
    documents.clear();
    return n;
  }

 private:
  SegmentBuffer& buffer_;
};

otlp::ToXrayOptions OtlpTranslation(const std::string& indexed) {
  otlp::ToXrayOptions o;
  for (size_t start = 0; start < indexed.size();) {
    size_t comma = std::min(indexed.find(',', start), indexed.size());
    std::string key = indexed.substr(start, comma - start);
    if (key == "*") o.index_all_attributes = true;
    else if (!key.empty()) o.indexed_attributes.push_back(key);
    start = comma + 1;
  }
  return o;
}

}  // namespace

Status Daemon::StartServe(BufferOptions buffer_options) {
  store::StoreOptions so;
  so.data_dir = config_.data_dir;
  so.retention_seconds = config_.retention_hours * 3600.0;
  so.max_bytes = static_cast<uint64_t>(config_.max_store_mb) * 1024 * 1024;
  so.on_error = [](const Error& e) { GlobalMetrics().CountStoreError(e.IsRetryable()); };
  auto opened = store::TraceStore::Open(so);
  if (!opened) return opened.error();
  store_ = std::move(*opened);
  XLOG_INFO("Trace store in {}/traces.db (retention {} h{})", config_.data_dir, config_.retention_hours,
            config_.max_store_mb > 0 ? fmt::format(", at most {} MB", config_.max_store_mb) : "");
  // UDP first: once the API answers, a client may take the server as up and send segments at once.
  buffer_ = std::make_unique<SegmentBuffer>(buffer_options);
  store_exporter_ = std::make_unique<StoreExporter>(*buffer_, *store_);
  store_exporter_->Start();
  receiver_ = std::make_unique<UdpReceiver>(UdpReceiverOptions{config_.udp_address}, *buffer_);
  if (auto st = receiver_->Start(); !st) return st;
  XLOG_INFO("Starting UDP receiver on {}", config_.udp_address);
  if (!config_.otlp_listen.empty()) {
    otlp_sink_ = std::make_unique<BufferSink>(*buffer_);
    otlp::OtlpReceiverConfig oc;
    oc.listen = config_.otlp_listen;
    oc.translation = OtlpTranslation(config_.otlp_indexed_attributes);
    otlp_receiver_ = std::make_unique<otlp::OtlpReceiver>(oc, *otlp_sink_);
    auto port = otlp_receiver_->Start();
    if (!port) return port.error();
    XLOG_INFO("Accepting OTLP/HTTP traces on http://{}/v1/traces", config_.otlp_listen);
  }
  api::ApiOptions api_options;
  api_options.listen_address = config_.listen_address;
  api_options.server_limits.max_connections = static_cast<size_t>(config_.api_max_connections);
  api_options.server_limits.max_body_bytes = static_cast<size_t>(config_.api_max_body_mb) * 1024 * 1024;
  api_options.json_limits.max_bytes = api_options.server_limits.max_body_bytes;
  auto keys = api::ParseAccessKeys(config_.api_keys);
  if (!keys) return keys.error();
  api_options.keys = *keys;
  const std::string listen_host = config_.listen_address.substr(0, config_.listen_address.rfind(':'));
  const bool loopback = listen_host.rfind("127.", 0) == 0 || listen_host == "localhost" || listen_host == "[::1]" ||
                        listen_host == "::1";
  api_options.verify_signatures = config_.api_auth == "on" || (config_.api_auth == "auto" && !loopback);
  if (api_options.verify_signatures && api_options.keys.empty())
    return Error::InvalidArgument("the X-Ray API on " + config_.listen_address +
                                  " verifies SigV4 signatures (not a loopback address): give --api-keys "
                                  "ID:SECRET (or XRAYD_API_KEYS), or --api-auth off to accept anyone");
  XLOG_INFO("X-Ray API request signatures: {}", api_options.verify_signatures
                                                     ? fmt::format("verified against {} key(s)", api_options.keys.size())
                                                     : std::string("not checked (loopback)"));
  api_options.limits.graph_truncated = &GlobalMetrics().api_graph_truncated;
  api_options.get_handler = ui::ServeWebUi;
  api_ = std::make_unique<api::XrayApiServer>(api_options, *store_);
  if (auto st = api_->Start(); !st) return st;
  XLOG_INFO("Serving the X-Ray API on http://{}", config_.listen_address);


  // SDKs' sampling calls on the TCP port go to our own API.
  std::string self = config_.listen_address;
  if (self.rfind("0.0.0.0:", 0) == 0) self = "127.0.0.1:" + self.substr(8);
  SamplingProxyOptions proxy_options{config_.tcp_address, "http://" + self, "us-east-1", {}};
  // With signature checks on, the proxy signs with the first configured key, like any client.
  if (api_options.verify_signatures)
    credentials_ = std::make_unique<aws::StaticCredentialsProvider>(
        aws::Credentials{api_options.keys.front().id, api_options.keys.front().secret, ""}, "--api-keys");
  StartProxy(proxy_options);
  retention_thread_ = std::thread([this] { RetentionLoop(); });
  return OkStatus();
}

void Daemon::StartProxy(const SamplingProxyOptions& options) {
  proxy_ = std::make_unique<SamplingProxy>(options, credentials_.get());
  if (auto st = proxy_->Start(); !st) {
    // As AWS's daemon: a TCP bind failure is logged, not fatal; segments still flow over UDP.
    XLOG_ERROR("Sampling proxy not started: {}", st.error().message);
    proxy_.reset();
  } else {
    XLOG_INFO("Starting proxy http server on {}", config_.tcp_address);
  }
}

void Daemon::RetentionLoop() {
  NameThisThread("xrayd-retention");
  MutexLock lock(retention_mu_);
  while (!retention_stop_) {
    lock.Unlock();
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (auto deleted = store_->EnforceRetention(now); !deleted) {
      XLOG_ERROR("Retention pass failed: {}", deleted.error().message);
    } else if (*deleted > 0) {
      XLOG_INFO("Retention: deleted {} traces", *deleted);
    }
    lock.Lock();
    lock.WaitFor(retention_cv_, std::chrono::seconds(30), [this]() XRAYD_REQUIRES(retention_mu_) { return retention_stop_; });
  }
}

Status Daemon::Start() {
  XLOG_INFO("Initializing xrayd {} (AWS X-Ray daemon compatible)", XRAYD_VERSION);
  if (!config_.config_file.empty()) XLOG_INFO("Using config file {}", config_.config_file);
  if (!config_.ignored_arguments.empty())
    XLOG_WARN("Ignoring arguments from \"{}\" on: flags must come before other arguments",
              config_.ignored_arguments.front());
  const uint64_t bytes = config_.BufferBytes(HostMemoryBytes());
  XLOG_INFO("Using buffer memory limit of {} MB", bytes / (1024 * 1024));
  BufferOptions buffer_options;
  buffer_options.capacity_bytes = bytes;
  if (config_.serve) {
    if (auto st = StartServe(buffer_options); !st) return st;
    return StartHealth();
  }

  // One instance metadata client for region, credentials and telemetry. Local mode (-o) uses it
  // only as the credential chain's last link, as AWS's daemon (its SDK) does.
  auto imds_options = aws::ImdsOptions::FromEnvironment(env_);
  if (!imds_options) return imds_options.error();
  imds_ = std::make_shared<aws::ImdsClient>(*imds_options);

  auto endpoint = ResolveXrayEndpoint(config_, env_, config_.local_mode ? nullptr : imds_.get());
  if (!endpoint) return endpoint.error();
  XLOG_DEBUG("Fetched region {} from {}", endpoint->region, endpoint->region_source);
  XLOG_INFO("Using region: {}", endpoint->signing_region);
  XLOG_INFO("Sending segments to {}", endpoint->url);

  http::ClientOptions aws_http;  // STS and the container endpoint: same proxy and TLS rules as uploads
  aws_http.proxy = config_.proxy_address;
  aws_http.verify_tls = !config_.no_verify_ssl;
  aws_http.timeout = std::min(std::chrono::milliseconds(config_.request_timeout_ms), std::chrono::milliseconds(10000));
  aws::ChainOptions chain;
  chain.env = env_;
  chain.region = endpoint->signing_region;
  chain.http = aws_http;
  chain.imds = imds_;
  auto creds = aws::DefaultCredentialsChain(chain);
  if (creds) {
    credentials_ = std::move(*creds);
  } else {
    XLOG_WARN("No AWS credentials ({}); requests will be sent unsigned", creds.error().message);
  }
  if (!config_.role_arn.empty()) {
    if (!credentials_) {
      XLOG_WARN("Cannot assume role {}: no credentials to call STS with", config_.role_arn);
    } else {
      // As AWS's daemon: the regional STS endpoint, whatever AWS_STS_REGIONAL_ENDPOINTS says.
      auto sts_endpoint = aws::ResolveStsEndpoint(env_, endpoint->signing_region, /*always_regional=*/true);
      if (!sts_endpoint) return sts_endpoint.error();
      XLOG_INFO("STS Endpoint : {}", sts_endpoint->url);
      credentials_ = aws::NewAssumeRoleProvider(credentials_, {config_.role_arn, "", "", 0},
                                                std::make_shared<aws::StsClient>(*sts_endpoint, aws_http));
    }
  }
  if (credentials_) {
    XLOG_INFO("Using AWS credentials from {}", credentials_->Describe());
    // Fetch now, so a broken setup shows at startup (the provider logs a failure, and retries it
    // with backoff on use).
    (void)credentials_->Get();
  }

  buffer_ = std::make_unique<SegmentBuffer>(buffer_options);

  // The one missing-credentials policy (aws/signed_client.h) for every AWS destination: an AWS
  // endpoint would refuse unsigned requests, so nothing is sent and the data waits; an explicitly
  // configured endpoint (--endpoint, e.g. another xrayd) may accept them unsigned.
  aws::SignedClientOptions xray_api{endpoint->url, endpoint->signing_region};
  xray_api.on_missing_credentials =
      config_.endpoint.empty() ? aws::MissingCredentials::kDoNotSend : aws::MissingCredentials::kSendUnsigned;

  xray::ExporterOptions ex;
  ex.concurrency = config_.concurrency;
  ex.xray = xray_api;
  ex.http.proxy = config_.proxy_address;
  ex.http.verify_tls = !config_.no_verify_ssl;
  ex.http.timeout = std::chrono::milliseconds(config_.request_timeout_ms);
  ex.retry.max_attempts = config_.max_attempts;
  exporter_ = std::make_unique<xray::XrayExporter>(ex, *buffer_, credentials_.get());
  if (auto st = exporter_->Start(); !st) return st;

  receiver_ = std::make_unique<UdpReceiver>(UdpReceiverOptions{config_.udp_address}, *buffer_);
  if (auto st = receiver_->Start(); !st) return st;
  XLOG_INFO("Starting UDP receiver on {}", config_.udp_address);

  SamplingProxyOptions proxy_options{config_.tcp_address, endpoint->url, endpoint->signing_region, ex.http};
  StartProxy(proxy_options);

  TelemetryOptions telemetry_options;
  telemetry_options.xray = xray_api;
  telemetry_options.http = ex.http;
  telemetry_options.http.timeout = std::min(ex.http.timeout, std::chrono::milliseconds(10000));
  telemetry_options.interval = std::chrono::milliseconds(config_.telemetry_interval_ms);
  telemetry_options.resource_arn = config_.resource_arn;
  telemetry_options.hostname = aws::EnvValue(env_, "AWS_HOSTNAME").value_or("");
  telemetry_options.instance_id = aws::EnvValue(env_, "AWS_INSTANCE_ID").value_or("");
  if (!config_.local_mode) telemetry_options.imds = imds_;
  XLOG_DEBUG("ARN of the AWS resource running the daemon: {}", config_.resource_arn);
  telemetry_ = std::make_unique<TelemetryReporter>(telemetry_options, credentials_.get());
  if (auto st = telemetry_->Start(); !st) return st;

  return StartHealth();
}

Status Daemon::StartHealth() {
  if (!config_.health_address.empty()) {
    health_ = std::make_unique<HealthServer>(config_.health_address, [this] { return ready_.load(); });
    if (auto st = health_->Start(); !st) return st;
    XLOG_INFO("Serving /healthz, /readyz and /metrics on {}", config_.health_address);
  }
  ready_ = true;
  return OkStatus();
}

void Daemon::Shutdown() {
  if (!ready_.exchange(false) && !receiver_ && !exporter_ && !store_ && !telemetry_) return;
  if (receiver_) receiver_->Stop();
  if (otlp_receiver_) otlp_receiver_->Stop();
  if (proxy_) proxy_->Stop();
  if (exporter_) {
    const size_t pending = buffer_ ? buffer_->queued_segments() : 0;
    XLOG_INFO("Shutting down: flushing {} buffered segments (up to {} ms)", pending, config_.shutdown_grace_ms);
    exporter_->Stop(std::chrono::milliseconds(config_.shutdown_grace_ms));
  }
  if (store_exporter_) {
    XLOG_INFO("Shutting down: storing {} buffered segments", buffer_ ? buffer_->queued_segments() : 0);
    store_exporter_->Stop(std::chrono::milliseconds(config_.shutdown_grace_ms));
  }
  if (retention_thread_.joinable()) {
    {
      MutexLock lock(retention_mu_);
      retention_stop_ = true;
    }
    retention_cv_.notify_all();
    retention_thread_.join();
  }
  if (api_) api_->Stop();
  if (telemetry_) telemetry_->Stop();  // after the exporter: the final record has the final counts
  if (health_) health_->Stop();
  auto& m = GlobalMetrics();
  XLOG_INFO("Stopped: received {}, sent {}, spilled {}, rejected {}, failed {}", m.segments_received.load(),
            m.segments_sent.load(), m.segments_spilled.load(),
            m.Rejected(RejectReason::kBadHeader) + m.Rejected(RejectReason::kBadJson) +
                m.Rejected(RejectReason::kInvalidSegment) + m.Rejected(RejectReason::kTooLarge) +
                m.Rejected(RejectReason::kInvalidTime),
            m.Failed(FailReason::kUnprocessed) + m.Failed(FailReason::kPermanentError) +
                m.Failed(FailReason::kRetriesExhausted) + m.Failed(FailReason::kShutdown));
  health_.reset();
  telemetry_.reset();
  proxy_.reset();
  receiver_.reset();
  exporter_.reset();
  store_exporter_.reset();
  api_.reset();
  store_.reset();
}

}  // namespace xrayd
