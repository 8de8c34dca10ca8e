// Fuzzes the OTLP/HTTP receiver with protobuf bodies (checks: otlp_receiver_fuzz.h). Seeds
// (corpus/fuzz_otlp_proto): bodies the OpenTelemetry JS SDK's exporter-trace-otlp-proto sent
// (tests/e2e/otlp_js_client.mjs), plus truncated and hostile ones.
#include <cstdint>

#include "otlp_receiver_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xrayd_fuzz::FuzzOtlpReceiver(data, size, "application/x-protobuf");
  return 0;
}
