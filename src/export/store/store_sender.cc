#include "export/store/store_sender.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "telemetry/metrics.h"

namespace xrayd {
namespace {

// Once per thread: nice + kSenderNiceIncrement (at most 19). Best effort: a failure is logged.
void LowerThisThreadsPriority() {
  thread_local bool lowered = false;
  if (lowered) return;
  lowered = true;
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, tid);
  if (errno != 0) return;
  if (::setpriority(PRIO_PROCESS, tid, std::min(19, nice + kSenderNiceIncrement)) != 0)
    XLOG_WARN("Store sender: could not lower its thread's priority: {}", std::strerror(errno));
}

}  // namespace

using pipeline::SendOutcome;

SendOutcome StoreSender::Send(const std::vector<std::string>& segments) {
  LowerThisThreadsPriority();
  const size_t n = segments.size();
  const auto t0 = std::chrono::steady_clock::now();
  auto result = store_.Append(segments);
  GlobalMetrics().export_latency.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (result) {
    if (!result->empty() && refused_log_.Allow())
      XLOG_WARN("Trace store refused {} of {} segments (first: {})", result->size(), n, result->front().second);
    return {SendOutcome::Kind::kDelivered, std::min(result->size(), n), std::nullopt, {}};
  }
  const Error& e = result.error();
  // The store's SQLite errors name it already ("trace store: ..."); its other errors get the prefix.
  std::string message = e.message.starts_with("trace store: ") ? e.message : "trace store: " + e.message;
  if (!e.IsRetryable()) return {SendOutcome::Kind::kPermanent, 0, std::nullopt, std::move(message)};
  return {SendOutcome::Kind::kRetryable, 0, e.retry_after, std::move(message)};
}

}  // namespace xrayd
