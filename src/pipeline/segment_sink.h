// SegmentSink: where every receiver hands the segments it accepted.
//
// Receivers (UDP datagrams, PutTraceSegments in serve mode, OTLP, load-balancer logs) validate and
// convert their input into X-Ray segment documents (one JSON object each, as the X-Ray API's
// PutTraceSegments takes them), then Offer() them here. The pipeline's fan-out implements this
// interface and copies each document to every exporter's queue; a receiver never knows which
// exporters exist. This is the one seam between the receiving and the sending halves.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace xrayd::pipeline {

class SegmentSink {
 public:
  virtual ~SegmentSink() = default;

  // Takes the documents (moved from; the vector is left empty) and returns how many were accepted
  // by at least one exporter. Thread-safe; never blocks on a slow exporter: a full queue spills to
  // its spool or drops, counted per exporter and reason (pipeline accounting), never silently.
  virtual size_t Offer(std::vector<std::string>& documents) = 0;

  // Returns once the documents this sink accepted before the call can be read back from the store
  // (bounded); at once for sinks that promise nothing (the default). `xrayd serve`'s API calls it
  // before every read, so a client reads back what PutTraceSegments accepted (pipeline::WaitingSink).
  virtual void AwaitStored() {}
};

}  // namespace xrayd::pipeline
