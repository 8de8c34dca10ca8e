// The OpenTelemetry bridge's cost (not a test), beside the X-Ray path measured in the same run, on the
// real SDK segments of tests/data/otlp (Node and Python X-Ray SDKs; every subsegment is a span):
//   export: X-Ray segments -> OTLP request body (protobuf, protobuf+gzip, JSON), against the X-Ray
//           exporter's own work on the same batch (validate + PutTraceSegments body);
//   receive: OTLP body -> validated X-Ray segment documents (protobuf, JSON), against the UDP path's
//           work per document (segment::Parser::Parse).
// Reports spans per CPU-second (items_per_second, CPU time) and bytes on the wire per span.
//   build/bench/otlp_bench [--benchmark_min_time=1]
#include <benchmark/benchmark.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "export/xray/put_trace_segments.h"
#include "otlp/otlp_json.h"
#include "otlp/otlp_sender.h"
#include "otlp/otlp_to_xray.h"
#include "otlp/xray_to_otlp.h"
#include "segment/segment.h"

namespace {

using namespace xrayd;

struct Data {
  std::vector<std::string> docs;  // complete documents only
  size_t spans = 0;
  otlp::pb::ExportTraceServiceRequest request;
  std::string proto, json;
};

const Data& Load() {
  static Data d = [] {
    Data d;
    for (const char* f : {"node_sdk_segments.jsonl", "python_sdk_segments.jsonl"}) {
      std::ifstream in(std::string(XRAYD_SOURCE_DIR) + "/tests/data/otlp/" + f);
      for (std::string line; std::getline(in, line);)
        if (!line.empty() && !nlohmann::json::parse(line).value("in_progress", false)) d.docs.push_back(line);
    }
    otlp::ToOtlpStats stats;
    d.request = otlp::SegmentsToRequest(d.docs, &stats);
    d.spans = stats.spans;
    d.proto = d.request.SerializeAsString();
    d.json = otlp::EncodeJson(d.request);
    return d;
  }();
  return d;
}

void Report(benchmark::State& state, size_t bytes) {
  const Data& d = Load();
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * d.spans));
  state.counters["bytes_per_span"] = static_cast<double>(bytes) / static_cast<double>(d.spans);
}

// Baseline: what the X-Ray exporter does with a batch (validate each document, build the body).
void BM_Export_XrayPutTraceSegments(benchmark::State& state) {
  const Data& d = Load();
  segment::Parser parser;
  size_t bytes = 0;
  for (auto _ : state) {
    for (const auto& doc : d.docs) {
      segment::Facts facts;
      benchmark::DoNotOptimize(parser.Parse(doc, &facts));
    }
    std::string body = xray::BuildPutTraceSegmentsBody(d.docs);
    bytes = body.size();
    benchmark::DoNotOptimize(body);
  }
  Report(state, bytes);
}

void BM_Export_OtlpProtobuf(benchmark::State& state) {
  const Data& d = Load();
  size_t bytes = 0;
  for (auto _ : state) {
    otlp::ToOtlpStats stats;
    std::string body = otlp::SegmentsToRequest(d.docs, &stats).SerializeAsString();
    if (state.range(0)) body = otlp::Gzip(body);
    bytes = body.size();
    benchmark::DoNotOptimize(body);
  }
  Report(state, bytes);
}

void BM_Export_OtlpJson(benchmark::State& state) {
  const Data& d = Load();
  size_t bytes = 0;
  for (auto _ : state) {
    otlp::ToOtlpStats stats;
    std::string body = otlp::EncodeJson(otlp::SegmentsToRequest(d.docs, &stats));
    bytes = body.size();
    benchmark::DoNotOptimize(body);
  }
  Report(state, bytes);
}

// Baseline: the UDP receiver's work per document.
void BM_Receive_XrayUdpValidate(benchmark::State& state) {
  const Data& d = Load();
  segment::Parser parser;
  size_t bytes = 0;
  for (const auto& doc : d.docs) bytes += doc.size();
  for (auto _ : state)
    for (const auto& doc : d.docs) {
      segment::Facts facts;
      benchmark::DoNotOptimize(parser.Parse(doc, &facts));
    }
  Report(state, bytes);
}

otlp::ToXrayOptions ReceiveOptions() {
  otlp::ToXrayOptions o;
  o.skip_timestamp_validation = true;  // the test data's trace ids are from the capture day
  return o;
}

void BM_Receive_OtlpProtobuf(benchmark::State& state) {
  const Data& d = Load();
  for (auto _ : state) {
    otlp::pb::ExportTraceServiceRequest req;
    req.ParseFromString(d.proto);
    otlp::ToXrayStats stats;
    benchmark::DoNotOptimize(otlp::RequestToSegments(req, ReceiveOptions(), &stats));
  }
  Report(state, d.proto.size());
}

void BM_Receive_OtlpJson(benchmark::State& state) {
  const Data& d = Load();
  for (auto _ : state) {
    auto req = otlp::DecodeJsonRequest(d.json);
    otlp::ToXrayStats stats;
    benchmark::DoNotOptimize(otlp::RequestToSegments(*req, ReceiveOptions(), &stats));
  }
  Report(state, d.json.size());
}

BENCHMARK(BM_Export_XrayPutTraceSegments);
BENCHMARK(BM_Export_OtlpProtobuf)->Arg(0)->Arg(1)->ArgName("gzip");
BENCHMARK(BM_Export_OtlpJson);
BENCHMARK(BM_Receive_XrayUdpValidate);
BENCHMARK(BM_Receive_OtlpProtobuf);
BENCHMARK(BM_Receive_OtlpJson);

}  // namespace

BENCHMARK_MAIN();
