#include "buffer/segment_buffer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "telemetry/metrics.h"

namespace xrayd {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> Docs(int n, size_t size = 100) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(std::string(size, static_cast<char>('a' + i % 26)));
  return v;
}

class SegmentBufferTest : public ::testing::Test {
 protected:
  void SetUp() override { GlobalMetrics().ResetForTest(); }
};

TEST_F(SegmentBufferTest, FullBatchIsReadyAtOnce) {
  SegmentBuffer b({1 << 20, 50, 1000ms});
  auto docs = Docs(120);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(b.Push(docs, t0), 120u);
  auto b1 = b.TryPopBatch(t0);
  auto b2 = b.TryPopBatch(t0);
  ASSERT_TRUE(b1 && b2);
  EXPECT_EQ(b1->segments.size(), 50u);
  EXPECT_EQ(b2->segments.size(), 50u);
  EXPECT_FALSE(b.TryPopBatch(t0));  // the last 20 wait for the flush interval
  auto b3 = b.TryPopBatch(t0 + 1000ms);
  ASSERT_TRUE(b3);
  EXPECT_EQ(b3->segments.size(), 20u);
  EXPECT_EQ(b3->segments.front(), std::string(100, 'a' + 100 % 26));  // order kept
}

TEST_F(SegmentBufferTest, PartialBatchWaitsForOldestSegmentAge) {
  SegmentBuffer b({1 << 20, 50, 1000ms});
  const auto t0 = std::chrono::steady_clock::now();
  auto d1 = Docs(1);
  b.Push(d1, t0);
  auto d2 = Docs(1);
  b.Push(d2, t0 + 900ms);  // newer segment does not reset the clock
  EXPECT_FALSE(b.TryPopBatch(t0 + 999ms));
  auto batch = b.TryPopBatch(t0 + 1000ms);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->segments.size(), 2u);
}

// Seal::kNow (a caller waits for these documents): their partial batch is ready at once, with
// whatever the open batch held before; later pushes batch as usual again.
TEST_F(SegmentBufferTest, SealNowMakesThePartialBatchReadyAtOnce) {
  SegmentBuffer b({1 << 20, 50, 1000ms});
  const auto t0 = std::chrono::steady_clock::now();
  auto first = Docs(2);
  b.Push(first, t0);
  auto waited_for = Docs(3);
  EXPECT_EQ(b.Push(waited_for, t0, SegmentBuffer::Seal::kNow), 3u);
  auto batch = b.TryPopBatch(t0);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->segments.size(), 5u);
  auto later = Docs(3);
  b.Push(later, t0);
  EXPECT_FALSE(b.TryPopBatch(t0 + 999ms));
  EXPECT_TRUE(b.TryPopBatch(t0 + 1000ms));
}

TEST_F(SegmentBufferTest, PushAllOrNoneWaitsForRoomThenTakesAllOrNothing) {
  const size_t per_doc = SegmentBuffer::AccountedSize(std::string(1000, 'x'));
  SegmentBuffer b({per_doc * 10, 50, 1000ms});
  auto eight = std::vector<std::string>(8, std::string(1000, 'x'));
  ASSERT_TRUE(b.PushAllOrNone(eight, std::chrono::steady_clock::now(), SegmentBuffer::Seal::kNow));
  EXPECT_TRUE(eight.empty());
  auto batch = b.TryPopBatch(std::chrono::steady_clock::now());  // sealed at once
  ASSERT_TRUE(batch);
  auto five = std::vector<std::string>(5, std::string(1000, 'x'));
  EXPECT_FALSE(b.PushAllOrNone(five, std::chrono::steady_clock::now() + 50ms, SegmentBuffer::Seal::kNow));
  EXPECT_EQ(five.size(), 5u) << "none taken, none lost";
  EXPECT_EQ(b.held_bytes(), 8 * per_doc);
  std::thread release([&] {
    std::this_thread::sleep_for(30ms);
    b.Release(*batch);
  });
  EXPECT_TRUE(b.PushAllOrNone(five, std::chrono::steady_clock::now() + 10s, SegmentBuffer::Seal::kNow));
  release.join();
  EXPECT_EQ(b.held_bytes(), 5 * per_doc);
  auto eleven = std::vector<std::string>(11, std::string(1000, 'x'));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.PushAllOrNone(eleven, t0 + 10s, SegmentBuffer::Seal::kNow)) << "can never fit";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  std::thread closer([&] {
    std::this_thread::sleep_for(30ms);
    b.Close();
  });
  auto six = std::vector<std::string>(6, std::string(1000, 'x'));
  EXPECT_FALSE(b.PushAllOrNone(six, std::chrono::steady_clock::now() + 10s, SegmentBuffer::Seal::kNow));
  closer.join();
}

TEST_F(SegmentBufferTest, NeverHoldsMoreThanCapacity) {
  const size_t per_doc = SegmentBuffer::AccountedSize(std::string(1000, 'x'));
  SegmentBuffer b({per_doc * 10, 50, 1000ms});
  auto docs = Docs(25, 1000);
  EXPECT_EQ(b.Push(docs, {}), 10u);
  EXPECT_LE(b.held_bytes(), b.capacity_bytes());
  EXPECT_EQ(docs.size(), 15u);  // handed back, in order, for the caller to spool or drop
  EXPECT_EQ(docs.front().size(), 1000u);
  // Popping does not free memory; releasing does.
  auto batch = b.TryPopBatch(std::chrono::steady_clock::now() + 2s);
  ASSERT_TRUE(batch);
  auto more = Docs(1, 1000);
  EXPECT_EQ(b.Push(more, {}), 0u);
  EXPECT_EQ(more.size(), 1u);
  b.Release(*batch);
  more = Docs(1, 1000);
  EXPECT_EQ(b.Push(more, {}), 1u);
  EXPECT_TRUE(more.empty());
}

TEST_F(SegmentBufferTest, BoundHoldsUnderConcurrentFlood) {
  SegmentBuffer b({64 * 1024, 50, 5ms});
  size_t max_seen = 0;
  std::thread consumer([&] {
    while (auto batch = b.PopBatch()) {
      max_seen = std::max(max_seen, b.held_bytes());
      std::this_thread::sleep_for(1ms);  // a slow exporter
      b.Release(*batch);
    }
  });
  size_t accepted = 0, offered = 0, refused = 0;
  for (int i = 0; i < 2000; ++i) {
    auto docs = Docs(10, 500);
    offered += docs.size();
    accepted += b.Push(docs);
    refused += docs.size();
    ASSERT_LE(b.held_bytes(), b.capacity_bytes());
  }
  b.Close();
  consumer.join();
  EXPECT_LE(max_seen, b.capacity_bytes());
  EXPECT_GT(refused, 0u);
  EXPECT_EQ(accepted + refused, offered);
  EXPECT_EQ(b.held_bytes(), 0u);
}

TEST_F(SegmentBufferTest, TakeOldestTakesQueuedBatchesInOrderReadyOrNot) {
  SegmentBuffer b({1 << 20, 2, 60s});
  auto docs = Docs(5);
  ASSERT_EQ(b.Push(docs, {}), 5u);
  auto first = b.TakeOldest();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->segments.size(), 2u);
  EXPECT_EQ(first->segments[0], Docs(5)[0]);
  ASSERT_TRUE(b.TakeOldest());
  auto open = b.TakeOldest();  // the partial batch, long before its flush interval
  ASSERT_TRUE(open);
  EXPECT_EQ(open->segments.size(), 1u);
  EXPECT_FALSE(b.TakeOldest());
  EXPECT_EQ(b.queued_segments(), 0u);
}

TEST_F(SegmentBufferTest, PopBatchUntilReturnsOnKickAndDeadline) {
  SegmentBuffer b({1 << 20, 50, 60s});
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.PopBatchUntil(t0 + 30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  std::thread kicker([&] {
    std::this_thread::sleep_for(20ms);
    b.Kick();
  });
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.PopBatchUntil(t1 + 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 5s);
  kicker.join();
}

TEST_F(SegmentBufferTest, CloseDrainsThenEnds) {
  SegmentBuffer b({1 << 20, 50, 60s});
  auto docs = Docs(3);
  b.Push(docs);
  b.Close();
  auto batch = b.PopBatch();  // partial batch handed out at once after Close
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->segments.size(), 3u);
  EXPECT_FALSE(b.PopBatch());
  auto late = Docs(1);
  EXPECT_EQ(b.Push(late), 0u);
}

TEST_F(SegmentBufferTest, PopBatchWakesOnFlushInterval) {
  SegmentBuffer b({1 << 20, 50, 20ms});
  std::thread producer([&] {
    std::this_thread::sleep_for(5ms);
    auto docs = Docs(1);
    b.Push(docs);
  });
  auto batch = b.PopBatch();
  producer.join();
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->segments.size(), 1u);
}

// A popper whose own deadline is far off is woken when a batch opens, to flush it on time. One that
// wakes before that batch's flush deadline anyway is left asleep (not observable here: it returns at
// its deadline either way, and the batch stays queued for its next wait).
TEST_F(SegmentBufferTest, OpeningABatchWakesOnlyAPopperThatWouldSleepPastItsFlush) {
  // One document pushed into `buffer` 10 ms from now, from another thread.
  auto push_soon = [](SegmentBuffer& buffer) {
    return std::thread([&buffer] {
      std::this_thread::sleep_for(10ms);
      auto docs = Docs(1);
      buffer.Push(docs);
    });
  };
  SegmentBuffer far({1 << 20, 50, 30ms});
  std::thread producer = push_soon(far);
  const auto t0 = std::chrono::steady_clock::now();
  auto batch = far.PopBatchUntil(t0 + 10s);
  const auto waited = std::chrono::steady_clock::now() - t0;
  producer.join();
  ASSERT_TRUE(batch);
  EXPECT_LT(waited, 5s);

  SegmentBuffer near({1 << 20, 50, 1000ms});
  std::thread producer2 = push_soon(near);
  const auto t1 = std::chrono::steady_clock::now();
  auto none = near.PopBatchUntil(t1 + 200ms);  // wakes at its deadline, not at the Push
  const auto waited2 = std::chrono::steady_clock::now() - t1;
  producer2.join();
  EXPECT_FALSE(none);
  EXPECT_GE(waited2, 200ms);
  EXPECT_EQ(near.queued_segments(), 1u);
}

// Batches that have waited kHandOnAfter are handed on: each taker wakes one more popper, so every
// waiting batch gets its own (against a distant endpoint the senders' requests must overlap), and
// none waits for a popper's own deadline. Here the batches were sealed (Push's `now`) long ago.
TEST_F(SegmentBufferTest, WaitingBatchesAreHandedOnOnePopperEach) {
  SegmentBuffer b({1 << 20, 50, 1000ms});
  std::atomic<int> got{0};
  std::vector<std::thread> poppers;
  for (int i = 0; i < 3; ++i)
    poppers.emplace_back([&] {
      if (auto batch = b.PopBatchUntil(std::chrono::steady_clock::now() + 5s)) got += batch->segments.size() == 50;
    });
  std::this_thread::sleep_for(50ms);  // let the poppers fall asleep (one that is late finds a batch ready)
  auto docs = Docs(150);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(b.Push(docs, t0 - 1s), 150u);
  for (auto& t : poppers) t.join();
  EXPECT_EQ(got, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);  // not their 5 s deadline
}

// Batches sealed just now are left to the popper Push woke (a sender back from its request takes
// the next at once): the other poppers sleep on to their own deadline, then take what is left.
TEST_F(SegmentBufferTest, FreshBatchesWakeOnlyOnePopper) {
  SegmentBuffer b({1 << 20, 50, 10s});
  std::atomic<int> early{0}, late{0};
  std::vector<std::thread> poppers;
  const auto deadline = std::chrono::steady_clock::now() + 1500ms;
  for (int i = 0; i < 3; ++i)
    poppers.emplace_back([&] {
      auto batch = b.PopBatchUntil(deadline);
      if (!batch) return;
      ++(std::chrono::steady_clock::now() < deadline - 500ms ? early : late);
    });
  std::this_thread::sleep_for(200ms);  // all three asleep
  auto docs = Docs(150);
  // Sealed "now" as the poppers see it however late the woken one runs on a loaded machine.
  EXPECT_EQ(b.Push(docs, std::chrono::steady_clock::now() + 1h), 150u);
  for (auto& t : poppers) t.join();
  EXPECT_EQ(early, 1);
  EXPECT_EQ(late, 2);
}

}  // namespace
}  // namespace xrayd
