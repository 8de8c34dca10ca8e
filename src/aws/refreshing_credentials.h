// RefreshingCredentialsProvider: caches temporary credentials from a fetch function (STS, the
// container endpoint, instance metadata, credential_process) and renews them before they expire.
//
// Thread safety: Get() may be called from any number of threads (the exporter's senders, the
// sampling proxy, telemetry). One caller at a time runs the fetch, outside the lock:
//   * while the cached credentials are fresh, Get() returns them (a mutex and a copy);
//   * inside `refresh_before` of expiry, the first caller refreshes and every other caller keeps
//     getting the still-valid cached credentials meanwhile;
//   * when nothing valid is cached, callers wait for the refresh in progress (bounded by the
//     fetch's own timeouts) and get its result.
// A failed refresh is logged once per incident (Warn; later failures at Debug; recovery at Info)
// and retried with exponential backoff and jitter: Get() never fetches in a tight loop. During
// the backoff Get() returns the cached credentials while they are valid, else the last error.
// Owns no thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "aws/credentials.h"
#include "common/thread_annotations.h"

namespace xrayd::aws {

struct RefreshOptions {
  // Start refreshing this long before expiry (AWS SDKs use 5-15 minutes). For credentials that
  // live shorter than this, the refresh starts halfway through their usable life.
  std::chrono::milliseconds refresh_before{std::chrono::minutes(5)};
  // Credentials this close to expiry are no longer handed out (a request signed now must still
  // be valid when it arrives).
  std::chrono::milliseconds expiry_margin{std::chrono::seconds(10)};
  std::chrono::milliseconds initial_backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(2)};
  // Time seam for tests.
  std::function<std::chrono::system_clock::time_point()> clock = [] { return std::chrono::system_clock::now(); };
};

using CredentialsFetcher = std::function<Result<TemporaryCredentials>()>;

class RefreshingCredentialsProvider final : public CredentialsProvider {
 public:
  RefreshingCredentialsProvider(std::string description, CredentialsFetcher fetch, RefreshOptions options = {});

  Result<Credentials> Get() override;
  std::string Describe() const override { return description_; }

  // Fetches run so far (successful or not); for tests and logs.
  uint64_t fetch_count() const;

 private:
  using TimePoint = std::chrono::system_clock::time_point;
  bool UsableLocked(TimePoint now) const XRAYD_REQUIRES(mu_);
  bool FreshLocked(TimePoint now) const XRAYD_REQUIRES(mu_);
  void RecordSuccessLocked(TemporaryCredentials fetched, TimePoint now) XRAYD_REQUIRES(mu_);
  void RecordFailureLocked(const Error& error, TimePoint now) XRAYD_REQUIRES(mu_);
  Error NoCredentialsLocked() const XRAYD_REQUIRES(mu_);

  // Constant after construction.
  const std::string description_;
  const CredentialsFetcher fetch_;
  const RefreshOptions options_;

  mutable Mutex mu_;
  std::condition_variable refreshed_;  // waits on mu_: a fetch finished
  std::optional<TemporaryCredentials> cached_ XRAYD_GUARDED_BY(mu_);
  TimePoint refresh_at_ XRAYD_GUARDED_BY(mu_){};    // when the cached credentials should be renewed
  bool refreshing_ XRAYD_GUARDED_BY(mu_) = false;   // a caller is running fetch_ now
  TimePoint next_attempt_ XRAYD_GUARDED_BY(mu_){};  // no fetch before this (backoff after a failure)
  int consecutive_failures_ XRAYD_GUARDED_BY(mu_) = 0;
  std::optional<Error> last_error_ XRAYD_GUARDED_BY(mu_);
  uint64_t fetches_ XRAYD_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ XRAYD_GUARDED_BY(mu_){std::random_device{}()};
};

}  // namespace xrayd::aws
