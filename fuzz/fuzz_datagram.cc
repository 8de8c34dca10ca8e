// Fuzzes the UDP datagram parser: header split, header JSON, segment JSON and validation.
#include <cstdint>
#include <cstring>
#include <vector>

#include "ingest/datagram.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > xrayd::kMaxDatagramBytes) return 0;
  static xrayd::DatagramParser parser;
  std::vector<char> buf(size + xrayd::kPadding, '\0');
  std::memcpy(buf.data(), data, size);
  const auto v = parser.Parse(buf.data(), size);
  if (!v.reject) {
    // An accepted segment is a view into the input, never past it.
    if (v.segment.data() < buf.data() || v.segment.data() + v.segment.size() > buf.data() + size) __builtin_trap();
  }
  return 0;
}
