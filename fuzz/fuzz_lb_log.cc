// Fuzzes the load-balancer access-log path: ParseLogLine on the input as one line, then the whole
// input as a log object through LogReader (plain or gzip by its first bytes, fed in two pieces).
// Invariants: every segment the reader offers is a document segment::Parser accepts, and every
// non-empty line is either offered or counted malformed.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lb/access_log.h"
#include "lb/log_reader.h"
#include "segment/segment.h"

namespace {

class CheckingSink : public xrayd::pipeline::SegmentSink {
 public:
  size_t Offer(std::vector<std::string>& docs) override {
    for (const auto& d : docs) {
      xrayd::segment::Facts facts;
      if (!parser_.Parse(d, &facts).ok()) __builtin_trap();
    }
    const size_t n = docs.size();
    docs.clear();
    return n;
  }

 private:
  xrayd::segment::Parser parser_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  xrayd::lb::LogEntry entry;
  (void)xrayd::lb::ParseLogLine(input, &entry);
  static CheckingSink sink;
  xrayd::lb::LbCounters counters;
  xrayd::lb::LogReader reader(sink, {}, counters);
  reader.Begin("fuzz");
  const size_t half = size / 2;
  (void)reader.Feed(input.substr(0, half));
  (void)reader.Feed(input.substr(half));
  (void)reader.Finish();
  if (counters.segments.load() + counters.malformed.load() != counters.lines.load()) __builtin_trap();
  return 0;
}
