// Fuzzes the reading of PutTraceSegments answers (bodies from the network).
#include <cstdint>
#include <string>

#include "export/xray/put_trace_segments.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  (void)xrayd::xray::ParsePutTraceSegmentsResponse(body);
  xrayd::http::Response r;
  r.status = 400 + static_cast<long>(size % 200);
  r.body = body;
  r.headers.emplace_back("x-amzn-errortype", body.substr(0, 64));
  (void)xrayd::xray::ClassifyErrorResponse(r);
  return 0;
}
