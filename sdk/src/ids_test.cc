#include "xray/ids.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

namespace xray {
namespace {

TEST(Ids, TraceIdShape) {
  std::string id = NewTraceId(0x65e1d287);
  ASSERT_EQ(id.size(), 35u);
  EXPECT_EQ(id.substr(0, 11), "1-65e1d287-");
  EXPECT_TRUE(IsValidTraceId(id));
  for (char c : id.substr(11)) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
}

TEST(Ids, TraceIdTimeIsNow) {
  auto now = static_cast<uint32_t>(time(nullptr));
  std::string id = NewTraceId();
  uint32_t t = static_cast<uint32_t>(std::stoul(id.substr(2, 8), nullptr, 16));
  EXPECT_LE(now, t);
  EXPECT_LE(t, now + 2);
}

TEST(Ids, SegmentIdShape) {
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewSegmentId();
    ASSERT_TRUE(IsValidSegmentId(id)) << id;
    EXPECT_NE(id, "0000000000000000");
  }
}

TEST(Ids, Validation) {
  EXPECT_TRUE(IsValidTraceId("1-5759e988-bd862e3fe1be46a994272793"));
  EXPECT_FALSE(IsValidTraceId("2-5759e988-bd862e3fe1be46a994272793"));
  EXPECT_FALSE(IsValidTraceId("1-5759e988-bd862e3fe1be46a99427279"));
  EXPECT_FALSE(IsValidTraceId("1-5759e988-bd862e3fe1be46a99427279g"));
  EXPECT_FALSE(IsValidTraceId("1-5759e988_bd862e3fe1be46a994272793"));
  EXPECT_FALSE(IsValidTraceId(""));
  EXPECT_TRUE(IsValidSegmentId("53995c3f42cd8ad8"));
  EXPECT_FALSE(IsValidSegmentId("53995c3f42cd8ad"));
  EXPECT_FALSE(IsValidSegmentId("53995c3f42cd8adz"));
}

TEST(Ids, UniqueAcrossThreads) {
  constexpr int kThreads = 4, kPerThread = 20000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) ids[t].push_back(NewSegmentId());
    });
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(Ids, RandomBitsAreBalanced) {
  // Each of the 64 bits should be set about half the time: 20000 draws, 5 sigma ≈ ±354.
  constexpr int kDraws = 20000;
  int counts[64] = {};
  for (int i = 0; i < kDraws; ++i) {
    uint64_t v = RandomU64();
    for (int b = 0; b < 64; ++b) counts[b] += (v >> b) & 1;
  }
  for (int b = 0; b < 64; ++b) {
    EXPECT_GT(counts[b], kDraws / 2 - 354) << "bit " << b;
    EXPECT_LT(counts[b], kDraws / 2 + 354) << "bit " << b;
  }
}

TEST(Ids, ForkedChildDoesNotRepeatTheParent) {
  (void)NewSegmentId();  // this thread's generator exists before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string id = NewSegmentId();
    ssize_t n = write(fds[1], id.data(), id.size());
    _exit(n == 16 ? 0 : 1);
  }
  std::string parent_id = NewSegmentId();
  char buf[16];
  ASSERT_EQ(read(fds[0], buf, sizeof(buf)), 16);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_NE(std::string(buf, 16), parent_id);
}

TEST(Ids, RandomUnitRange) {
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    double u = RandomUnit();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 100000, 0.5, 0.01);
}

}  // namespace
}  // namespace xray
