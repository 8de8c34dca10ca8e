// X-Ray segment documents -> OTLP spans, with the rules of the OpenTelemetry Collector's X-Ray
// receiver (awsxrayreceiver); docs/OTLP.md has the table of every mapping.
//
// One document (a segment, or an independent subsegment, with its nested subsegments) becomes one
// ResourceSpans: the resource from the document's top level (service.name, cloud.*, telemetry.sdk.*),
// one ScopeSpans ("xrayd"), and a span for the document and each nested subsegment, parented as in
// the document. Decisions where X-Ray and OTLP differ:
//   - An in-progress document (top level "in_progress": true) is not exported: the SDK sends the
//     complete document later, and an OTLP span cannot be updated once sent. Counted (skipped).
//   - A nested subsegment still in progress is exported with end time 0 (OTLP's "unset") and
//     aws.xray.inprogress = true, as the Collector's receiver does.
//   - Streamed subsegments (independent documents, "type": "subsegment") become spans whose parent
//     is their parent_id; their resource carries only what the subsegment itself says.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "otlp/otlp_trace.pb.h"

namespace xrayd::otlp {

struct ToOtlpStats {
  size_t documents = 0;    // converted
  size_t spans = 0;        // spans written
  size_t in_progress = 0;  // documents skipped because in progress
  size_t invalid = 0;      // documents that are not X-Ray segments (bad JSON, ids, times)
};

// Appends one document's ResourceSpans to `request`. An in-progress document appends nothing and
// returns OK (counted). An invalid one appends nothing and returns an InvalidArgument error.
Status AppendSegment(std::string_view document, pb::ExportTraceServiceRequest* request,
                     ToOtlpStats* stats);

// Every document of a batch; invalid ones are counted in `stats` and skipped.
pb::ExportTraceServiceRequest SegmentsToRequest(const std::vector<std::string>& documents,
                                                ToOtlpStats* stats);

}  // namespace xrayd::otlp
