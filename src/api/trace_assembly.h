// Turns the stored documents of one trace into what BatchGetTraces returns: one entry per
// segment, with independent subsegment documents (sent separately by SDKs that stream large
// segments) merged back into their parent's "subsegments" list, at any depth. A trace without such
// documents keeps its documents' stored text (nothing to merge); a merged one is re-serialized.
// Pure function; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "store/trace_store.h"

namespace xrayd::api {

struct AssembledSegment {
  std::string id;
  std::string document;  // JSON text
};

struct AssembledTrace {
  std::vector<AssembledSegment> segments;
  double duration = 0;  // max(end) - min(start) over the trace
};

AssembledTrace AssembleTrace(const std::vector<store::StoredSegment>& stored);

}  // namespace xrayd::api
