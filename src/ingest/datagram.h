// Splits and validates one UDP datagram from an X-Ray SDK:
//
//   {"format": "json", "version": 1}\n<segment document>
//
// The header is parsed as JSON (SDKs differ in whitespace), never compared as bytes, and
// matched as leniently as AWS's daemon matches it (see datagram.cc). The document after it is
// validated by segment::Parser: the rules are segment/segment.h's, the same that PutTraceSegments
// and the trace store apply.
//
// DatagramParser owns simdjson parsers and scratch memory: one per receiving thread, not
// thread-safe. Inputs must be followed by kPadding readable bytes (the receive buffers are).
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <optional>
#include <string_view>

#include "common/reasons.h"
#include "segment/segment.h"

namespace xrayd {

inline constexpr size_t kMaxSegmentBytes = segment::kMaxDocumentBytes;
inline constexpr size_t kMaxDatagramBytes = 65536;  // largest UDP payload we read
inline constexpr size_t kPadding = segment::kPadding;

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

  // Validates a segment document alone (no header line): segment::Parser::Validate in this
  // verdict's shape. Kept for callers written against it (PutTraceSegments); new code calls
  // segment::Parser directly. Same padding contract.
  DatagramVerdict ValidateSegment(const char* data, size_t len);

 private:
  simdjson::dom::parser header_parser_;
  segment::Parser segment_parser_;
};

}  // namespace xrayd
