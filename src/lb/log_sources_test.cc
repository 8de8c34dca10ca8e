#include "lb/log_sources.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace xrayd::lb {
namespace {

namespace fs = std::filesystem;

const char* kLine =
    "http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 "
    "0.001 0.000 200 200 34 366 \"GET http://www.example.com:80/ HTTP/1.1\" \"curl/7.46.0\" - - "
    "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "
    "\"Root=1-58337262-36d228ad5d99923122bbe354\" \"-\" \"-\" 0 2018-07-02T22:22:48.364000Z \"forward\" \"-\" \"-\" "
    "\"10.0.0.1:80\" \"200\" \"-\" \"-\" TID_1234abcd5678ef90\n";

// Collects documents from the source threads.
class LockedSink : public pipeline::SegmentSink {
 public:
  size_t Offer(std::vector<std::string>& docs) override {
    std::lock_guard lock(mu_);
    const size_t n = docs.size();
    for (auto& d : docs) docs_.push_back(std::move(d));
    docs.clear();
    return n;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return docs_.size();
  }

 private:
  std::mutex mu_;
  std::vector<std::string> docs_;
};

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 400 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  return done();
}

class LogSourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lb-sources-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "logs" / "2026" / "12");
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A log file written 2 s in the past (settled) or now (still being written, maybe).
  void Write(const fs::path& p, const std::string& text, bool settled) {
    std::ofstream(p) << text;
    if (settled) fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::seconds(2));
  }
  LogSourcesOptions Options() {
    LogSourcesOptions o;
    o.sources = {(dir_ / "logs").string()};
    o.poll = std::chrono::milliseconds(100);
    return o;
  }
  fs::path dir_;
};

TEST_F(LogSourcesTest, ReadsEachSettledFileOnceAcrossRestarts) {
  Write(dir_ / "logs" / "2026" / "12" / "a.log", kLine, true);
  Write(dir_ / "logs" / "fresh.log", std::string(kLine) + kLine, false);
  LockedSink sink;
  auto seen = SeenObjects::Open((dir_ / "seen").string());
  ASSERT_TRUE(seen);
  {
    LogSources sources(Options(), sink, **seen);
    ASSERT_TRUE(sources.Start());
    ASSERT_TRUE(WaitFor([&] { return sink.size() == 1; }));
    // The fresh file is taken once it has not changed for a second.
    ASSERT_TRUE(WaitFor([&] { return sink.size() == 3; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // more polls: nothing read twice
    EXPECT_EQ(sink.size(), 3u);
    EXPECT_EQ(sources.counters().objects.load(), 2u);
    sources.Stop();
    sources.Stop();  // idempotent
  }
  LogSources again(Options(), sink, **seen);
  ASSERT_TRUE(again.Start());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(again.counters().objects.load(), 0u);
}

TEST_F(LogSourcesTest, ABadSourceIsAnErrorAtStart) {
  LockedSink sink;
  auto seen = SeenObjects::Open((dir_ / "seen").string());
  ASSERT_TRUE(seen);
  LogSourcesOptions o = Options();
  o.sources.push_back((dir_ / "missing").string());
  LogSources sources(o, sink, **seen);
  auto st = sources.Start();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("not a directory"), std::string::npos);
}

// The daemon's wiring: LbLogs shows its counters on /metrics while it runs.
TEST_F(LogSourcesTest, LbLogsCountersAreOnMetricsWhileRunning) {
  Write(dir_ / "logs" / "a.log", std::string(kLine) + "not a log line\n", true);
  LockedSink sink;
  LbLogsConfig config;
  config.sources = {(dir_ / "logs").string()};
  config.poll_seconds = 1;
  config.data_dir = dir_.string();
  auto lb = LbLogs::Start(config, [](std::string_view) { return std::optional<std::string>(); }, sink);
  ASSERT_TRUE(lb) << lb.error().message;
  ASSERT_TRUE(WaitFor([&] { return (*lb)->counters().objects.load() == 1; }));
  const std::string text = GlobalMetrics().RenderPrometheus();
  for (const char* line : {"xrayd_lb_logs_objects_total{result=\"read\"} 1\n",
                           "xrayd_lb_logs_lines_total{result=\"read\"} 2\n",
                           "xrayd_lb_logs_lines_total{result=\"malformed\"} 1\n",
                           "xrayd_lb_logs_segments_total{result=\"accepted\"} 1\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  (*lb)->Stop();
  EXPECT_EQ(GlobalMetrics().RenderPrometheus().find("xrayd_lb_logs_"), std::string::npos);
}

}  // namespace
}  // namespace xrayd::lb
