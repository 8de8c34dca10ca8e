#include "xray/log.h"

#include <cstdio>
#include <memory>
#include <mutex>

namespace xray {
namespace {

void StderrLogger(LogLevel level, std::string_view message) {
  static constexpr const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  std::fprintf(stderr, "xray-sdk %s: %.*s\n", kNames[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}

// The sink is swapped as a whole under a mutex; callers take a shared_ptr copy so a message being
// logged while the sink is replaced still goes to a live function.
std::mutex g_mu;
std::shared_ptr<Logger> g_logger = std::make_shared<Logger>(StderrLogger);

}  // namespace

Logger SetLogger(Logger logger) {
  auto next = std::make_shared<Logger>(std::move(logger));
  std::lock_guard lock(g_mu);
  Logger previous = *g_logger;
  g_logger = std::move(next);
  return previous;
}

void Log(LogLevel level, std::string_view message) noexcept {
  std::shared_ptr<Logger> sink;
  {
    std::lock_guard lock(g_mu);
    sink = g_logger;
  }
  try {
    if (sink && *sink) (*sink)(level, message);
  } catch (...) {
    // A throwing sink must not reach application code.
  }
}

}  // namespace xray
