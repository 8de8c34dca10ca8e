// Fuzzes what the C++ SDK takes from the network on every request: the X-Amzn-Trace-Id header, and
// the JSON string writer that puts such text (URLs, user agents, header values) into segments.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "json_text.h"
#include "xray/trace_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // Whatever the header says, what we format from it parses back to the same trace fields.
  const xray::TraceHeader h = xray::TraceHeader::Parse(input);
  const xray::TraceHeader again = xray::TraceHeader::Parse(h.ToString());
  if (again.root != h.root || again.parent != h.parent || again.sampled != h.sampled) std::abort();

  // Any bytes written as a JSON string give a document that parses.
  std::string out;
  xray::json_text::AppendString(out, input);
  if (nlohmann::json::parse(out, nullptr, false).is_discarded()) std::abort();
  return 0;
}
