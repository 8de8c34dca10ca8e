#include "aws/refreshing_credentials.h"

#include "common/log.h"

namespace xrayd::aws {
namespace {

std::string FormatTime(std::chrono::system_clock::time_point t) {
  const std::string s = FormatAmzDate(t);  // 20240102T150405Z
  return s.substr(0, 4) + "-" + s.substr(4, 2) + "-" + s.substr(6, 2) + "T" + s.substr(9, 2) + ":" +
         s.substr(11, 2) + ":" + s.substr(13, 2) + "Z";
}

}  // namespace

RefreshingCredentialsProvider::RefreshingCredentialsProvider(std::string description, CredentialsFetcher fetch,
                                                             RefreshOptions options)
    : description_(std::move(description)), fetch_(std::move(fetch)), options_(std::move(options)) {}

uint64_t RefreshingCredentialsProvider::fetch_count() const {
  MutexLock lock(mu_);
  return fetches_;
}

bool RefreshingCredentialsProvider::UsableLocked(TimePoint now) const {
  if (!cached_) return false;
  return !cached_->expiration || now < *cached_->expiration - options_.expiry_margin;
}

bool RefreshingCredentialsProvider::FreshLocked(TimePoint now) const {
  return UsableLocked(now) && (!cached_->expiration || now < refresh_at_);
}

Result<Credentials> RefreshingCredentialsProvider::Get() {
  MutexLock lock(mu_);
  for (;;) {
    const TimePoint now = options_.clock();
    if (FreshLocked(now)) return cached_->credentials;
    const bool usable = UsableLocked(now);
    if (refreshing_) {
      if (usable) return cached_->credentials;  // another caller is renewing them
      const uint64_t seen = fetches_;
      lock.Wait(refreshed_, [&]() XRAYD_REQUIRES(mu_) { return !refreshing_ || fetches_ != seen; });
      if (UsableLocked(options_.clock())) return cached_->credentials;
      if (!refreshing_) return NoCredentialsLocked();
      continue;
    }
    if (now < next_attempt_) {  // backing off after a failure
      if (usable) return cached_->credentials;
      return NoCredentialsLocked();
    }
    refreshing_ = true;
    ++fetches_;
    lock.Unlock();
    Result<TemporaryCredentials> fetched = Error::Retryable("credentials fetch threw");
    try {
      fetched = fetch_();
    } catch (const std::exception& e) {  // a fetcher must not take a sender thread down with it
      fetched = Error::Retryable(std::string("credentials fetch failed: ") + e.what());
    }
    lock.Lock();
    refreshing_ = false;
    const TimePoint after = options_.clock();
    if (fetched && fetched->credentials.empty()) fetched = Error::Permanent("the answer had no access key or secret");
    if (fetched) {
      RecordSuccessLocked(std::move(*fetched), after);
    } else {
      RecordFailureLocked(fetched.error(), after);
    }
    refreshed_.notify_all();
    if (UsableLocked(after)) return cached_->credentials;
    return NoCredentialsLocked();
  }
}

Error RefreshingCredentialsProvider::NoCredentialsLocked() const {
  if (last_error_) return *last_error_;
  if (cached_ && cached_->expiration)
    return Error::Retryable("AWS credentials from " + description_ + " expired (or expire too soon to use) at " +
                            FormatTime(*cached_->expiration));
  return Error::Retryable("no AWS credentials from " + description_ + " yet");
}

void RefreshingCredentialsProvider::RecordSuccessLocked(TemporaryCredentials fetched, TimePoint now) {
  if (consecutive_failures_ > 0) {
    XLOG_INFO("AWS credentials from {} refreshed after {} failed attempt(s)", description_, consecutive_failures_);
  }
  consecutive_failures_ = 0;
  last_error_.reset();
  next_attempt_ = {};
  if (fetched.expiration) {
    const TimePoint exp = *fetched.expiration;
    refresh_at_ = exp - options_.refresh_before;
    // Shorter-lived than the window: renew halfway through their usable life.
    if (refresh_at_ <= now) refresh_at_ = now + (exp - options_.expiry_margin - now) / 2;
    XLOG_DEBUG("AWS credentials from {} valid until {}", description_, FormatTime(exp));
    if (exp <= now + options_.expiry_margin) {
      // Already (nearly) expired on arrival: do not ask again at once.
      next_attempt_ = now + options_.initial_backoff;
    }
  }
  cached_ = std::move(fetched);
}

void RefreshingCredentialsProvider::RecordFailureLocked(const Error& error, TimePoint now) {
  ++consecutive_failures_;
  // Exponential backoff with jitter in [50%, 100%] of the step.
  auto step = options_.initial_backoff;
  for (int i = 1; i < consecutive_failures_ && step < options_.max_backoff; ++i) step *= 2;
  step = std::min(step, options_.max_backoff);
  std::uniform_int_distribution<int64_t> jitter(step.count() / 2, std::max<int64_t>(step.count(), 1));
  const std::chrono::milliseconds wait(jitter(rng_));
  next_attempt_ = now + wait;
  last_error_ = error.Wrapped("cannot get AWS credentials from " + description_);
  const bool usable = UsableLocked(now);
  if (consecutive_failures_ == 1) {
    if (usable) {
      XLOG_WARN("Refreshing AWS credentials from {} failed: {}; still using the current ones (valid until {}), "
                "retrying with backoff",
                description_, error.message, FormatTime(*cached_->expiration));
    } else {
      XLOG_WARN("Cannot get AWS credentials from {}: {}; retrying with backoff", description_, error.message);
    }
  } else {
    XLOG_DEBUG("AWS credentials from {}: attempt {} failed: {}; next in {} ms", description_,
               consecutive_failures_, error.message, wait.count());
  }
}

}  // namespace xrayd::aws
