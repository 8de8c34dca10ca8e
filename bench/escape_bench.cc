// The daemon's hottest loop: escaping each segment document into the PutTraceSegments body
// (benchmark, not a test). Baseline in the same run: nlohmann::json's string escaping, a widely used
// implementation. Run: build/bench/escape_bench
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/json_escape.h"

namespace {

// A typical segment: JSON, so a quote every few bytes; no long runs of plain text.
const std::string kSegment =
    R"({"trace_id":"1-6b0732e7-4fcf79689e67b6cccd242e3f","id":"c2aa244078768acd","name":"checkout",)"
    R"("start_time":1795633895.083377,"end_time":1795633895.103195,"annotations":{"customer_tier":"gold",)"
    R"("cache_hit":false},"origin":"AWS::EC2::Instance","http":{"request":{"method":"PUT","url":)"
    R"("https://shop.example.com/api/orders/123","user_agent":"Mozilla/5.0","client_ip":"10.0.0.1"},)"
    R"("response":{"status":200,"content_length":512}},"subsegments":[{"id":"53995c3f42cd8ad8","name":"db",)"
    R"("start_time":1795633895.09,"end_time":1795633895.1,"namespace":"remote","sql":{"sanitized_query":)"
    R"("SELECT * FROM orders WHERE id = ?","database_type":"PostgreSQL"}}]})";

void BM_XraydAppendJsonString(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    xrayd::AppendJsonString(out, kSegment);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kSegment.size()));
}
BENCHMARK(BM_XraydAppendJsonString);

// Each path on its own (AppendJsonString picks AVX-512 where the CPU has it).
void BM_XraydSse2Path(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    xrayd::detail::AppendJsonStringSse2(out, kSegment);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kSegment.size()));
}
BENCHMARK(BM_XraydSse2Path);

void BM_XraydAvx512Path(benchmark::State& state) {
  if (!xrayd::detail::HaveAvx512Escape()) {
    state.SkipWithError("this CPU has no AVX-512 VBMI2");
    return;
  }
  std::string out;
  for (auto _ : state) {
    out.clear();
    xrayd::detail::AppendJsonStringAvx512(out, kSegment);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kSegment.size()));
}
BENCHMARK(BM_XraydAvx512Path);

void BM_BaselineNlohmannDump(benchmark::State& state) {
  const nlohmann::json value = kSegment;
  std::string out;
  for (auto _ : state) {
    out = value.dump();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kSegment.size()));
}
BENCHMARK(BM_BaselineNlohmannDump);

}  // namespace

BENCHMARK_MAIN();
