// Process-wide logging in AWS X-Ray daemon's format: "2024-01-02T15:04:05Z [Info] message".
//
// Levels are the daemon's: dev, debug, info, warn, error, prod. Thread-safe (spdlog underneath).
// RateLimited() lets hot paths log a problem at most once per interval per call site while still
// counting every occurrence in metrics.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace xrayd::log {

struct Options {
  std::string level = "prod";  // dev | debug | info | warn | error | prod
  std::string file;            // empty: stdout
  bool rotation = true;        // roll the file at 50 MiB, keep one old file
};

// Parses a daemon log level name; error names the accepted values.
Result<spdlog::level::level_enum> ParseLevel(std::string_view name);

// Installs the process logger. Safe to call again (tests); the last call wins.
Status Init(const Options& options);

// Allows one message per `interval` for a call site; the rest are suppressed (and counted by the
// caller's metrics, not here).
class RateLimiter {
 public:
  explicit RateLimiter(std::chrono::milliseconds interval) : interval_ms_(interval.count()) {}
  bool Allow();
  // How many calls were suppressed since the last allowed one; resets on read.
  uint64_t TakeSuppressed() { return suppressed_.exchange(0, std::memory_order_relaxed); }

 private:
  const int64_t interval_ms_;
  std::atomic<int64_t> next_allowed_ms_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace xrayd::log

#define XLOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define XLOG_DEBUG(...) spdlog::debug(__VA_ARGS__)
#define XLOG_INFO(...) spdlog::info(__VA_ARGS__)
#define XLOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define XLOG_ERROR(...) spdlog::error(__VA_ARGS__)
