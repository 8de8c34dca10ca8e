// The service graph's rules: which calls a trace's documents make, between which nodes.
//
// A node per service (a segment's name and origin) and per inferred downstream (a subsegment in
// the "remote" or "aws" namespace whose call produced no segment of its own, typed by
// InferredServiceType). An edge from the calling service to the called one, found through
// parent_id links between segments, or to the inferred node. A segment whose parent is in none of
// the trace's segments is a request entering the graph (from a client). A subsegment streamed as
// its own document belongs to the service of the segment its parent_id chain reaches (possibly
// through other streamed subsegments): its calls, and segments whose parent it is, count as if it
// were nested there.
//
// TraceCalls turns one trace's facts into Calls; everything that aggregates them (the API's graph
// and time-series answers over scanned documents, the store's per-minute rollups kept at ingest)
// counts Calls with Stats, so both give the same numbers for the same documents.
// Pure functions and values; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "segment/segment.h"

namespace xrayd::segment {

struct NodeKey {
  std::string name, type;  // type: the origin ("" for a plain service) or the inferred type
  bool operator<(const NodeKey& o) const { return std::tie(name, type) < std::tie(o.name, o.type); }
  bool operator==(const NodeKey& o) const { return name == o.name && type == o.type; }
};

// One observation the graph counts.
struct Call {
  enum class Kind : uint8_t {
    kNode = 0,   // a service handled a request (a segment, or an inferred callee's call)
    kEdge = 1,   // `from` called `to`
    kEntry = 2,  // a request entered the graph at `to` (its parent is in no segment of the trace)
  };
  Kind kind = Kind::kNode;
  NodeKey from, to;  // from: empty unless kEdge
  bool root = false;  // kNode: the segment has no parent_id (the service is a root of the graph)
  std::optional<double> start, end;
  bool error = false, fault = false, throttle = false;

  double StartOr0() const { return start.value_or(0); }
  double ResponseTime() const { return end.value_or(StartOr0()) - StartOr0(); }
};

// Every Call of one trace: `docs` are the facts of all its stored documents (segments and
// streamed subsegments), in any order.
std::vector<Call> TraceCalls(const std::vector<const Facts*>& docs);

// Counts of calls: ok / error / fault / throttle, total response time, a histogram of response
// times at millisecond precision, and the calls' time bounds.
struct Stats {
  int64_t ok = 0, error = 0, throttle = 0, fault = 0, total = 0;
  int64_t roots = 0;  // calls with Call::root
  double total_response_time = 0;
  double start = 1e300, end = -1e300;   // min start / max end (or start) of the calls counted
  std::map<int64_t, int64_t> histogram;  // response time in whole milliseconds → count

  // sign -1 takes a call counted before back out (counts and histogram; the time bounds never
  // shrink). Counts may go negative in a delta; a merged total is never negative.
  void Add(const Call& c, int sign = 1);
  void Merge(const Stats& o);
  bool Empty() const { return total == 0 && histogram.empty(); }

  // Compact binary form of the counts and histogram (for the store's rollup rows).
  std::string EncodeHistogram() const;
  static bool DecodeHistogram(std::string_view blob, std::map<int64_t, int64_t>* out);
};

// The minute a call is counted in (its start, floor(start / 60) * 60).
inline int64_t MinuteOf(double t) {
  const auto s = static_cast<int64_t>(t);
  const int64_t floored = (static_cast<double>(s) > t) ? s - 1 : s;
  return floored - ((floored % 60) + 60) % 60;
}

// One rollup row's key: a minute and a call's kind and nodes.
struct RollupKey {
  int64_t minute = 0;
  Call::Kind kind = Call::Kind::kNode;
  NodeKey from, to;
  bool operator<(const RollupKey& o) const {
    return std::tie(minute, kind, from, to) < std::tie(o.minute, o.kind, o.from, o.to);
  }
};
using Rollup = std::map<RollupKey, Stats>;

// Adds (sign +1) or subtracts (sign -1) `calls` to `rollup`, per minute of each call's start.
void AddToRollup(const std::vector<Call>& calls, int sign, Rollup* rollup);

}  // namespace xrayd::segment
