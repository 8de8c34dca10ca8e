#include "aws/refreshing_credentials.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace xrayd::aws {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

// A clock the test moves by hand.
struct FakeClock {
  std::atomic<int64_t> ms{1'700'000'000'000};
  Clock::time_point now() const { return Clock::time_point(std::chrono::milliseconds(ms.load())); }
  void Advance(std::chrono::milliseconds d) { ms += d.count(); }
};

RefreshOptions FakeOptions(FakeClock& clock) {
  RefreshOptions o;
  o.refresh_before = 5min;
  o.expiry_margin = 10s;
  o.initial_backoff = 1s;
  o.max_backoff = 8s;
  o.clock = [&clock] { return clock.now(); };
  return o;
}

TemporaryCredentials Creds(const std::string& key, std::optional<Clock::time_point> exp) {
  return {{key, "secret-" + key, "token-" + key}, exp};
}

TEST(RefreshingCredentials, CachesUntilTheRefreshWindow) {
  FakeClock clock;
  int calls = 0;
  RefreshingCredentialsProvider p("test", [&]() -> Result<TemporaryCredentials> {
    ++calls;
    return Creds("K" + std::to_string(calls), clock.now() + 60min);
  }, FakeOptions(clock));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(p.Get()->access_key_id, "K1");
  clock.Advance(54min);  // 6 minutes left: still fresh
  EXPECT_EQ(p.Get()->access_key_id, "K1");
  EXPECT_EQ(calls, 1);
  clock.Advance(2min);  // 4 minutes left: inside the 5-minute window
  EXPECT_EQ(p.Get()->access_key_id, "K2");
  EXPECT_EQ(p.Get()->session_token, "token-K2");
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(p.fetch_count(), 2u);
}

TEST(RefreshingCredentials, WithoutExpirationFetchesOnce) {
  FakeClock clock;
  int calls = 0;
  RefreshingCredentialsProvider p("test", [&]() -> Result<TemporaryCredentials> {
    ++calls;
    return Creds("K", std::nullopt);
  }, FakeOptions(clock));
  EXPECT_TRUE(p.Get());
  clock.Advance(std::chrono::hours(24 * 365));
  EXPECT_TRUE(p.Get());
  EXPECT_EQ(calls, 1);
}

TEST(RefreshingCredentials, ShortLivedCredentialsAreRenewedHalfway) {
  FakeClock clock;
  int calls = 0;
  RefreshingCredentialsProvider p("test", [&]() -> Result<TemporaryCredentials> {
    ++calls;
    return Creds("K" + std::to_string(calls), clock.now() + 2min);  // shorter than the 5-minute window
  }, FakeOptions(clock));
  EXPECT_EQ(p.Get()->access_key_id, "K1");
  clock.Advance(50s);
  EXPECT_EQ(p.Get()->access_key_id, "K1");
  clock.Advance(20s);  // past the halfway point
  EXPECT_EQ(p.Get()->access_key_id, "K2");
  EXPECT_EQ(calls, 2);
}

TEST(RefreshingCredentials, FailedRefreshKeepsServingValidCredentialsThenBacksOff) {
  FakeClock clock;
  int calls = 0;
  bool fail = false;
  const Clock::time_point first_expiry = clock.now() + 10min;
  RefreshingCredentialsProvider p("test", [&]() -> Result<TemporaryCredentials> {
    ++calls;
    if (fail) return Error::Retryable("STS is down");
    return Creds("K" + std::to_string(calls), calls == 1 ? first_expiry : clock.now() + 60min);
  }, FakeOptions(clock));
  EXPECT_EQ(p.Get()->access_key_id, "K1");
  fail = true;
  clock.Advance(6min);  // 4 minutes left: refresh, which fails
  EXPECT_EQ(p.Get()->access_key_id, "K1");
  EXPECT_EQ(calls, 2);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p.Get()->access_key_id, "K1");  // backing off: no new attempt
  EXPECT_EQ(calls, 2);
  clock.Advance(4min);  // expired now (and inside the margin)
  auto expired = p.Get();
  ASSERT_FALSE(expired);
  EXPECT_NE(expired.error().message.find("STS is down"), std::string::npos) << expired.error().message;
  const int after_expiry = calls;
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(p.Get());
  EXPECT_LE(calls, after_expiry + 1);  // never a tight loop
  fail = false;
  clock.Advance(10s);  // beyond any backoff step (max 8 s)
  auto recovered = p.Get();
  ASSERT_TRUE(recovered);
  EXPECT_EQ(recovered->access_key_id, "K" + std::to_string(calls));
}

TEST(RefreshingCredentials, BackoffGrowsAndIsCapped) {
  FakeClock clock;
  int calls = 0;
  RefreshingCredentialsProvider p("test", [&]() -> Result<TemporaryCredentials> {
    ++calls;
    return Error::Permanent("AccessDenied");
  }, FakeOptions(clock));
  // 60 s of fake time, a Get() every 100 ms. Steps 1, 2, 4, 8, 8, ... s, each with 50-100% jitter:
  // between 10 attempts (full steps) and 17 (half steps).
  for (int i = 0; i < 600; ++i) {
    EXPECT_FALSE(p.Get());
    clock.Advance(100ms);
  }
  EXPECT_GE(calls, 9);
  EXPECT_LE(calls, 18);
}

TEST(RefreshingCredentials, CredentialsExpiredOnArrivalAreNotRefetchedInALoop) {
  FakeClock clock;
  int calls = 0;
  RefreshingCredentialsProvider p("test", [&]() -> Result<TemporaryCredentials> {
    ++calls;
    return Creds("K", clock.now() + 5s);  // inside the 10 s margin already
  }, FakeOptions(clock));
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(p.Get());
  EXPECT_EQ(calls, 1);
}

TEST(RefreshingCredentials, ConcurrentCallersDoNotWaitForARefreshWhileCredentialsAreValid) {
  // Real time: credentials live 1.5 s and are renewed in their last second; each fetch takes 200 ms.
  RefreshOptions o;
  o.refresh_before = 1000ms;
  o.expiry_margin = 100ms;
  o.initial_backoff = 50ms;
  std::atomic<int> calls{0};
  std::atomic<int> concurrent{0}, max_concurrent{0};
  RefreshingCredentialsProvider p("slow STS", [&]() -> Result<TemporaryCredentials> {
    const int now_running = ++concurrent;
    max_concurrent = std::max(max_concurrent.load(), now_running);
    std::this_thread::sleep_for(200ms);
    --concurrent;
    const int n = ++calls;
    return Creds("K" + std::to_string(n), Clock::now() + 1500ms);
  }, o);

  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, slow{0}, total{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (!stop) {
        const auto t0 = std::chrono::steady_clock::now();
        auto c = p.Get();
        if (std::chrono::steady_clock::now() - t0 > 150ms) ++slow;
        if (!c || c->access_key_id.empty()) ++errors;
        ++total;
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  std::this_thread::sleep_for(3500ms);
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(max_concurrent, 1) << "fetches overlapped";
  // About one fetch per 0.5-0.7 s, not one per caller.
  EXPECT_GE(calls, 3);
  EXPECT_LE(calls, 10);
  // Only the first fetch (nothing cached yet: all 8 wait) and each refresher's own call are slow.
  EXPECT_LE(slow, 8 + calls) << "callers waited for refreshes while valid credentials were cached; total " << total;
}

TEST(RefreshingCredentials, WaitersShareTheFirstFetchAndItsError) {
  std::atomic<int> calls{0};
  RefreshOptions o;
  o.initial_backoff = 10s;
  RefreshingCredentialsProvider p("down", [&]() -> Result<TemporaryCredentials> {
    ++calls;
    std::this_thread::sleep_for(200ms);
    return Error::Retryable("connection refused");
  }, o);
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 6; ++t) threads.emplace_back([&] { errors += p.Get() ? 0 : 1; });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 6);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace xrayd::aws
