// Config: every setting of the daemon, as one value built once at startup.
//
// Sources, lowest to highest precedence: built-in defaults (AWS's daemon's), the YAML config
// file (-c, else /etc/amazon/xray/cfg.yaml or ./cfg.yaml if present, as AWS's daemon does),
// environment variables (region and proxy, as AWS's daemon reads them), then command-line flags. LoadConfig() does the whole resolution; Validate() reports every problem
// at once, each naming the setting.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "aws/credentials.h"
#include "common/result.h"

namespace xrayd::cli {

struct Config {
  // --- AWS X-Ray daemon settings (same names, defaults and meaning) ---
  std::string udp_address = "127.0.0.1:2000";  // -b, Socket.UDPAddress
  std::string tcp_address = "127.0.0.1:2000";  // -t, Socket.TCPAddress
  int buffer_memory_mb = 0;                    // -m, TotalBufferSizeMB; 0: 1% of host memory
  int concurrency = 8;                         // Concurrency
  std::string region;                          // -n, Region
  std::string endpoint;                        // --endpoint, Endpoint
  std::string resource_arn;                    // -a, ResourceARN
  std::string role_arn;                        // -r, RoleARN
  bool local_mode = false;                     // -o, LocalMode
  bool no_verify_ssl = false;                  // NoVerifySSL
  std::string proxy_address;                   // -p, ProxyAddress
  std::string log_level = "prod";              // -l, Logging.LogLevel
  std::string log_file;                        // -f, Logging.LogPath
  bool log_rotation = true;                    // Logging.LogRotation
  std::string config_file;                     // -c, or the default file found
  std::vector<std::string> ignored_arguments;  // after the first non-flag (Go's flag stops there)

  // --- xrayd additions (config file section "Xrayd") ---
  std::string health_address;  // --health-address, Xrayd.HealthAddress: /healthz /readyz /metrics; "" = off
  int shutdown_grace_ms = 5000;    // Xrayd.ShutdownGraceSeconds: flush time on SIGTERM
  int request_timeout_ms = 30000;  // --request-timeout, Xrayd.RequestTimeoutSeconds: per PutTraceSegments call
  int max_attempts = 0;            // Xrayd.MaxAttempts: per batch, first try included; 0: no cap (elapsed time bounds)
  // --- the exporter pipeline (pipeline/exporter.h) ---
  std::string spool_dir;                    // --spool-dir, Xrayd.SpoolDir: "" = memory only; one subdirectory per exporter
  int spool_max_mb = 1024;                  // --spool-max-mb, Xrayd.SpoolMaxMB: per exporter
  int64_t spool_max_age_ms = 24LL * 3600 * 1000;  // --spool-max-age, Xrayd.SpoolMaxAge (e.g. 24h)
  int64_t retry_max_elapsed_ms = 5LL * 60 * 1000;  // --retry-max-elapsed, Xrayd.RetryMaxElapsed (e.g. 5m)
  bool forward = false;                     // --forward, Xrayd.Forward: `xrayd serve` also sends to X-Ray
  // Xrayd.TelemetryIntervalSeconds (not in --help; for tests): PutTelemetryRecords period, as
  // AWS's daemon's fixed 60 s by default.
  int telemetry_interval_ms = 60000;

  // --- `xrayd serve`: embedded store and X-Ray API ---
  bool serve = false;                        // first argument "serve"
  std::string data_dir = "xrayd-data";       // --data-dir
  std::string listen_address = "127.0.0.1:2020";  // --listen
  int retention_hours = 168;                 // --retention-hours: traces older than this are deleted
  int max_store_mb = 0;                      // --max-store-mb: 0 = no size bound
  std::string api_keys;                      // --api-keys ID:SECRET,...: SigV4 keys the API accepts
  std::string api_auth = "auto";             // --api-auth auto|on|off; auto: on unless --listen is loopback
  int api_max_connections = 1024;            // --api-max-connections: open at once; past it 503 (http/server.h)
  int api_max_body_mb = 8;                   // --api-max-body-mb: request body, also once decompressed
  // Load-balancer access logs (src/lb/): a directory or s3://bucket/prefix each; config file
  // Xrayd.LbLogs (comma-separated), Xrayd.LbName, Xrayd.LbLogsPollSeconds, Xrayd.LbLogsS3Endpoint.
  std::vector<std::string> lb_logs;          // --lb-logs SOURCE, repeatable
  std::string lb_name;                       // --lb-name: segment name instead of the log's own
  int lb_logs_poll_seconds = 60;             // --lb-logs-poll: S3 listing period (directories: min(this, 5))
  std::string lb_logs_s3_endpoint;           // --lb-logs-s3-endpoint URL (else AWS_ENDPOINT_URL_S3)

  // --- the OpenTelemetry bridge (src/otlp/) ---
  std::string otlp_listen;      // --otlp-listen [HOST:PORT]: OTLP/HTTP receiver; "" = off; bare: 127.0.0.1:4318
  std::string otlp_endpoint;    // --otlp-endpoint URL: export segments as OTLP/HTTP; "" = off
  bool otlp_only = false;                  // --otlp-only, Otlp.Only: daemon mode exports to OTLP alone
  std::string otlp_encoding = "protobuf";  // --otlp-encoding protobuf|json
  std::string otlp_indexed_attributes;     // --otlp-indexed-attributes a,b,c ("*": all) -> annotations
  // Config file section "Otlp" only (Listen, Endpoint, Encoding and IndexedAttributes mirror the flags):
  bool otlp_gzip = true;                   // Otlp.Compression: gzip (default) or none
  int otlp_timeout_ms = 10000;             // Otlp.TimeoutSeconds: one export request
  bool otlp_insecure_skip_verify = false;  // Otlp.InsecureSkipVerify (NoVerifySSL also applies)
  std::string otlp_ca_file;                // Otlp.CaFile: PEM CA bundle trusted instead of the system's
  std::string otlp_cert_file;              // Otlp.CertFile + Otlp.KeyFile: client certificate (mutual TLS)
  std::string otlp_key_file;
  std::vector<std::pair<std::string, std::string>> otlp_headers;  // Otlp.Headers: name -> value

  // Actions rather than settings.
  bool show_help = false;
  bool show_version = false;
  bool check_config = false;  // --check-config: validate, print the effective config, exit

  // Buffer bound in bytes after applying the default rule (needs the host's memory size).
  uint64_t BufferBytes(uint64_t host_memory_bytes) const;
  // Every problem, one per line; empty when valid.
  std::vector<std::string> Validate() const;
  // The effective settings as YAML, in the config file's own keys (for --check-config).
  std::string ToYaml() const;
};

// A duration such as 500ms, 30s, 5m, 2h, 1d (a bare number is seconds) in milliseconds.
Result<int64_t> ParseDuration(const std::string& text);
// The inverse, shortest unit that is exact: 300000 → "5m".
std::string FormatDuration(int64_t ms);

// Parses argv (without argv[0]) and everything it points at. Errors are for the user: they name
// the flag, key or variable at fault.
Result<Config> LoadConfig(const std::vector<std::string>& args, const aws::EnvLookup& env);

// Applies a YAML config file's text onto `config` (exposed for tests).
Status ApplyConfigFile(const std::string& yaml_text, const std::string& path, Config& config, bool strict = true);

// Where AWS's daemon looks for a config file when -c is not given (first that exists wins).
inline constexpr const char* kDefaultConfigPaths[] = {"/etc/amazon/xray/cfg.yaml", "cfg.yaml"};

std::string UsageText();

}  // namespace xrayd::cli
