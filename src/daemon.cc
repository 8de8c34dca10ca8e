#include "daemon.h"

#include <unistd.h>

#include "aws/credential_chain.h"
#include "aws/endpoint.h"
#include "common/log.h"
#include "telemetry/metrics.h"

namespace xrayd {
namespace {

bool EnvTrue(const aws::EnvLookup& env, std::string_view name) {
  auto v = env(name);
  return v && (*v == "true" || *v == "TRUE" || *v == "True" || *v == "1");
}

uint64_t HostMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

}  // namespace

Result<ResolvedEndpoint> ResolveXrayEndpoint(const cli::Config& config, const aws::EnvLookup& env) {
  std::string region = config.region;
  // After -n / Region / AWS_REGION (resolved in LoadConfig): the SDK session's region, which AWS's
  // daemon consults in local mode. Instance metadata is the remaining source (issue #4).
  if (region.empty()) region = env("AWS_DEFAULT_REGION").value_or("");
  if (region.empty()) region = aws::SharedConfigValue(env, "region").value_or("");
  if (!config.endpoint.empty()) {
    if (auto u = aws::ParseUrl(config.endpoint); !u) return u.error();
    return ResolvedEndpoint{config.endpoint, region.empty() ? "us-east-1" : region};
  }
  if (region.empty())
    return Error::InvalidArgument(
        "Cannot fetch region variable from config file, environment variables or the shared config file: "
        "set -n/--region, Region in the config file, or AWS_REGION (or give --endpoint)");
  aws::EndpointVariant variant{EnvTrue(env, "AWS_USE_FIPS_ENDPOINT"), EnvTrue(env, "AWS_USE_DUALSTACK_ENDPOINT")};
  auto url = aws::ServiceEndpoint("xray", region, variant);
  if (!url) return url.error();
  // The signing region drops a fips- prefix or -fips suffix; ServiceEndpoint already parsed it.
  std::string signing = region;
  if (signing.rfind("fips-", 0) == 0) signing = signing.substr(5);
  if (signing.size() > 5 && signing.compare(signing.size() - 5, 5, "-fips") == 0) signing.resize(signing.size() - 5);
  return ResolvedEndpoint{*url, signing};
}

Daemon::Daemon(cli::Config config, aws::EnvLookup env) : config_(std::move(config)), env_(std::move(env)) {}

Daemon::~Daemon() { Shutdown(); }

Status Daemon::StartServe(BufferOptions buffer_options) {
  store::StoreOptions so;
  so.data_dir = config_.data_dir;
  so.retention_seconds = config_.retention_hours * 3600.0;
  so.max_bytes = static_cast<uint64_t>(config_.max_store_mb) * 1024 * 1024;
  auto opened = store::TraceStore::Open(so);
  if (!opened) return opened.error();
  store_ = std::move(*opened);
  XLOG_INFO("Trace store in {}/traces.db (retention {} h{})", config_.data_dir, config_.retention_hours,
            config_.max_store_mb > 0 ? fmt::format(", at most {} MB", config_.max_store_mb) : "");
  api_ = std::make_unique<api::XrayApiServer>(api::ApiOptions{config_.listen_address}, *store_);
  if (auto st = api_->Start(); !st) return st;
  XLOG_INFO("Serving the X-Ray API on http://{}", config_.listen_address);

  buffer_ = std::make_unique<SegmentBuffer>(buffer_options);
  store_exporter_ = std::make_unique<StoreExporter>(*buffer_, *store_);
  store_exporter_->Start();
  receiver_ = std::make_unique<UdpReceiver>(UdpReceiverOptions{config_.udp_address}, *buffer_);
  if (auto st = receiver_->Start(); !st) return st;
  XLOG_INFO("Starting UDP receiver on {}", config_.udp_address);

  // SDKs' sampling calls on the TCP port go to our own API.
  std::string self = config_.listen_address;
  if (self.rfind("0.0.0.0:", 0) == 0) self = "127.0.0.1:" + self.substr(8);
  SamplingProxyOptions proxy_options{config_.tcp_address, "http://" + self, "us-east-1", {}};
  proxy_ = std::make_unique<SamplingProxy>(proxy_options, nullptr);
  if (auto st = proxy_->Start(); !st) {
    XLOG_ERROR("Sampling proxy not started: {}", st.error().message);
    proxy_.reset();
  } else {
    XLOG_INFO("Starting proxy http server on {}", config_.tcp_address);
  }
  retention_thread_ = std::thread([this] { RetentionLoop(); });
  return OkStatus();
}

void Daemon::RetentionLoop() {
  std::unique_lock lock(retention_mu_);
  while (!retention_stop_) {
    lock.unlock();
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (auto deleted = store_->EnforceRetention(now); !deleted) {
      XLOG_ERROR("Retention pass failed: {}", deleted.error().message);
    } else if (*deleted > 0) {
      XLOG_INFO("Retention: deleted {} traces", *deleted);
    }
    lock.lock();
    retention_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return retention_stop_; });
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

  auto endpoint = ResolveXrayEndpoint(config_, env_);
  if (!endpoint) return endpoint.error();
  XLOG_INFO("Using region: {}", endpoint->signing_region);
  XLOG_INFO("Sending segments to {}", endpoint->url);

  auto creds = aws::DefaultCredentialsChain(env_);
  if (creds) {
    credentials_ = std::move(*creds);
    XLOG_INFO("Using AWS credentials from {}", credentials_->Describe());
  } else {
    XLOG_WARN("No AWS credentials ({}); requests will be sent unsigned", creds.error().message);
  }

  buffer_ = std::make_unique<SegmentBuffer>(buffer_options);

  xray::ExporterOptions ex;
  ex.concurrency = config_.concurrency;
  ex.endpoint = endpoint->url;
  ex.region = endpoint->signing_region;
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
  proxy_ = std::make_unique<SamplingProxy>(proxy_options, credentials_.get());
  if (auto st = proxy_->Start(); !st) {
    // As AWS's daemon: a TCP bind failure is logged, not fatal; segments still flow over UDP.
    XLOG_ERROR("Sampling proxy not started: {}", st.error().message);
    proxy_.reset();
  } else {
    XLOG_INFO("Starting proxy http server on {}", config_.tcp_address);
  }

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
  if (!ready_.exchange(false) && !receiver_ && !exporter_ && !store_) return;
  if (receiver_) receiver_->Stop();
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
      std::lock_guard lock(retention_mu_);
      retention_stop_ = true;
    }
    retention_cv_.notify_all();
    retention_thread_.join();
  }
  if (api_) api_->Stop();
  if (health_) health_->Stop();
  auto& m = GlobalMetrics();
  XLOG_INFO("Stopped: received {}, sent {}, spilled {}, rejected {}, failed {}", m.segments_received.load(),
            m.segments_sent.load(), m.segments_spilled.load(),
            m.Rejected(RejectReason::kBadHeader) + m.Rejected(RejectReason::kBadJson) +
                m.Rejected(RejectReason::kInvalidSegment) + m.Rejected(RejectReason::kTooLarge),
            m.Failed(FailReason::kUnprocessed) + m.Failed(FailReason::kPermanentError) +
                m.Failed(FailReason::kRetriesExhausted) + m.Failed(FailReason::kShutdown));
  health_.reset();
  proxy_.reset();
  receiver_.reset();
  exporter_.reset();
  store_exporter_.reset();
  api_.reset();
  store_.reset();
}

}  // namespace xrayd
