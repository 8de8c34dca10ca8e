// Fuzzes every X-Ray API request body through the dispatcher (XrayApi::Handle): JSON limits,
// shape validation, handlers, a real store in a temporary directory.
//
// Input: the first byte picks the operation (index into kPaths, modulo its size); the rest is the
// body. Seeds (corpus/fuzz_api_request) are bodies captured from real clients — boto3, the AWS CLI
// and @aws-sdk/client-xray — pointed at a recording endpoint, plus the hostile cases of issue #11
// (deep nesting, a non-ASCII filter, over-long names).
//
// Checked on every input, not only "does not crash": the answer is 200 or a 4xx with a JSON
// {"__type","message"} body and a matching x-amzn-ErrorType header; a 500 (a handler threw, or
// internal text would have leaked) is a finding and aborts.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

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

struct Harness {
  std::filesystem::path dir;
  std::unique_ptr<xrayd::store::TraceStore> store;
  std::unique_ptr<xrayd::api::XrayApi> api;

  Harness() {
    char tmpl[] = "/tmp/xrayd-fuzz-api-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    auto s = xrayd::store::TraceStore::Open({dir.string()});
    if (!s) std::abort();
    store = std::move(*s);
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  if (size == 0) return 0;
  xrayd::http::IncomingRequest req;
  req.method = "POST";
  req.target = req.path = kPaths[data[0] % (sizeof kPaths / sizeof kPaths[0])];
  req.headers = {{"Content-Type", "application/json"}};
  req.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
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
