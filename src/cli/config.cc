#include "cli/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <sstream>

#include "cli/flags.h"
#include "common/log.h"

namespace xrayd::cli {
namespace {

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> specs = {
      {{"a", "resource-arn"}},  {{"o", "local-mode"}, true}, {{"m", "buffer-memory"}},
      {{"n", "region"}},        {{"b", "bind"}},             {{"t", "bind-tcp"}},
      {{"r", "role-arn"}},      {{"c", "config"}},           {{"f", "log-file"}},
      {{"l", "log-level"}},     {{"p", "proxy-address"}},    {{"v", "version"}, true},
      {{"h", "help"}, true},    {{"endpoint"}},              {{"health-address"}},
      {{"request-timeout"}},    {{"check-config"}, true},    {{"data-dir"}},
      {{"listen"}},             {{"retention-hours"}},       {{"max-store-mb"}},
      {{"api-keys"}},           {{"api-auth"}},              {{"api-max-connections"}},
      {{"api-max-body-mb"}},    {{"spool-dir"}},             {{"spool-max-mb"}},
      {{"spool-max-age"}},      {{"retry-max-elapsed"}},     {{"forward"}, true},
      {{"lb-logs"}},               {{"lb-name"}},
      {{"lb-logs-poll"}},          {{"lb-logs-s3-endpoint"}},
      {{"otlp-listen"}},           {{"otlp-endpoint"}},
      {{"otlp-encoding"}},      {{"otlp-indexed-attributes"}}, {{"otlp-only"}, true},
  };
  return specs;
}

Result<int> ParseInt(const std::string& flag, const std::string& s) {
  try {
    size_t used = 0;
    const long v = std::stol(s, &used);
    if (used == s.size() && v >= INT32_MIN && v <= INT32_MAX) return static_cast<int>(v);
  } catch (...) {
  }
  return Error::InvalidArgument("invalid value \"" + s + "\" for flag -" + flag + ": want an integer");
}

}  // namespace

Result<int64_t> ParseDuration(const std::string& text) {
  static constexpr std::pair<const char*, int64_t> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}, {"", 1000}};
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (...) {
    used = 0;
  }
  const std::string unit = used > 0 ? text.substr(used) : "?";
  for (const auto& [name, scale] : kUnits) {
    if (unit != name) continue;
    const double ms = value * static_cast<double>(scale);
    if (ms < 0 || ms > 1e15 || text.find_first_of("eEnNxX") != std::string::npos) break;
    return static_cast<int64_t>(ms);
  }
  return Error::InvalidArgument("invalid duration \"" + text + "\": want e.g. 30s, 5m, 2h, 1d or 500ms");
}

std::string FormatDuration(int64_t ms) {
  for (const auto& [name, scale] : {std::pair{"h", 3'600'000LL}, std::pair{"m", 60'000LL},
                                    std::pair{"s", 1000LL}})
    if (ms != 0 && ms % scale == 0) return std::to_string(ms / scale) + name;
  return std::to_string(ms) + "ms";
}

std::string UsageText() {
  return R"(Usage: xrayd [options]
       xrayd serve [options]

Receives X-Ray segment documents from X-Ray SDKs over UDP and uploads them to the
AWS X-Ray API in batches. A drop-in replacement for the AWS X-Ray daemon: the same
flags, config file, environment variables and ports.

`xrayd serve` also keeps the traces itself and answers the X-Ray API, so the AWS CLI,
AWS SDKs and Grafana's X-Ray data source can use it as their endpoint; no AWS account
is needed.

Options (AWS X-Ray daemon compatible):
  -b, --bind ADDR           UDP address to receive segments on (default 127.0.0.1:2000)
  -t, --bind-tcp ADDR       TCP address for the sampling proxy (default 127.0.0.1:2000)
  -c, --config FILE         load a YAML configuration file
  -n, --region REGION       AWS region to send segments to (default: $AWS_REGION)
  -r, --role-arn ARN        assume this IAM role to upload to another account
  -a, --resource-arn ARN    ARN of the AWS resource running the daemon
  -m, --buffer-memory MB    memory for buffered segments, at least 3
                            (default: 1% of host memory)
  -o, --local-mode          do not check for EC2 instance metadata
  -f, --log-file FILE       write logs to FILE instead of stderr
  -l, --log-level LEVEL     dev, debug, info, warn, error or prod (default prod)
  -p, --proxy-address URL   HTTP proxy for uploads (default: $HTTPS_PROXY)
  -v, --version             print the version and exit
  -h, --help                print this help and exit

xrayd additions:
      --endpoint URL        X-Ray API endpoint (http or https), e.g. an `xrayd serve`
      --health-address ADDR serve /healthz, /readyz and /metrics on ADDR (default off)
      --request-timeout S   seconds allowed for one upload request (default 30)
      --check-config        validate the settings, print them as YAML and the pipeline
                            that would run, and exit
      --spool-dir DIR       keep each exporter's backlog in a durable disk spool under
                            DIR/<exporter> (default: none, memory only)
      --spool-max-mb N      each exporter's spool bound; the oldest data is dropped past
                            it (default 1024)
      --spool-max-age D     drop spooled data older than D, e.g. 30s, 5m, 2h (default 24h)
      --retry-max-elapsed D retry a failing batch for up to D (default 5m); then it goes to
                            the spool, or is dropped without one

xrayd serve:
      --data-dir DIR        where the trace store lives (default ./xrayd-data)
      --listen ADDR         X-Ray API address (default 127.0.0.1:2020)
      --retention-hours H   delete traces older than H hours (default 168)
      --max-store-mb MB     delete the oldest traces past this size (default: no bound)
      --api-keys ID:SECRET[,ID:SECRET]  access keys whose SigV4 signatures the API
                            accepts (default: $XRAYD_API_KEYS)
      --api-auth MODE       auto (default: verify signatures unless --listen is a
                            loopback address), on, or off
      --api-max-connections N  connections the API holds open at once; past it a
                            new one is answered 503 and closed (default 1024)
      --api-max-body-mb MB  largest API request body, compressed or not (default 8)
      --forward             also send every segment to the AWS X-Ray API (region from -n /
                            $AWS_REGION, or --endpoint; the standard credential chain)
      --lb-logs SOURCE      read load-balancer access logs (ALB, Classic) from a
                            directory or s3://bucket/prefix; repeatable
      --lb-name NAME        name the load balancer's segments NAME (default: its own)
      --lb-logs-poll S      list S3 sources every S seconds (default 60)
      --lb-logs-s3-endpoint URL  S3 endpoint (default: $AWS_ENDPOINT_URL_S3, else AWS)
      --otlp-listen [ADDR]  also accept OTLP/HTTP traces (POST /v1/traces) on ADDR
                            (default 127.0.0.1:4318 when given without a value)
      --otlp-indexed-attributes A,B  span attributes that become annotations ("*": all)
      --otlp-endpoint URL   export segments as OTLP/HTTP to URL (/v1/traces appended)
      --otlp-encoding ENC   protobuf (default) or json
      --otlp-only           daemon mode: export to --otlp-endpoint alone (no X-Ray API, no AWS
                            credentials; the TCP sampling proxy and telemetry are off)

Any flag may also be written with one dash (-bind=0.0.0.0:2000) and take its
value after '=' or a space. Flags override the config file.

Environment:
  AWS_REGION                             region when neither -n nor Region is set; then
                                         instance metadata, or with -o AWS_DEFAULT_REGION
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE,
  AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE   credentials
  AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_SESSION_NAME   web identity (EKS)
  AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE   container credentials (ECS, EKS Pod Identity)
  AWS_EC2_METADATA_DISABLED, AWS_EC2_METADATA_SERVICE_ENDPOINT   instance metadata
  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_XRAY, AWS_ENDPOINT_URL_STS,
  AWS_STS_REGIONAL_ENDPOINTS             endpoint overrides (Endpoint / --endpoint win)
  AWS_HOSTNAME, AWS_INSTANCE_ID          telemetry record fields
  HTTPS_PROXY, NO_PROXY                  proxy when -p is not set
  AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT   endpoint variants
)";
}

uint64_t Config::BufferBytes(uint64_t host_memory_bytes) const {
  // As AWS's daemon: -m when positive, else 1% of host memory in whole MB, never under 3 MB.
  if (buffer_memory_mb > 0) return static_cast<uint64_t>(buffer_memory_mb) * 1024 * 1024;
  const uint64_t one_percent_mb = host_memory_bytes / (1024 * 1024) / 100;
  return std::max<uint64_t>(one_percent_mb, 3) * 1024 * 1024;
}

std::vector<std::string> Config::Validate() const {
  std::vector<std::string> problems;
  if (buffer_memory_mb > 0 && buffer_memory_mb < 3)
    problems.push_back(fmt::format("buffer memory (-m / TotalBufferSizeMB) must be at least 3 MB, got {}", buffer_memory_mb));
  if (concurrency < 1 || concurrency > 1024)
    problems.push_back(fmt::format("Concurrency must be between 1 and 1024, got {}", concurrency));
  if (auto lvl = log::ParseLevel(log_level); !lvl) problems.push_back("log level (-l / Logging.LogLevel): " + lvl.error().message);
  if (udp_address.find(':') == std::string::npos)
    problems.push_back("UDP address (-b / Socket.UDPAddress) \"" + udp_address + "\" is not host:port");
  if (tcp_address.find(':') == std::string::npos)
    problems.push_back("TCP address (-t / Socket.TCPAddress) \"" + tcp_address + "\" is not host:port");
  if (!health_address.empty() && health_address.find(':') == std::string::npos)
    problems.push_back("health address \"" + health_address + "\" is not host:port");
  if (!endpoint.empty() && endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0)
    problems.push_back("Endpoint \"" + endpoint + "\" must start with http:// or https://");
  if (request_timeout_ms <= 0) problems.push_back("request timeout must be positive");
  if (shutdown_grace_ms < 0) problems.push_back("Xrayd.ShutdownGraceSeconds must not be negative");
  if (max_attempts < 0 || max_attempts > 100)
    problems.push_back("Xrayd.MaxAttempts must be between 0 (no cap) and 100");
  if (spool_max_mb < 1) problems.push_back("--spool-max-mb must be at least 1");
  if (spool_max_age_ms < 1000) problems.push_back("--spool-max-age must be at least 1s");
  if (retry_max_elapsed_ms < 0) problems.push_back("--retry-max-elapsed must not be negative");
  if (forward && !serve) problems.push_back("--forward is for `xrayd serve` (daemon mode always sends to X-Ray)");
  if (listen_address.find(':') == std::string::npos)
    problems.push_back("listen address (--listen) \"" + listen_address + "\" is not host:port");
  if (data_dir.empty()) problems.push_back("--data-dir must not be empty");
  if (!lb_logs.empty() && !serve) problems.push_back("--lb-logs works with `xrayd serve` only");
  for (const auto& src : lb_logs)
    if (src.empty()) problems.push_back("--lb-logs: a source must not be empty");
  if (lb_logs_poll_seconds < 1) problems.push_back("--lb-logs-poll must be at least 1 second");
  if (retention_hours < 0) problems.push_back("--retention-hours must not be negative");
  if (max_store_mb < 0) problems.push_back("--max-store-mb must not be negative");
  if (api_auth != "auto" && api_auth != "on" && api_auth != "off")
    problems.push_back("--api-auth must be auto, on or off, got \"" + api_auth + "\"");
  if (api_max_connections < 1) problems.push_back("--api-max-connections must be at least 1");
  if (!otlp_listen.empty() && otlp_listen.find(':') == std::string::npos)
    problems.push_back("--otlp-listen \"" + otlp_listen + "\" is not host:port");
  if (otlp_only && otlp_endpoint.empty()) problems.push_back("--otlp-only needs --otlp-endpoint");
  if (otlp_only && serve) problems.push_back("--otlp-only is for daemon mode (`xrayd serve` stores locally)");
  if (otlp_encoding != "protobuf" && otlp_encoding != "json")
    problems.push_back("--otlp-encoding must be protobuf or json");
  if (!otlp_endpoint.empty() && otlp_endpoint.rfind("http://", 0) != 0 && otlp_endpoint.rfind("https://", 0) != 0)
    problems.push_back("--otlp-endpoint must be an http:// or https:// URL");
  if (api_max_body_mb < 1 || api_max_body_mb > 1024) problems.push_back("--api-max-body-mb must be between 1 and 1024");
  return problems;
}

std::string Config::ToYaml() const {
  auto q = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    return out + "\"";
  };
  auto b = [](bool v) { return v ? "true" : "false"; };
  return fmt::format(
      "Version: 2\nTotalBufferSizeMB: {}\nConcurrency: {}\nRegion: {}\nEndpoint: {}\nSocket:\n  UDPAddress: {}\n"
      "  TCPAddress: {}\nLogging:\n  LogRotation: {}\n  LogLevel: {}\n  LogPath: {}\nLocalMode: {}\nResourceARN: {}\n"
      "RoleARN: {}\nNoVerifySSL: {}\nProxyAddress: {}\nXrayd:\n  HealthAddress: {}\n  ShutdownGraceSeconds: {}\n"
      "  RequestTimeoutSeconds: {}\n  MaxAttempts: {}\n  SpoolDir: {}\n  SpoolMaxMB: {}\n  SpoolMaxAge: {}\n"
      "  RetryMaxElapsed: {}\n  Forward: {}\n  LbLogs: {}\n  LbName: {}\n  LbLogsPollSeconds: {}\n"
      "  LbLogsS3Endpoint: {}\n",
      buffer_memory_mb, concurrency, q(region), q(endpoint), q(udp_address), q(tcp_address), b(log_rotation),
      q(log_level), q(log_file), b(local_mode), q(resource_arn), q(role_arn), b(no_verify_ssl), q(proxy_address),
      q(health_address), shutdown_grace_ms / 1000, request_timeout_ms / 1000, max_attempts, q(spool_dir), spool_max_mb,
      FormatDuration(spool_max_age_ms), FormatDuration(retry_max_elapsed_ms), b(forward),
      q(fmt::format("{}", fmt::join(lb_logs, ","))), q(lb_name), lb_logs_poll_seconds, q(lb_logs_s3_endpoint));
}

Result<Config> LoadConfig(const std::vector<std::string>& all_args, const aws::EnvLookup& env) {
  const bool serve = !all_args.empty() && all_args.front() == "serve";
  std::vector<std::string> args(all_args.begin() + (serve ? 1 : 0), all_args.end());
  // --otlp-listen may stand alone (its value is optional): then it means the OTLP default port.
  for (size_t i = 0; i < args.size(); ++i)
    if ((args[i] == "--otlp-listen" || args[i] == "-otlp-listen") &&
        (i + 1 == args.size() || args[i + 1].rfind("-", 0) == 0))
      args[i] = "--otlp-listen=127.0.0.1:4318";
  auto parsed = ParseFlags(Specs(), args);
  if (!parsed) return parsed.error();
  const ParsedFlags& f = *parsed;
  Config c;
  c.serve = serve;
  auto has = [&](const char* n) { return f.Has(n); };
  if (has("help") && f.Get("help") == "true") c.show_help = true;
  if (has("version") && f.Get("version") == "true") c.show_version = true;
  if (c.show_help || c.show_version) return c;
  // Go's flag package stops at the first non-flag argument; AWS's daemon then ignores the rest.
  c.ignored_arguments = f.positional;

  // 1. The config file: -c is checked strictly; a default file is read leniently, as AWS's daemon does.
  bool strict = has("config");
  if (strict) {
    c.config_file = f.Get("config");
  } else {
    for (const char* path : kDefaultConfigPaths)
      if (std::ifstream(path).good()) {
        c.config_file = path;
        break;
      }
  }
  if (!c.config_file.empty()) {
    std::ifstream in(c.config_file);
    if (!in) return Error::InvalidArgument("cannot read config file " + c.config_file);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (auto st = ApplyConfigFile(ss.str(), c.config_file, c, strict); !st) return st.error();
  }
  // 2. The environment, where the file left the setting empty.
  if (c.region.empty()) c.region = env("AWS_REGION").value_or("");
  if (c.proxy_address.empty()) c.proxy_address = env("HTTPS_PROXY").value_or("");
  // 3. Flags win.
  if (has("bind")) c.udp_address = f.Get("bind");
  if (has("bind-tcp")) c.tcp_address = f.Get("bind-tcp");
  if (has("region")) c.region = f.Get("region");
  if (has("resource-arn")) c.resource_arn = f.Get("resource-arn");
  if (has("role-arn")) c.role_arn = f.Get("role-arn");
  if (has("local-mode")) c.local_mode = f.Get("local-mode") == "true";
  if (has("log-file")) c.log_file = f.Get("log-file");
  if (has("log-level")) c.log_level = f.Get("log-level");
  if (has("proxy-address")) c.proxy_address = f.Get("proxy-address");
  if (has("endpoint")) c.endpoint = f.Get("endpoint");
  if (has("health-address")) c.health_address = f.Get("health-address");
  if (has("check-config")) c.check_config = f.Get("check-config") == "true";
  if (has("buffer-memory")) {
    auto v = ParseInt("m", f.Get("buffer-memory"));
    if (!v) return v.error();
    c.buffer_memory_mb = *v;
  }
  if (has("data-dir")) c.data_dir = f.Get("data-dir");
  if (has("spool-dir")) c.spool_dir = f.Get("spool-dir");
  if (has("forward")) c.forward = f.Get("forward") == "true";
  for (auto [flag, field] : {std::pair{"spool-max-age", &c.spool_max_age_ms},
                             std::pair{"retry-max-elapsed", &c.retry_max_elapsed_ms}}) {
    if (!has(flag)) continue;
    auto v = ParseDuration(f.Get(flag));
    if (!v) return Error::InvalidArgument("flag -" + std::string(flag) + ": " + v.error().message);
    *field = *v;
  }
  if (has("listen")) c.listen_address = f.Get("listen");
  if (has("otlp-listen")) c.otlp_listen = f.Get("otlp-listen");
  if (has("otlp-endpoint")) c.otlp_endpoint = f.Get("otlp-endpoint");
  if (has("otlp-only")) c.otlp_only = f.Get("otlp-only") == "true";
  if (has("otlp-encoding")) c.otlp_encoding = f.Get("otlp-encoding");
  if (has("otlp-indexed-attributes")) c.otlp_indexed_attributes = f.Get("otlp-indexed-attributes");
  c.api_keys = env("XRAYD_API_KEYS").value_or("");
  if (has("api-keys")) c.api_keys = f.Get("api-keys");
  if (has("api-auth")) c.api_auth = f.Get("api-auth");
  for (auto [flag, field] : {std::pair{"retention-hours", &c.retention_hours}, std::pair{"max-store-mb", &c.max_store_mb},
                             std::pair{"api-max-connections", &c.api_max_connections},
                             std::pair{"api-max-body-mb", &c.api_max_body_mb},
                             std::pair{"spool-max-mb", &c.spool_max_mb}}) {
    if (!has(flag)) continue;
    auto v = ParseInt(flag, f.Get(flag));
    if (!v) return v.error();
    *field = *v;
  }
  if (f.all.count("lb-logs")) c.lb_logs = f.all.at("lb-logs");
  if (has("lb-name")) c.lb_name = f.Get("lb-name");
  if (has("lb-logs-s3-endpoint")) c.lb_logs_s3_endpoint = f.Get("lb-logs-s3-endpoint");
  if (has("lb-logs-poll")) {
    auto v = ParseInt("lb-logs-poll", f.Get("lb-logs-poll"));
    if (!v) return v.error();
    c.lb_logs_poll_seconds = *v;
  }
  if (has("request-timeout")) {
    auto v = ParseInt("request-timeout", f.Get("request-timeout"));
    if (!v) return v.error();
    c.request_timeout_ms = *v * 1000;
  }
  if (auto problems = c.Validate(); !problems.empty()) {
    std::string msg = "invalid configuration:";
    for (const auto& p : problems) msg += "\n  " + p;
    return Error::InvalidArgument(msg);
  }
  return c;
}

}  // namespace xrayd::cli
