// Fuzzes the OTLP/HTTP receiver with OTLP/JSON bodies (checks: otlp_receiver_fuzz.h), and the
// sender's reading of a collector's JSON answer. Seeds (corpus/fuzz_otlp_json): bodies the
// OpenTelemetry JS SDK's exporter-trace-otlp-http sent (tests/e2e/otlp_js_client.mjs), plus truncated
// and hostile ones.
#include <cstdint>
#include <string>

#include "otlp/otlp_json.h"
#include "otlp_receiver_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xrayd_fuzz::FuzzOtlpReceiver(data, size, "application/json");
  (void)xrayd::otlp::DecodeJsonResponse(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
