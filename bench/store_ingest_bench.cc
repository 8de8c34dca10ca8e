// store_ingest_bench: the trace store's write path alone (issue 14), without UDP or the pipeline.
// Not a test.
//
// Reads segment documents, one per line, from a file (e.g. bench/store_bench.py's load:
//   python3 -c 'import sys; sys.path.insert(0, "bench"); import store_bench
//               d, _, _ = store_bench.generate(200000, 6); open("/tmp/docs.jsonl", "w").write("\n".join(d))'
// ), appends them to a fresh store in DIR in batches of --batch (the store exporter's
// merge_max_segments), and prints one line: segments/s (wall), segments per CPU-second of the
// process, and bytes on disk per segment (database + WAL) after a final checkpoint.
//
//   store_ingest_bench DOCS_FILE DIR [--batch N] [--threads N] [--progress N]
// --threads N appends from N threads at once (the exporter's senders), each taking the next batch.
// --progress N also prints the rate of each N segments stored, so the cost's growth with the
// store's size shows (the final line is the whole run's).
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/trace_store.h"

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) total += e.file_size();
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: store_ingest_bench DOCS_FILE DIR [--batch N] [--threads N]\n");
    return 2;
  }
  size_t batch = 2000;
  int threads = 1;
  size_t progress = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--batch") batch = std::strtoul(argv[i + 1], nullptr, 10);
    else if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--progress") progress = std::strtoul(argv[i + 1], nullptr, 10);
  }
  std::vector<std::vector<std::string>> batches(1);
  std::ifstream in(argv[1]);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (batches.back().size() == batch) batches.emplace_back();
    batches.back().push_back(std::move(line));
  }
  const std::string dir = argv[2];
  std::filesystem::remove_all(dir);
  xrayd::store::StoreOptions options;
  options.data_dir = dir;
  auto store = xrayd::store::TraceStore::Open(options);
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.error().message.c_str());
    return 1;
  }
  std::atomic<size_t> next{0}, stored{0};
  std::atomic<bool> failed{false};
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  // The interval's figures: under a mutex since any worker may cross an interval's end.
  std::mutex progress_mu;
  size_t next_report = progress, last_stored = 0;
  double last_cpu = cpu0;
  auto last_wall = t0;
  auto report_progress = [&](size_t now_stored) {
    std::lock_guard<std::mutex> lock(progress_mu);
    if (now_stored < next_report) return;
    const auto wall_now = std::chrono::steady_clock::now();
    const double cpu_now = CpuSeconds();
    const double n = static_cast<double>(now_stored - last_stored);
    std::printf("at %zu: %.0f segments/s, %.0f per CPU-second\n", now_stored,
                n / std::chrono::duration<double>(wall_now - last_wall).count(), n / (cpu_now - last_cpu));
    std::fflush(stdout);
    next_report = now_stored + progress;
    last_stored = now_stored;
    last_wall = wall_now;
    last_cpu = cpu_now;
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (size_t b; (b = next.fetch_add(1)) < batches.size();) {
        auto r = (*store)->Append(batches[b]);
        if (!r) {
          std::fprintf(stderr, "append: %s\n", r.error().message.c_str());
          failed = true;
          return;
        }
        const size_t now_stored = stored += batches[b].size() - r->size();
        if (progress != 0) report_progress(now_stored);
      }
    });
  }
  for (auto& w : workers) w.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  store->reset();  // closes: the last connection checkpoints the WAL into the database
  const double n = static_cast<double>(stored.load());
  std::printf("stored %.0f in %.2f s: %.0f segments/s, %.0f per CPU-second, %.0f bytes/segment on disk\n", n, wall,
              n / wall, n / cpu, static_cast<double>(DirBytes(dir)) / n);
  return failed ? 1 : 0;
}
