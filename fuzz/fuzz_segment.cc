// Fuzzes segment::Parser: validation and fact extraction of one document, padded and unpadded.
// Invariants: both entry points agree, an accepted document's facts obey the rules it was
// accepted under, and an accepted view stays inside the input.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "segment/segment.h"

using namespace xrayd::segment;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 2 * kMaxDocumentBytes) return 0;
  static Parser parser;
  std::vector<char> buf(size + kPadding, '\0');
  std::memcpy(buf.data(), data, size);
  Facts facts;
  const Verdict padded = parser.Parse(buf.data(), size, &facts);
  if (padded.ok()) {
    if (padded.document.data() < buf.data() || padded.document.data() + padded.document.size() > buf.data() + size)
      __builtin_trap();
    if (!IsValidTraceId(facts.trace_id) || !IsHexId(facts.id, 16) || facts.name.empty()) __builtin_trap();
    if (!IsPlausibleTime(facts.start_time)) __builtin_trap();
    if (facts.end_time && (!IsPlausibleTime(*facts.end_time) || *facts.end_time < facts.start_time)) __builtin_trap();
    for (const auto& c : facts.called_services)
      if (c.name.empty() || c.type.empty()) __builtin_trap();
  }
  Facts again;
  const Verdict unpadded = parser.Parse(std::string_view(reinterpret_cast<const char*>(data), size), &again);
  if (padded.reject != unpadded.reject) __builtin_trap();
  if (unpadded.ok() && (again.id != facts.id || again.start_time != facts.start_time)) __builtin_trap();
  return 0;
}
