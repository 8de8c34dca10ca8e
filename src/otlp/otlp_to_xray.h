// OTLP spans -> X-Ray segment documents, with the rules of AWS's X-Ray exporter for the
// OpenTelemetry Collector (awsxrayexporter); docs/OTLP.md has the table of every mapping.
//
// Every span becomes a segment when it is a SERVER span or has no parent, otherwise a subsegment:
// nested in its parent's document when the parent span is in the same ResourceSpans of the request
// (one service's spans exported together), else an independent subsegment document ("type":
// "subsegment", parent_id) that X-Ray assembles into the tree. (The Collector's exporter always sends
// independent subsegments; nesting keeps calls to AWS and remote services inside their segment,
// where service graphs look for them.) Trace ids
// must be X-Ray ids: their first 4 bytes are the epoch second of the trace's start, within the last
// 28 days and no more than 5 minutes ahead (the exporter's check, X-Ray keeps 30 days). A span with
// any other trace id (random 128-bit ids of the default OpenTelemetry id generator) is dropped and
// counted, as the exporter drops it — unless skip_timestamp_validation is set, when its id is used
// as is. Indexed attributes (those listed in the span's aws.xray.annotations, the configured
// indexed_attributes, or all with index_all_attributes) become annotations; every other attribute
// not mapped to a segment field goes to metadata (namespace "default"; the segment's resource
// attributes as "otel.resource.<key>"). Every document is checked with segment::Parser; one that
// fails (too large, a time out of range) is dropped and counted.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "otlp/otlp_trace.pb.h"

namespace xrayd::otlp {

struct ToXrayOptions {
  std::vector<std::string> indexed_attributes;  // attribute keys that become annotations
  bool index_all_attributes = false;            // every scalar attribute becomes an annotation
  bool skip_timestamp_validation = false;       // accept trace ids whose epoch is out of range
  int64_t now_epoch_seconds = 0;                // 0: the system clock (tests set it)
};

struct ToXrayStats {
  size_t spans = 0;               // spans seen
  size_t documents = 0;           // documents produced (one holds several spans when nested)
  size_t invalid_trace_id = 0;    // dropped: not an X-Ray trace id (epoch out of range, zero)
  size_t invalid_span = 0;        // dropped: bad span id, or the document failed validation
  size_t dropped() const { return invalid_trace_id + invalid_span; }
};

std::vector<std::string> RequestToSegments(const pb::ExportTraceServiceRequest& request,
                                           const ToXrayOptions& options, ToXrayStats* stats);

}  // namespace xrayd::otlp
