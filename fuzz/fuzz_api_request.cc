// Fuzzes every X-Ray API request body through the dispatcher (XrayApi::Handle): JSON limits,
// shape validation, handlers, a real store in a temporary directory.
//
// Input: the first byte picks the operation (index into kPaths, modulo its size); the rest is the
// body. Seeds (corpus/fuzz_api_request) are bodies captured from real clients — boto3, the AWS CLI
// and @aws-sdk/client-xray — pointed at a recording endpoint, plus the hostile cases of issue #11
// (deep nesting, a non-ASCII filter, over-long names).
//
// The store is not empty: it holds a few traces (Populate below) at the seeds' times (December 2024,
// the boto3/CLI requests' StartTime..EndTime) and around now, with services, calls, a fault, a
// throttle and annotations, so the read operations (summaries with filters, BatchGetTraces, graphs,
// statistics) walk real rows instead of stopping at an empty answer.
//
// Checked on every input, not only "does not crash": the answer is 200 or a 4xx with a JSON
// {"__type","message"} body and a matching x-amzn-ErrorType header; a 500 (a handler threw, or
// internal text would have leaked) is a finding and aborts. And PutTraceSegments' plain-body
// reader (api/traces.h) must take exactly the documents nlohmann would, or leave the body alone.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/traces.h"
#include "api/xray_api.h"
#include "store/trace_store.h"

namespace {

constexpr const char* kPaths[] = {
    "/TraceSegments",   "/TelemetryRecords",  "/TraceSummaries",     "/Traces",
    "/ServiceGraph",    "/TraceGraph",        "/TimeSeriesServiceStatistics",
    "/GetSamplingRules", "/SamplingTargets",  "/CreateSamplingRule", "/UpdateSamplingRule",
    "/DeleteSamplingRule", "/SamplingStatisticSummaries", "/Groups", "/GetGroup",
    "/CreateGroup",     "/UpdateGroup",       "/DeleteGroup",        "/InsightSummaries",
    "/EncryptionConfig", "/NoSuchOperation",
};

// Documents of three traces: checkout -> (DynamoDB, payments, a streamed "cache" subsegment) with
// payments' own segment, one at 1733482500 and one at `now`; and a lone "worker" trace with an error
// and a number annotation.
std::vector<std::string> Documents(double now) {
  std::vector<std::string> docs;
  auto add = [&](const char* trace_id, double t) {
    const std::string ts = std::to_string(t), te = std::to_string(t + 0.25), tid = trace_id;
    docs.push_back(R"({"trace_id":")" + tid + R"(","id":"aaaaaaaaaaaaaaa1","name":"checkout","origin":"AWS::EC2::Instance",)"
                   R"("user":"alice","start_time":)" + ts + R"(,"end_time":)" + te + R"(,"fault":true,)"
                   R"("http":{"request":{"method":"POST","url":"http://shop.example/cart/checkout","client_ip":"10.0.0.1",)"
                   R"("user_agent":"curl/8"},"response":{"status":500}},"annotations":{"tier":"gold","n":3,"b":true},)"
                   R"("cause":{"exceptions":[{"id":"eeeeeeeeeeeeeee1","message":"boom","type":"E"}]},)"
                   R"("subsegments":[{"id":"bbbbbbbbbbbbbbb1","name":"DynamoDB","namespace":"aws","start_time":)" + ts +
                   R"(,"end_time":)" + te + R"(,"throttle":true,"aws":{"operation":"GetItem","table_name":"t"}},)"
                   R"({"id":"bbbbbbbbbbbbbbb2","name":"payments","namespace":"remote","start_time":)" + ts + R"(,"end_time":)" + te +
                   R"(,"http":{"request":{"method":"GET","url":"http://payments/pay"},"response":{"status":502}}},)"
                   R"({"id":7,"name":"odd","start_time":)" + ts + R"(,"in_progress":1}]})");
    // A streamed (independent) subsegment: every read of the trace merges it into its parent
    // (api/trace_assembly.cc), past the embedded subsegment above whose members are of other types.
    docs.push_back(R"({"type":"subsegment","trace_id":")" + tid + R"(","parent_id":"aaaaaaaaaaaaaaa1","id":"bbbbbbbbbbbbbbb3",)"
                   R"("name":"cache","start_time":)" + ts + R"(,"end_time":)" + te + "}");
    docs.push_back(R"({"trace_id":")" + tid + R"(","id":"ccccccccccccccc1","parent_id":"bbbbbbbbbbbbbbb2","name":"payments",)"
                   R"("start_time":)" + ts + R"(,"end_time":)" + te + R"(,"error":true,"http":{"response":{"status":429}}})");
  };
  add("1-6752d804-0123456789abcdef01234567", 1733482500);
  char tid[36];
  std::snprintf(tid, sizeof tid, "1-%08x-0123456789abcdef01234568", static_cast<unsigned>(now));
  add(tid, now - 30);
  std::snprintf(tid, sizeof tid, "1-%08x-0123456789abcdef01234569", static_cast<unsigned>(now));
  docs.push_back(std::string(R"({"trace_id":")") + tid + R"(","id":"ddddddddddddddd1","name":"worker","start_time":)" +
                 std::to_string(now - 20) + R"(,"end_time":)" + std::to_string(now - 19) +
                 R"(,"error":true,"annotations":{"n":2.5}})");
  return docs;
}

struct Harness {
  std::filesystem::path dir;
  std::unique_ptr<xrayd::store::TraceStore> store;
  std::unique_ptr<xrayd::api::XrayApi> api;

  Harness() {
    char tmpl[] = "/tmp/xrayd-fuzz-api-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    xrayd::store::StoreOptions options;
    options.data_dir = dir.string();
    options.retention_seconds = 100.0 * 365 * 24 * 3600;  // keep the seeds' 2024 trace
    auto s = xrayd::store::TraceStore::Open(options);
    if (!s) std::abort();
    store = std::move(*s);
    const auto docs = Documents(static_cast<double>(std::time(nullptr)));
    auto appended = store->Append(docs);
    if (!appended || !appended->empty()) {
      std::fprintf(stderr, "fuzz_api_request: the store refused the harness's documents\n");
      std::abort();
    }
    api = std::make_unique<xrayd::api::XrayApi>(xrayd::api::ApiOptions{}, *store);
  }
  ~Harness() {
    api.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

void Check(bool ok, const char* what, const xrayd::http::OutgoingResponse& r) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_api_request: %s: status %d body %.300s\n", what, r.status, r.body.c_str());
  std::abort();
}

// PlainPutDocuments against the general path's parser: a body it reads must give nlohmann the same
// one-member object of strings.
void CheckPlainPut(const std::string& body) {
  const auto plain = xrayd::api::PlainPutDocuments(body, body.size());
  if (!plain) return;
  const auto in = nlohmann::json::parse(body, nullptr, false);
  bool same = in.is_object() && in.size() == 1 && in.contains("TraceSegmentDocuments") &&
              in["TraceSegmentDocuments"].is_array() && in["TraceSegmentDocuments"].size() == plain->size();
  for (size_t i = 0; same && i < plain->size(); ++i)
    same = in["TraceSegmentDocuments"][i].is_string() && in["TraceSegmentDocuments"][i].get<std::string>() == (*plain)[i];
  if (!same) {
    std::fprintf(stderr, "fuzz_api_request: PlainPutDocuments differs from nlohmann on %.300s\n", body.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  if (size == 0) return 0;
  xrayd::http::IncomingRequest req;
  req.method = "POST";
  req.target = req.path = kPaths[data[0] % (sizeof kPaths / sizeof kPaths[0])];
  req.headers = {{"Content-Type", "application/json"}};
  req.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (req.path == std::string_view("/TraceSegments")) CheckPlainPut(req.body);
  const xrayd::http::OutgoingResponse r = h.api->Handle(req);
  Check(r.status == 200 || (r.status >= 400 && r.status < 500), "unexpected status", r);
  const auto body = nlohmann::json::parse(r.body, nullptr, false);
  Check(!body.is_discarded() && body.is_object(), "answer is not a JSON object", r);
  if (r.status != 200) {
    Check(body.contains("__type") && body["__type"].is_string() && body.contains("message"), "error shape", r);
    bool header = false;
    for (const auto& [k, v] : r.headers) header |= k == "x-amzn-ErrorType" && v == body["__type"];
    Check(header, "x-amzn-ErrorType missing or different from __type", r);
  }
  return 0;
}
