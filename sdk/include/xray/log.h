// Where the SDK reports its own problems (invalid annotation keys, a missing context, send errors).
//
// By default messages go to stderr as "xray-sdk <LEVEL>: <message>". SetLogger replaces the sink for the
// whole process; it is safe to call at any time from any thread, and the sink may be called
// concurrently from many threads. The SDK never throws from logging.
#pragma once

#include <functional>
#include <string_view>

namespace xray {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

using Logger = std::function<void(LogLevel, std::string_view)>;

// Replaces the sink; an empty function silences the SDK. Returns the previous sink.
Logger SetLogger(Logger logger);

// Sends one message to the current sink (used by the SDK itself).
void Log(LogLevel level, std::string_view message) noexcept;

}  // namespace xray
