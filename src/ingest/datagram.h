// Splits and validates one UDP datagram from an X-Ray SDK:
//
//   {"format": "json", "version": 1}\n<segment document>
//
// The header is parsed as JSON (SDKs differ in whitespace), never compared as bytes, and
// matched as leniently as AWS's daemon matches it (see datagram.cc). The segment
// must be a JSON object that X-Ray's PutTraceSegments would accept at first sight: a well-formed
// trace_id (1-8hex-24hex), a 16-hex id, a non-empty name of at most 200 characters, a numeric
// start_time, and a parent_id when it is an independent subsegment.
//
// DatagramParser owns a simdjson parser and scratch memory: one per receiving thread, not
// thread-safe. Inputs must be followed by kPadding readable bytes (the receive buffers are).
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <optional>
#include <string_view>

#include "telemetry/metrics.h"

namespace xrayd {

inline constexpr size_t kMaxSegmentBytes = 64 * 1024;  // X-Ray's per-document limit
inline constexpr size_t kMaxDatagramBytes = 65536;     // largest UDP payload we read
inline constexpr size_t kPadding = simdjson::SIMDJSON_PADDING;

struct DatagramVerdict {
  std::optional<RejectReason> reject;  // set when the datagram is refused
  std::string_view segment;            // the document (points into the input) when accepted
  std::string_view detail;             // a short static explanation for logs when refused
};

class DatagramParser {
 public:
  DatagramParser();

  // `data` must stay valid while the returned view is used and be followed by kPadding bytes.
  DatagramVerdict Parse(const char* data, size_t len);

  // Validates a segment document alone (no header line), with the same rules: what the X-Ray
  // API server applies to PutTraceSegments. Same padding contract.
  DatagramVerdict ValidateSegment(const char* data, size_t len);

 private:
  simdjson::dom::parser parser_;
};

// Exposed for tests.
bool IsValidTraceId(std::string_view s);
bool IsHexId(std::string_view s, size_t digits);

}  // namespace xrayd
