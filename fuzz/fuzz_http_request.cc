// Fuzzes the HTTP server's "bytes → request or refusal" step (http::RequestReader), as http::Server
// drives it: the input is cut into reads whose sizes come from its first byte, and every complete
// request is taken before parsing on (pipelining). Checks the limits hold on what comes out.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/server_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  xrayd::http::ServerLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_header_count = 16;
  limits.max_body_bytes = 4096;
  limits.max_inflation_ratio = 8;
  xrayd::http::RequestReader reader(limits);
  const size_t step = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  using Progress = xrayd::http::RequestReader::Progress;
  while (!in.empty()) {
    const size_t n = std::min(step, in.size());
    reader.Append(in.substr(0, n));
    in.remove_prefix(n);
    for (Progress p = reader.Next(); p != Progress::kNeedMore; p = reader.Next()) {
      if (p == Progress::kRefused) {
        const int s = reader.refusal().status;
        if (s < 400 || s > 599) std::abort();
        return 0;
      }
      if (p == Progress::kRequest) {
        bool keep_alive = false;
        auto req = reader.TakeRequest(&keep_alive);
        if (req.body.size() > limits.max_body_bytes || req.headers.size() > limits.max_header_count) std::abort();
      }
    }
  }
  return 0;
}
