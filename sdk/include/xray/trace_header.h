// The X-Amzn-Trace-Id HTTP header: "Root=1-...;Parent=<16 hex>;Sampled=1;Lineage=...;Other=x".
//
// Parse is tolerant the way AWS's SDKs are: fields in any order, spaces around keys, values and
// separators ignored, empty fields skipped, key names matched case-insensitively. Invalid Root or Parent
// values are dropped (the header then starts a new trace) rather than failing the whole header; unknown
// fields are kept in order so a proxy can forward them. A value type; not synchronized.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xray {

inline constexpr std::string_view kTraceHeaderName = "X-Amzn-Trace-Id";

enum class SampledFlag { kUnknown, kSampled, kNotSampled, kRequested };  // absent, 1, 0, ?

struct TraceHeader {
  std::string root;     // trace id, empty when absent or malformed
  std::string parent;   // parent segment id, empty when absent or malformed
  SampledFlag sampled = SampledFlag::kUnknown;
  std::string lineage;  // kept verbatim (e.g. "a87bd80c:1|68fd508a:5")
  std::vector<std::pair<std::string, std::string>> extra;  // unknown fields, in order

  // Never fails: a malformed header yields an empty TraceHeader (no root), which callers treat as
  // "start a new trace". At most 2 KB of input is looked at.
  static TraceHeader Parse(std::string_view value);

  // "Root=...;Parent=...;Sampled=...;Lineage=...;k=v" with absent parts left out.
  std::string ToString() const;
};

}  // namespace xray
