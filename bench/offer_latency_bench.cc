// How long Exporter::Offer() takes during a back-end outage with a spool (not a test): what the
// UDP receive thread waits for per read. A producer offers batches of 64 ~600-byte documents at a
// fixed rate (default 20,000/s) for --seconds while every Send() fails (the destination is down), so
// senders move memory to the spool; it times each Offer() and prints the distribution as JSON.
// The same source builds against an older exporter (it uses only Exporter's public API), so two
// builds compare in one run:
//   build/bench/offer_latency_bench [--seconds 20] [--rate 20000] [--fsync always|interval] [--dir D]
// A receiver whose Offer() waits longer than its socket's buffer lasts (a few ms to ~150 ms at
// 20k/s) makes the kernel drop datagrams (xrayd_udp_kernel_drops_total).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/exporter.h"

namespace {

using namespace std::chrono;
using xrayd::pipeline::BatchSender;
using xrayd::pipeline::Exporter;
using xrayd::pipeline::ExporterOptions;
using xrayd::pipeline::FsyncPolicy;
using xrayd::pipeline::SendOutcome;

class DownSender : public BatchSender {
 public:
  std::string_view name() const override { return "xray"; }
  SendOutcome Send(const std::vector<std::string>&) override {
    return {SendOutcome::Kind::kRetryable, 0, std::nullopt, "connection refused"};
  }
};

std::vector<std::string> Batch(uint64_t& next) {
  std::vector<std::string> b;
  for (int i = 0; i < 64; ++i) {
    std::string s = R"({"trace_id":"1-5f84c7a0-1b3a6e0a8bc0ad1a2b6e2a1f","id":")" + std::to_string(next++) +
                    R"(","name":"checkout","start_time":1602537376.123,"end_time":1602537376.456,"metadata":{"p":")";
    s += std::string(600 - std::min<size_t>(s.size(), 590), 'v') + R"("}})";
    b.push_back(std::move(s));
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 20, rate = 20000;
  std::string fsync = "interval";
  std::string dir = (std::filesystem::temp_directory_path() / "xrayd-offer-latency-bench").string();
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::stod(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rate")) rate = std::stod(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--fsync")) fsync = argv[i + 1];
    else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
  }
  std::filesystem::remove_all(dir);
  ExporterOptions o;
  o.queue_bytes = 32 << 20;  // xrayd -m 64's share with two exporters
  o.senders = 8;
  o.spool_dir = dir;
  o.spool.fsync = fsync == "always" ? FsyncPolicy::kAlways : FsyncPolicy::kInterval;
  o.global_metrics = false;
  DownSender sender;
  Exporter e(o, sender);
  e.Start();
  uint64_t next = 0;
  std::vector<double> us;
  const auto period = duration<double>(64.0 / rate);
  const auto t0 = steady_clock::now();
  auto due = t0;
  while (steady_clock::now() - t0 < duration<double>(seconds)) {
    auto docs = Batch(next);
    const auto a = steady_clock::now();
    e.Offer(docs);
    us.push_back(duration<double, std::micro>(steady_clock::now() - a).count());
    due += duration_cast<steady_clock::duration>(period);
    std::this_thread::sleep_until(due);
  }
  const auto m = e.metrics().Get();
  e.Stop(milliseconds(0));
  std::filesystem::remove_all(dir);
  std::sort(us.begin(), us.end());
  auto q = [&](double p) { return us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))]; };
  size_t over1 = 0, over10 = 0;
  double total = 0;
  for (double v : us) {
    over1 += v > 1000;
    over10 += v > 10000;
    total += v;
  }
  std::printf(
      "{\"offers\": %zu, \"documents\": %llu, \"fsync\": \"%s\", \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
      "\"max_us\": %.1f, \"offers_over_1ms\": %zu, \"offers_over_10ms\": %zu, \"total_ms_in_offer\": %.1f, "
      "\"spooled\": %lld, \"queued\": %lld, \"dropped\": %llu}\n",
      us.size(), static_cast<unsigned long long>(next), fsync.c_str(), q(0.5), q(0.99), q(0.999), us.back(), over1,
      over10, total / 1000, static_cast<long long>(m.spooled), static_cast<long long>(m.queued),
      static_cast<unsigned long long>(m.DroppedTotal()));
  return 0;
}
