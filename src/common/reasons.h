// Reason enums every folder may use (DESIGN.md: reason enums live where everybody may include
// them), with the names metrics, logs and the API print for them.
//
// RejectReason: why a segment document (a UDP datagram, or one document of a PutTraceSegments
// request) was refused at ingest. The names are the `reason` label of
// xrayd_segments_rejected_total and stable: dashboards and the end-to-end tests match them.
#pragma once

namespace xrayd {

enum class RejectReason {
  kBadHeader,       // the datagram's header line is missing or not {"format":"json","version":1}
  kBadJson,         // the document is not JSON
  kInvalidSegment,  // JSON, but not a segment X-Ray would accept (ids, name, parent, ...)
  kTooLarge,        // over X-Ray's 64 KB per-document limit
  kInvalidTime,     // start_time/end_time that cannot be right (see segment/segment.h for the bounds)
  kCount
};

constexpr const char* ToString(RejectReason r) {
  switch (r) {
    case RejectReason::kBadHeader: return "bad_header";
    case RejectReason::kBadJson: return "bad_json";
    case RejectReason::kInvalidSegment: return "invalid_segment";
    case RejectReason::kTooLarge: return "too_large";
    case RejectReason::kInvalidTime: return "invalid_time";
    case RejectReason::kCount: break;
  }
  return "unknown";
}

}  // namespace xrayd
