#include "buffer/string_pool.h"

#include <gtest/gtest.h>

#include <thread>

namespace xrayd {
namespace {

constexpr size_t kGrain = StringPool::kGrain;

TEST(StringPoolTest, ClassesCoverLengthsWithinTheBounds) {
  EXPECT_EQ(StringPool::ClassForLength(0), 0u);
  EXPECT_EQ(StringPool::ClassForLength(1), 1u);
  EXPECT_EQ(StringPool::ClassForLength(kGrain), 1u);
  EXPECT_EQ(StringPool::ClassForLength(kGrain + 1), 2u);
  EXPECT_EQ(StringPool::ClassForLength(StringPool::kMaxPooledCapacity), StringPool::kClasses - 1);
  EXPECT_EQ(StringPool::ClassForLength(StringPool::kMaxPooledCapacity + 1), 0u);  // not pooled
  EXPECT_EQ(StringPool::ClassOfCapacity(kGrain - 1), 0u);
  EXPECT_EQ(StringPool::ClassOfCapacity(2 * kGrain + 5), 2u);
  EXPECT_EQ(StringPool::ClassOfCapacity(64 * 1024), 0u);
}

TEST(StringPoolTest, CopyHoldsTheBytesWithBoundedSlack) {
  StringPool pool(1 << 20);
  StringCache cache(pool);
  for (size_t len : {1, 100, 128, 129, 1000, 2047, 8192, 8193, 70000}) {
    const std::string source(len, 'x');
    const std::string s = cache.Copy(source.data(), source.size());
    EXPECT_EQ(s, source);
    EXPECT_LT(s.capacity(), len + kGrain) << len;  // a fresh buffer: exactly its class's capacity
  }
}

TEST(StringPoolTest, GivenBuffersAreReusedForDocumentsOfTheirClass) {
  StringPool pool(1 << 20);
  std::vector<std::string> delivered;
  delivered.push_back(std::string(1000, 'a'));
  const char* buffer = delivered[0].data();
  pool.Give(delivered);
  EXPECT_TRUE(delivered.empty());
  EXPECT_GE(pool.pooled_bytes(), 1000u);

  StringCache cache(pool);
  const std::string other(300, 'b');  // another class: a fresh buffer
  EXPECT_NE(cache.Copy(other.data(), other.size()).data(), buffer);
  // The given buffer's capacity (>= 1000) is in class 7 (896..1023): it takes documents of 769..896 bytes.
  const size_t k = StringPool::ClassOfCapacity(1000);
  ASSERT_EQ(k, 7u);
  const std::string doc(k * kGrain, 'c');
  const std::string s = cache.Copy(doc.data(), doc.size());
  EXPECT_EQ(s, doc);
  EXPECT_EQ(s.data(), buffer);
}

TEST(StringPoolTest, ReusesTheSameBufferForTheSameClass) {
  StringPool pool(1 << 20);
  StringCache cache(pool);
  const std::string doc(1500, 'd');
  std::string first = cache.Copy(doc.data(), doc.size());
  const char* buffer = first.data();
  std::vector<std::string> delivered;
  delivered.push_back(std::move(first));
  pool.Give(delivered);
  const std::string next(1450, 'e');  // same class (12 grains)
  const std::string s = cache.Copy(next.data(), next.size());
  EXPECT_EQ(s, next);
  EXPECT_EQ(s.data(), buffer);
  EXPECT_EQ(pool.pooled_bytes(), 0u);
}

TEST(StringPoolTest, KeepsAtMostItsBoundAndNoOversizedBuffers) {
  StringPool pool(10 * 1024);
  std::vector<std::string> delivered;
  for (int i = 0; i < 20; ++i) delivered.push_back(std::string(1000, 'a'));
  delivered.push_back(std::string(64 * 1024, 'b'));  // over kMaxPooledCapacity: freed
  delivered.push_back(std::string(10, 'c'));         // under kGrain: freed
  pool.Give(delivered);
  EXPECT_LE(pool.pooled_bytes(), 10u * 1024);
  EXPECT_GE(pool.pooled_bytes(), 9u * 1000);  // as many 1000-byte buffers as fit
}

TEST(StringPoolTest, ConcurrentGiveAndCopyKeepContents) {
  StringPool pool(256 * 1024);
  std::thread giver([&] {
    StringCache cache(pool);
    for (int round = 0; round < 200; ++round) {
      std::vector<std::string> batch;
      for (int i = 0; i < 50; ++i) {
        const std::string doc(200 + (round * 50 + i) % 1800, static_cast<char>('a' + i % 26));
        batch.push_back(cache.Copy(doc.data(), doc.size()));
        ASSERT_EQ(batch.back(), doc);
      }
      pool.Give(batch);
    }
  });
  StringCache cache(pool);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> batch;
    for (int i = 0; i < 50; ++i) {
      const std::string doc(300 + (round * 7 + i) % 1500, static_cast<char>('A' + i % 26));
      batch.push_back(cache.Copy(doc.data(), doc.size()));
      ASSERT_EQ(batch.back(), doc);
    }
    pool.Give(batch);
  }
  giver.join();
  EXPECT_LE(pool.pooled_bytes(), 256u * 1024);
}

}  // namespace
}  // namespace xrayd
