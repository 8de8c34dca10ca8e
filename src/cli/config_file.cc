// The YAML config file AWS's daemon reads, plus xrayd's "Xrayd" section.
//
// AWS's daemon 3.x reads "Version: 1" and "Version: 2" files the same way and refuses the 2.x
// format (no Version; MemoryLimit, Processor.*) with a pointer to its migration script; so do we.
// As in AWS's daemon, a zero number or empty string means "the default". Unknown keys and values
// of the wrong type are errors that name the key, so a typo never silently falls back to a
// default (strict=false, for a file found without -c, ignores unknown keys as AWS's daemon does).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "cli/config.h"

namespace xrayd::cli {
namespace {

struct KeyError {
  std::string key;
  std::string what;
};

class FileReader {
 public:
  FileReader(const YAML::Node& root, std::string path) : root_(root), path_(std::move(path)) {}

  template <typename T>
  void Read(const YAML::Node& map, const std::string& prefix, const std::string& key, T& out) {
    const YAML::Node n = map[key];
    seen_.insert(prefix + key);
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsScalar()) {
      errors_.push_back({prefix + key, "must be a single value"});
      return;
    }
    try {
      out = n.as<T>();
    } catch (const YAML::Exception&) {
      errors_.push_back({prefix + key, std::string("must be ") + TypeName<T>() + ", got \"" + n.Scalar() + "\""});
    }
  }

  YAML::Node Section(const std::string& key) {
    seen_.insert(key);
    const YAML::Node n = root_[key];
    if (!n.IsDefined() || n.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!n.IsMap()) {
      errors_.push_back({key, "must be a mapping"});
      return YAML::Node(YAML::NodeType::Map);
    }
    return n;
  }

  // Reports keys at any level that no Read()/Section() asked for.
  void CheckUnknown(const YAML::Node& map, const std::string& prefix) {
    for (const auto& kv : map) {
      const std::string key = prefix + kv.first.as<std::string>();
      if (!seen_.count(key)) {
        errors_.push_back({key, "unknown key"});
      } else if (kv.second.IsMap()) {
        CheckUnknown(kv.second, key + ".");
      }
    }
  }

  void Fail(const std::string& key, const std::string& what) { errors_.push_back({key, what}); }
  // Marks a key as known (a mapping whose entries the caller reads itself).
  void Seen(const std::string& key) { seen_.insert(key); }

  Status Finish() {
    if (errors_.empty()) return OkStatus();
    std::string msg = "config file " + path_ + ":";
    for (const auto& e : errors_) msg += "\n  " + e.key + ": " + e.what;
    return Error::InvalidArgument(msg);
  }

 private:
  template <typename T>
  static const char* TypeName() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_integral_v<T>) return "an integer";
    return "a string";
  }

  const YAML::Node root_;
  const std::string path_;
  std::set<std::string> seen_;
  std::vector<KeyError> errors_;
};

}  // namespace

namespace {
Status ApplyConfigFileUnchecked(const std::string& yaml_text, const std::string& path, Config& c, bool strict);
}  // namespace

Status ApplyConfigFile(const std::string& yaml_text, const std::string& path, Config& c, bool strict) {
  // yaml-cpp reports odd shapes (complex keys, aliases in odd places) by throwing; turn any of
  // those into the same kind of error as the rest.
  try {
    return ApplyConfigFileUnchecked(yaml_text, path, c, strict);
  } catch (const YAML::Exception& e) {
    return Error::InvalidArgument("config file " + path + ": " + e.what());
  }
}

namespace {
Status ApplyConfigFileUnchecked(const std::string& yaml_text, const std::string& path, Config& c, bool strict) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Error::InvalidArgument("config file " + path + ": not valid YAML: " + e.what());
  }
  if (!root.IsDefined() || root.IsNull() || !root.IsMap())
    return Error::InvalidArgument("config file " + path + ": must be a YAML mapping with \"Version: 2\"");

  FileReader r(root, path);
  static constexpr const char* kMigrate =
      "is from the X-Ray daemon 2.x config format; use AWS's X-Ray daemon config migration script to update the file";
  for (const char* old_key : {"MemoryLimit", "LogRotation"})
    if (root[old_key].IsDefined()) r.Fail(old_key, kMigrate);
  if (root["Processor"].IsDefined()) r.Fail("Processor", kMigrate);
  int version = 0;
  r.Read(root, "", "Version", version);
  if (!root["Version"].IsDefined()) {
    r.Fail("Version", "missing (want 2); files without it are in the 2.x format: use AWS's migration script");
  } else if (version != 1 && version != 2) {
    r.Fail("Version", "must be 1 or 2, got " + root["Version"].Scalar());
  }
  auto read_default = [&](const YAML::Node& map, const std::string& prefix, const std::string& key, auto& out) {
    auto before = out;
    r.Read(map, prefix, key, out);
    if (out == std::remove_reference_t<decltype(out)>{}) out = before;  // zero or empty: keep the default
  };
  read_default(root, "", "TotalBufferSizeMB", c.buffer_memory_mb);
  read_default(root, "", "Concurrency", c.concurrency);
  read_default(root, "", "Region", c.region);
  read_default(root, "", "Endpoint", c.endpoint);
  read_default(root, "", "ResourceARN", c.resource_arn);
  read_default(root, "", "RoleARN", c.role_arn);
  r.Read(root, "", "LocalMode", c.local_mode);
  r.Read(root, "", "NoVerifySSL", c.no_verify_ssl);
  read_default(root, "", "ProxyAddress", c.proxy_address);
  const YAML::Node socket = r.Section("Socket");
  read_default(socket, "Socket.", "UDPAddress", c.udp_address);
  read_default(socket, "Socket.", "TCPAddress", c.tcp_address);
  const YAML::Node logging = r.Section("Logging");
  r.Read(logging, "Logging.", "LogRotation", c.log_rotation);
  read_default(logging, "Logging.", "LogLevel", c.log_level);
  read_default(logging, "Logging.", "LogPath", c.log_file);

  const YAML::Node ours = r.Section("Xrayd");
  read_default(ours, "Xrayd.", "HealthAddress", c.health_address);
  int grace_s = c.shutdown_grace_ms / 1000, timeout_s = c.request_timeout_ms / 1000;
  r.Read(ours, "Xrayd.", "ShutdownGraceSeconds", grace_s);
  read_default(ours, "Xrayd.", "RequestTimeoutSeconds", timeout_s);
  read_default(ours, "Xrayd.", "MaxAttempts", c.max_attempts);
  read_default(ours, "Xrayd.", "SpoolDir", c.spool_dir);
  read_default(ours, "Xrayd.", "SpoolMaxMB", c.spool_max_mb);
  r.Read(ours, "Xrayd.", "Forward", c.forward);
  for (auto [key, field] : {std::pair{"SpoolMaxAge", &c.spool_max_age_ms}, std::pair{"RetryMaxElapsed", &c.retry_max_elapsed_ms}}) {
    std::string text;
    r.Read(ours, "Xrayd.", key, text);
    if (text.empty()) continue;
    if (auto v = ParseDuration(text)) *field = *v;
    else r.Fail(std::string("Xrayd.") + key, v.error().message);
  }
  double telemetry_s = 0;
  r.Read(ours, "Xrayd.", "TelemetryIntervalSeconds", telemetry_s);
  if (telemetry_s < 0) r.Fail("Xrayd.TelemetryIntervalSeconds", "must be positive");
  if (telemetry_s > 0) c.telemetry_interval_ms = std::max(1, static_cast<int>(telemetry_s * 1000));
  std::string lb_logs;
  read_default(ours, "Xrayd.", "LbLogs", lb_logs);
  for (size_t start = 0; !lb_logs.empty() && start <= lb_logs.size();) {
    const size_t comma = std::min(lb_logs.find(',', start), lb_logs.size());
    if (comma > start) c.lb_logs.push_back(lb_logs.substr(start, comma - start));
    start = comma + 1;
  }
  read_default(ours, "Xrayd.", "LbName", c.lb_name);
  read_default(ours, "Xrayd.", "LbLogsPollSeconds", c.lb_logs_poll_seconds);
  read_default(ours, "Xrayd.", "LbLogsS3Endpoint", c.lb_logs_s3_endpoint);
  c.shutdown_grace_ms = grace_s * 1000;
  c.request_timeout_ms = timeout_s * 1000;

  // The OpenTelemetry bridge (docs/OTLP.md).
  const YAML::Node otlp = r.Section("Otlp");
  read_default(otlp, "Otlp.", "Listen", c.otlp_listen);
  read_default(otlp, "Otlp.", "Endpoint", c.otlp_endpoint);
  read_default(otlp, "Otlp.", "Encoding", c.otlp_encoding);
  read_default(otlp, "Otlp.", "IndexedAttributes", c.otlp_indexed_attributes);
  std::string compression;
  r.Read(otlp, "Otlp.", "Compression", compression);
  if (compression == "none") c.otlp_gzip = false;
  else if (!compression.empty() && compression != "gzip") r.Fail("Otlp.Compression", "must be gzip or none");
  int otlp_timeout_s = 0;
  r.Read(otlp, "Otlp.", "TimeoutSeconds", otlp_timeout_s);
  if (otlp_timeout_s < 0) r.Fail("Otlp.TimeoutSeconds", "must be positive");
  if (otlp_timeout_s > 0) c.otlp_timeout_ms = otlp_timeout_s * 1000;
  r.Read(otlp, "Otlp.", "InsecureSkipVerify", c.otlp_insecure_skip_verify);
  r.Read(otlp, "Otlp.", "Only", c.otlp_only);
  r.Read(otlp, "Otlp.", "CaFile", c.otlp_ca_file);
  r.Read(otlp, "Otlp.", "CertFile", c.otlp_cert_file);
  r.Read(otlp, "Otlp.", "KeyFile", c.otlp_key_file);
  if (const YAML::Node headers = otlp["Headers"]; headers.IsDefined() && !headers.IsNull()) {
    r.Seen("Otlp.Headers");
    if (!headers.IsMap()) {
      r.Fail("Otlp.Headers", "must be a mapping of header name to value");
    } else {
      for (const auto& kv : headers) {
        std::string name = kv.first.as<std::string>(), value;
        r.Read(headers, "Otlp.Headers.", name, value);
        c.otlp_headers.emplace_back(name, value);
      }
    }
  }

  if (strict) r.CheckUnknown(root, "");
  return r.Finish();
}
}  // namespace

}  // namespace xrayd::cli
