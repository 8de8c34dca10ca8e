#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <memory>

namespace xrayd::log {
namespace {

// Renders the level the way AWS's daemon does ("[Info]", "[Warn]").
class DaemonLevelFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view name;
    switch (msg.level) {
      case spdlog::level::trace: name = "Trace"; break;
      case spdlog::level::debug: name = "Debug"; break;
      case spdlog::level::info: name = "Info"; break;
      case spdlog::level::warn: name = "Warn"; break;
      case spdlog::level::err: name = "Error"; break;
      case spdlog::level::critical: name = "Critical"; break;
      default: name = "Off"; break;
    }
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<DaemonLevelFlag>();
  }
};

// AWS's daemon rolls its log file at 50 MiB and keeps one old file.
constexpr size_t kRotateBytes = 50 * 1024 * 1024;
constexpr size_t kRotateFiles = 1;

}  // namespace

Result<spdlog::level::level_enum> ParseLevel(std::string_view name) {
  if (name == "dev") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info" || name == "prod") return spdlog::level::info;
  if (name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  return Error::InvalidArgument("invalid log level \"" + std::string(name) +
                                "\" (want one of: dev, debug, info, warn, error, prod)");
}

Status Init(const Options& options) {
  auto level = ParseLevel(options.level);
  if (!level) return level.error();
  spdlog::sink_ptr sink;
  try {
    if (options.file.empty()) {
      sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();  // AWS's daemon logs to stdout
    } else if (options.rotation) {
      sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(options.file, kRotateBytes, kRotateFiles);
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return Error::Io("cannot open log file " + options.file + ": " + e.what());
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<DaemonLevelFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%SZ [%*] %v");
  sink->set_formatter(std::move(formatter));
  auto logger = std::make_shared<spdlog::logger>("xrayd", sink);
  logger->set_level(*level);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return OkStatus();
}

bool RateLimiter::Allow() {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t next = next_allowed_ms_.load(std::memory_order_relaxed);
  if (now >= next && next_allowed_ms_.compare_exchange_strong(next, now + interval_ms_)) return true;
  suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace xrayd::log
