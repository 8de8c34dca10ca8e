#include "daemon.h"

#include <unistd.h>

#include "aws/credential_chain.h"
#include "aws/endpoint.h"
#include "aws/region.h"
#include "aws/sts.h"
#include "common/log.h"
#include "export/store/store_sender.h"
#include "export/xray/xray_sender.h"
#include "otlp/otlp_sender.h"
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

std::vector<std::string> ExporterNames(const cli::Config& config) {
  std::vector<std::string> names;
  if (config.serve) names.push_back("store");
  if ((!config.serve && !config.otlp_only) || config.forward) names.push_back("xray");
  if (!config.otlp_endpoint.empty()) names.push_back("otlp");
  return names;
}

pipeline::ExporterOptions ExporterOptionsFor(const cli::Config& config, std::string_view name, bool primary) {
  pipeline::ExporterOptions o;
  // -m bounds the whole pipeline's memory: each exporter's queue gets an even share of it.
  o.queue_bytes = config.BufferBytes(HostMemoryBytes()) / std::max<size_t>(1, ExporterNames(config).size());
  o.max_batch_segments = 50;  // PutTraceSegments' documented maximum per call
  o.global_metrics = primary;
  o.retry.max_elapsed = std::chrono::milliseconds(config.retry_max_elapsed_ms);
  o.retry.max_attempts = config.max_attempts;
  if (name == "store") {
    // Up to kMaxSegmentsPerAppend segments per transaction; a partial batch waits only 50 ms, so a
    // PutTraceSegments caller can read its segments back at once (pipeline::WaitingSink). Two
    // senders: while one holds the store's write lock (SQLite), the other parses, compresses and
    // groups its batch (TraceStore::Append does that before the lock), so both cores serve ingest.
    o.senders = kStoreSenders;
    o.merge_max_segments = kMaxSegmentsPerAppend;
    o.flush_interval = std::chrono::milliseconds(50);
    o.retry.initial_backoff = std::chrono::milliseconds(100);
    o.retry.max_backoff = std::chrono::milliseconds(5000);
  } else {
    o.senders = config.concurrency;
    o.flush_interval = std::chrono::milliseconds(1000);
  }
  if (!config.spool_dir.empty()) {
    o.spool_dir = config.spool_dir + "/" + std::string(name);
    o.spool.max_bytes = static_cast<uint64_t>(config.spool_max_mb) * 1024 * 1024;
    o.spool.max_age = std::chrono::milliseconds(config.spool_max_age_ms);
  }
  return o;
}

std::string DescribePipeline(const cli::Config& config, const std::string& xray_endpoint) {
  const std::vector<std::string> names = ExporterNames(config);
  std::string out = "# Pipeline\n";
  std::string receivers = "UDP " + config.udp_address;
  if (config.serve) receivers += ", PutTraceSegments on " + config.listen_address;
  if (!config.otlp_listen.empty()) receivers += ", OTLP/HTTP on " + config.otlp_listen;
  for (const auto& source : config.lb_logs) receivers += ", load-balancer logs from " + source;
  out += "# receivers: " + receivers + "\n";
  if (names.size() > 1)
    out += fmt::format("# memory: {} MB (-m) split evenly over the {} exporters' queues\n",
                       config.BufferBytes(HostMemoryBytes()) / (1024 * 1024), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const auto o = ExporterOptionsFor(config, names[i], i == 0);
    const std::string where = names[i] == "store"  ? config.data_dir + "/traces.db"
                              : names[i] == "otlp" ? config.otlp_endpoint + " (OTLP/HTTP, " + config.otlp_encoding + ")"
                                                   : (xray_endpoint.empty() ? "X-Ray API" : xray_endpoint);
    out += fmt::format("# exporter {} -> {}: queue {:.1f} MB, {} sender(s), batches of {}\n", names[i], where,
                       static_cast<double>(o.queue_bytes) / (1024 * 1024), o.senders, std::max(o.max_batch_segments, o.merge_max_segments));
    out += fmt::format("#   retry: backoff {}..{} with full jitter, for up to {}{}\n",
                       cli::FormatDuration(o.retry.initial_backoff.count()), cli::FormatDuration(o.retry.max_backoff.count()),
                       cli::FormatDuration(o.retry.max_elapsed.count()),
                       o.retry.max_attempts > 0 ? fmt::format(" or {} attempts", o.retry.max_attempts) : "");
    out += o.spool_dir.empty() ? std::string("#   spool: none (memory only)\n")
                               : fmt::format("#   spool: {} (at most {} MB, max age {})\n", o.spool_dir,
                                             o.spool.max_bytes / (1024 * 1024),
                                             cli::FormatDuration(o.spool.max_age.count()));
  }
  return out;
}

Daemon::Daemon(cli::Config config, aws::EnvLookup env) : config_(std::move(config)), env_(std::move(env)) {}

Daemon::~Daemon() { Shutdown(); }

namespace {

// --otlp-indexed-attributes "a,b" ("*": all) -> the OTLP receiver's translation options.
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

void Daemon::AddExporter(std::unique_ptr<pipeline::BatchSender> sender) {
  auto options = ExporterOptionsFor(config_, sender->name(), exporters_.empty());
  exporters_.push_back(std::make_unique<pipeline::Exporter>(std::move(options), *sender));
  senders_.push_back(std::move(sender));
}

// --otlp-endpoint: one more exporter (its own queue, spool and retries), beside the others.
Status Daemon::AddOtlpExporter() {
  if (config_.otlp_endpoint.empty()) return OkStatus();
  otlp::OtlpExporterConfig oc;
  oc.endpoint = config_.otlp_endpoint;
  auto encoding = otlp::ParseEncoding(config_.otlp_encoding);
  if (!encoding) return encoding.error();
  oc.encoding = *encoding;
  oc.timeout = std::chrono::milliseconds(config_.otlp_timeout_ms);
  oc.gzip = config_.otlp_gzip;
  oc.headers = config_.otlp_headers;
  oc.insecure_skip_verify = config_.no_verify_ssl || config_.otlp_insecure_skip_verify;
  oc.ca_file = config_.otlp_ca_file;
  oc.cert_file = config_.otlp_cert_file;
  oc.key_file = config_.otlp_key_file;
  oc.proxy = config_.proxy_address;
  auto sender = otlp::MakeOtlpSender(oc);
  if (!sender) return sender.error();
  XLOG_INFO("Exporting segments as OTLP/HTTP ({}) to {}", config_.otlp_encoding, oc.TracesUrl());
  AddExporter(std::move(*sender));
  return OkStatus();
}

// --otlp-listen: OTLP/HTTP spans in, as X-Ray segments into the fan-out.
Status Daemon::StartOtlpReceiver() {
  if (config_.otlp_listen.empty()) return OkStatus();
  otlp::OtlpReceiverConfig oc;
  oc.listen = config_.otlp_listen;
  oc.translation = OtlpTranslation(config_.otlp_indexed_attributes);
  otlp_receiver_ = std::make_unique<otlp::OtlpReceiver>(oc, *fan_out_);
  auto port = otlp_receiver_->Start();
  if (!port) return port.error();
  XLOG_INFO("Accepting OTLP/HTTP traces on http://{}/v1/traces", config_.otlp_listen);
  return OkStatus();
}

void Daemon::StartPipeline() {
  std::vector<pipeline::Exporter*> all;
  for (auto& e : exporters_) {
    e->Start();
    all.push_back(e.get());
    const auto& o = e->options();
    XLOG_INFO("Exporter {}: queue {:.1f} MB, {} sender(s), retries for up to {}, spool {}", e->name(),
              static_cast<double>(o.queue_bytes) / (1024 * 1024), o.senders, cli::FormatDuration(o.retry.max_elapsed.count()),
              o.spool_dir.empty() ? std::string("none")
                                  : o.spool_dir + (e->spool_usable() ? "" : " (unusable: running from memory)"));
  }
  fan_out_ = std::make_unique<pipeline::FanOut>(std::move(all));
}

void Daemon::StopPipeline() {
  // Every exporter flushes at once, so shutdown takes one grace period, not one per exporter.
  std::vector<std::thread> stoppers;
  for (auto& e : exporters_) {
    auto s = e->metrics().Get();
    XLOG_INFO("Shutting down: exporter {} flushing {} queued segments (up to {} ms)", e->name(), s.queued,
              config_.shutdown_grace_ms);
    stoppers.emplace_back([&e, this] { e->Stop(std::chrono::milliseconds(config_.shutdown_grace_ms)); });
  }
  for (auto& t : stoppers) t.join();
}

Status Daemon::StartServe() {
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
  AddExporter(std::make_unique<StoreSender>(*store_));
  if (config_.forward) {
    auto endpoint = SetUpAws();
    if (!endpoint) return endpoint.error();
    XLOG_INFO("Forwarding segments to {} as well", endpoint->url);
    auto sender = MakeXraySender(*endpoint);
    if (!sender) return sender.error();
    AddExporter(std::move(*sender));
  }
  if (auto st = AddOtlpExporter(); !st) return st;
  StartPipeline();
  api_sink_ = std::make_unique<pipeline::WaitingSink>(*fan_out_, *exporters_.front(), std::chrono::seconds(5),
                                                      pipeline::WaitingSink::Wait::kBeforeReads, kMaxSegmentsPerAppend);
  // UDP first: once the API answers, a client may take the server as up and send segments at once.
  receiver_ = std::make_unique<UdpReceiver>(UdpReceiverOptions{config_.udp_address}, *fan_out_);
  if (auto st = receiver_->Start(); !st) return st;
  XLOG_INFO("Starting UDP receiver on {}", config_.udp_address);
  if (!config_.lb_logs.empty()) {
    // Waits (up to 5 s a batch) for the store to take what was offered: a log file is read at the
    // pace the store writes, rather than filling the queue at disk speed.
    lb_sink_ = std::make_unique<pipeline::WaitingSink>(*fan_out_, *exporters_.front(), std::chrono::seconds(5),
                                                       pipeline::WaitingSink::Wait::kAfterEachOffer, 0);
    auto lb = lb::LbLogs::Start({config_.lb_logs, config_.lb_name, config_.lb_logs_poll_seconds,
                                 config_.lb_logs_s3_endpoint, config_.region, config_.data_dir},
                                env_, *lb_sink_);
    if (!lb) return lb.error();
    lb_logs_ = std::move(*lb);
  }
  if (auto st = StartOtlpReceiver(); !st) return st;
  api::ApiOptions api_options;
  api_options.sink = api_sink_.get();
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
    proxy_credentials_ = std::make_unique<aws::StaticCredentialsProvider>(
        aws::Credentials{api_options.keys.front().id, api_options.keys.front().secret, ""}, "--api-keys");
  StartProxy(proxy_options);
  retention_thread_ = std::thread([this] { RetentionLoop(); });
  return OkStatus();
}

void Daemon::StartProxy(const SamplingProxyOptions& options) {
  proxy_ = std::make_unique<SamplingProxy>(options, config_.serve ? proxy_credentials_.get() : credentials_.get());
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
  XLOG_INFO("Using buffer memory limit of {} MB", config_.BufferBytes(HostMemoryBytes()) / (1024 * 1024));
  if (auto st = config_.serve ? StartServe() : StartDaemonMode(); !st) return st;
  return StartHealth();
}

Result<ResolvedEndpoint> Daemon::SetUpAws() {
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
  return endpoint;
}

namespace {

// The one missing-credentials policy (aws/signed_client.h) for every AWS destination: an AWS
// endpoint would refuse unsigned requests, so nothing is sent and the data waits; an explicitly
// configured endpoint (--endpoint, e.g. another xrayd) may accept them unsigned.
aws::SignedClientOptions XrayApiOptions(const cli::Config& config, const ResolvedEndpoint& endpoint) {
  aws::SignedClientOptions xray_api{endpoint.url, endpoint.signing_region};
  xray_api.on_missing_credentials =
      config.endpoint.empty() ? aws::MissingCredentials::kDoNotSend : aws::MissingCredentials::kSendUnsigned;
  return xray_api;
}

http::ClientOptions UploadHttp(const cli::Config& config) {
  http::ClientOptions h;
  h.proxy = config.proxy_address;
  h.verify_tls = !config.no_verify_ssl;
  h.timeout = std::chrono::milliseconds(config.request_timeout_ms);
  return h;
}

}  // namespace

Result<std::unique_ptr<pipeline::BatchSender>> Daemon::MakeXraySender(const ResolvedEndpoint& endpoint) {
  auto sender = xray::XraySender::Create({XrayApiOptions(config_, endpoint), UploadHttp(config_)}, credentials_.get());
  if (!sender) return sender.error();
  return std::unique_ptr<pipeline::BatchSender>(std::move(*sender));
}

Status Daemon::StartDaemonMode() {
  if (config_.otlp_only) return StartOtlpOnly();
  auto endpoint = SetUpAws();
  if (!endpoint) return endpoint.error();
  auto sender = MakeXraySender(*endpoint);
  if (!sender) return sender.error();
  AddExporter(std::move(*sender));
  if (auto st = AddOtlpExporter(); !st) return st;
  StartPipeline();

  receiver_ = std::make_unique<UdpReceiver>(UdpReceiverOptions{config_.udp_address}, *fan_out_);
  if (auto st = receiver_->Start(); !st) return st;
  XLOG_INFO("Starting UDP receiver on {}", config_.udp_address);
  if (auto st = StartOtlpReceiver(); !st) return st;

  const http::ClientOptions upload_http = UploadHttp(config_);
  SamplingProxyOptions proxy_options{config_.tcp_address, endpoint->url, endpoint->signing_region, upload_http};
  StartProxy(proxy_options);

  TelemetryOptions telemetry_options;
  telemetry_options.xray = XrayApiOptions(config_, *endpoint);
  telemetry_options.http = upload_http;
  telemetry_options.http.timeout = std::min(upload_http.timeout, std::chrono::milliseconds(10000));
  telemetry_options.interval = std::chrono::milliseconds(config_.telemetry_interval_ms);
  telemetry_options.resource_arn = config_.resource_arn;
  telemetry_options.hostname = aws::EnvValue(env_, "AWS_HOSTNAME").value_or("");
  telemetry_options.instance_id = aws::EnvValue(env_, "AWS_INSTANCE_ID").value_or("");
  if (!config_.local_mode) telemetry_options.imds = imds_;
  XLOG_DEBUG("ARN of the AWS resource running the daemon: {}", config_.resource_arn);
  telemetry_ = std::make_unique<TelemetryReporter>(telemetry_options, credentials_.get());
  return telemetry_->Start();
}

// --otlp-only: UDP (and --otlp-listen) -> the OTLP exporter alone. Nothing here talks to AWS, so
// there is no region, credential chain, sampling proxy or telemetry; SDKs whose sampling calls find
// no proxy on the TCP port fall back to their local default rules.
Status Daemon::StartOtlpOnly() {
  if (auto st = AddOtlpExporter(); !st) return st;
  StartPipeline();
  receiver_ = std::make_unique<UdpReceiver>(UdpReceiverOptions{config_.udp_address}, *fan_out_);
  if (auto st = receiver_->Start(); !st) return st;
  XLOG_INFO("Starting UDP receiver on {} (OTLP only: no X-Ray API, sampling proxy or telemetry)",
            config_.udp_address);
  return StartOtlpReceiver();
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
  lb_logs_.reset();  // a receiver: stops (joins its threads) before the pipeline does
  if (!ready_.exchange(false) && !receiver_ && exporters_.empty() && !store_ && !telemetry_) return;
  // Receivers first (UDP, then the API: it is one in serve mode), so nothing new arrives.
  if (receiver_) receiver_->Stop();
  if (otlp_receiver_) otlp_receiver_->Stop();
  if (proxy_) proxy_->Stop();
  if (api_) api_->Stop();
  StopPipeline();
  if (retention_thread_.joinable()) {
    {
      MutexLock lock(retention_mu_);
      retention_stop_ = true;
    }
    retention_cv_.notify_all();
    retention_thread_.join();
  }
  if (telemetry_) telemetry_->Stop();  // after the exporters: the final record has the final counts
  if (health_) health_->Stop();
  auto& m = GlobalMetrics();
  uint64_t rejected = 0, failed = 0;
  for (size_t i = 0; i < static_cast<size_t>(RejectReason::kCount); ++i) rejected += m.Rejected(static_cast<RejectReason>(i));
  for (size_t i = 0; i < static_cast<size_t>(FailReason::kCount); ++i) failed += m.Failed(static_cast<FailReason>(i));
  XLOG_INFO("Stopped: received {}, sent {}, spilled {}, rejected {}, failed {}", m.segments_received.load(),
            m.segments_sent.load(), m.segments_spilled.load(), rejected, failed);
  for (const auto& e : exporters_) {
    const auto s = e->metrics().Get();
    XLOG_INFO("Exporter {}: received {}, delivered {}, spooled {}, dropped {}", e->name(), s.received, s.delivered,
              s.spooled, s.DroppedTotal());
  }
  health_.reset();
  telemetry_.reset();
  proxy_.reset();
  receiver_.reset();
  api_.reset();
  api_sink_.reset();
  fan_out_.reset();
  exporters_.clear();
  senders_.clear();
  store_.reset();
}

}  // namespace xrayd
