// The spool's cost (not a test): append + replay + acknowledge of 50-segment batches of ~600-byte
// documents, per fsync policy, against an in-memory queue doing the same hand-off (the memory-only
// pipeline's baseline), measured in the same run. Prints each case's throughput as a ratio to it.
//   build/bench/spool_bench [--benchmark_min_time=2]      (spools go to $TMPDIR, default /tmp)
#include <benchmark/benchmark.h>

#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pipeline/spool.h"

namespace {

namespace fs = std::filesystem;
using xrayd::pipeline::FsyncPolicy;
using xrayd::pipeline::Spool;
using xrayd::pipeline::SpoolOptions;

std::vector<std::string> MakeBatch() {
  std::vector<std::string> b;
  for (int i = 0; i < 50; ++i) {
    std::string s = R"({"trace_id":"1-5f84c7a0-1b3a6e0a8bc0ad1a2b6e2a1f","id":"6226467e3f8455)" + std::to_string(10 + i) +
                    R"(","name":"checkout","start_time":1602537376.123,"end_time":1602537376.456,"http":{"request":)"
                    R"({"method":"GET","url":"https://example.com/api/cart","client_ip":"10.0.0.1"},"response":)"
                    R"({"status":200,"content_length":1024}},"aws":{"xray":{"sdk":"X-Ray for C++","sdk_version":"0.1.0"}},)"
                    R"("annotations":{"customer":"c-123","tier":"gold"},"metadata":{"default":{"k":")";
    s += std::string(600 - s.size() - 5, 'v') + R"("}}})";
    b.push_back(std::move(s));
  }
  return b;
}

struct SpoolDir {
  std::string path = (fs::temp_directory_path() / "xrayd-spool-bench").string();
  SpoolDir() { fs::remove_all(path); }
  ~SpoolDir() { fs::remove_all(path); }
};

void SetCounters(benchmark::State& state, size_t segments_per_iter) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * segments_per_iter));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * segments_per_iter * 600));
  state.counters["segs_per_iter"] = static_cast<double>(segments_per_iter);
}

// Baseline: the memory-only hand-off, a copy of the batch into a queue and back out.
void BM_MemoryQueue(benchmark::State& state) {
  const auto batch = MakeBatch();
  std::deque<std::vector<std::string>> q;
  for (auto _ : state) {
    q.push_back(batch);
    auto out = std::move(q.front());
    q.pop_front();
    benchmark::DoNotOptimize(out);
  }
  SetCounters(state, batch.size());
}

// Pass-through: each batch appended, read back and acknowledged (the spool in front of a live back end).
void BM_SpoolPassThrough(benchmark::State& state) {
  const auto batch = MakeBatch();
  SpoolDir dir;
  SpoolOptions o;
  o.max_bytes = 256 << 20;
  o.fsync = static_cast<FsyncPolicy>(state.range(0));
  auto spool = Spool::Open(dir.path, o);
  if (!spool.ok()) return state.SkipWithError(spool.error().message.c_str());
  for (auto _ : state) {
    auto seq = (*spool)->Append(batch);
    auto r = (*spool)->Read();
    if (!seq.ok() || !r.ok() || !r->has_value() || !(*spool)->Ack(*seq).ok()) return state.SkipWithError("spool failed");
  }
  SetCounters(state, batch.size());
  state.counters["fsyncs_per_batch"] = static_cast<double>((*spool)->stats().fsyncs) / static_cast<double>(state.iterations());
}

// Backlog: 200 batches (6 MB) spooled during an outage, then replayed and acknowledged.
void BM_SpoolBacklog(benchmark::State& state) {
  const auto batch = MakeBatch();
  SpoolDir dir;
  SpoolOptions o;
  o.max_bytes = 256 << 20;
  o.fsync = static_cast<FsyncPolicy>(state.range(0));
  auto spool = Spool::Open(dir.path, o);
  if (!spool.ok()) return state.SkipWithError(spool.error().message.c_str());
  constexpr int kBatches = 200;
  for (auto _ : state) {
    for (int i = 0; i < kBatches; ++i)
      if (!(*spool)->Append(batch).ok()) return state.SkipWithError("append failed");
    uint64_t last = 0;
    for (int i = 0; i < kBatches; ++i) {
      auto r = (*spool)->Read();
      if (!r.ok() || !r->has_value()) return state.SkipWithError("read failed");
      last = (*r)->sequence;
      if (!(*spool)->Ack(last).ok()) return state.SkipWithError("ack failed");
    }
  }
  SetCounters(state, batch.size() * kBatches);
}

void Policies(benchmark::internal::Benchmark* b) {
  b->ArgName("fsync")->Arg(static_cast<int>(FsyncPolicy::kNever))->Arg(static_cast<int>(FsyncPolicy::kInterval))
      ->Arg(static_cast<int>(FsyncPolicy::kAlways));
}

BENCHMARK(BM_MemoryQueue);
BENCHMARK(BM_SpoolPassThrough)->Apply(Policies)->UseRealTime();
BENCHMARK(BM_SpoolBacklog)->Apply(Policies)->UseRealTime()->Unit(benchmark::kMillisecond);

// Console output plus a closing table: segments per wall-clock second (fsync waits count) and per
// CPU-second (what the spool costs the machine), each as a ratio to BM_MemoryQueue.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      auto segs = r.counters.find("segs_per_iter");
      if (segs == r.counters.end() || r.iterations == 0) continue;
      const double mult = benchmark::GetTimeUnitMultiplier(r.time_unit);
      rates_[r.benchmark_name()] = {segs->second.value / (r.GetAdjustedRealTime() / mult),
                                    segs->second.value / (r.GetAdjustedCPUTime() / mult)};
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto base = rates_.count("BM_MemoryQueue") ? rates_["BM_MemoryQueue"] : std::pair<double, double>{0, 0};
    std::printf("\nfsync: 0 = always, 1 = interval (1 s), 2 = never\n%-38s %14s %10s %16s %10s\n", "case",
                "segments/s", "vs memory", "segments/CPU-s", "vs memory");
    for (const auto& [name, r] : rates_)
      std::printf("%-38s %14.0f %9.4fx %16.0f %9.4fx\n", name.c_str(), r.first, base.first > 0 ? r.first / base.first : 0.0,
                  r.second, base.second > 0 ? r.second / base.second : 0.0);
  }

 private:
  std::map<std::string, std::pair<double, double>> rates_;  // wall, CPU
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
}
