// LogReader: one access-log object (a file, an S3 object) in, X-Ray segment documents out.
//
// The bytes are fed in pieces as they are read. Gzip (what ELB writes to S3: `.log.gz`) is told by its
// magic bytes, not the name, and inflated with zlib as it streams (concatenated members included).
// Lines are split on '\n', parsed (lb/access_log.h), turned into segments (lb/segment_synthesis.h)
// and offered to the SegmentSink in batches of kBatchSegments, so memory stays bounded by one line
// (at most kMaxLineBytes) plus one batch whatever the object's size.
//
// Bad input is never fatal: a line that does not parse, or is longer than kMaxLineBytes, is counted
// in LbCounters::malformed and logged (at most once a second per reader, with the object's name and
// the reason); corrupt or truncated gzip data ends that object with an error after offering every
// line read before it. Not thread-safe: one reader per source thread. The sink must outlive it.
#pragma once

#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "lb/access_log.h"
#include "lb/segment_synthesis.h"
#include "pipeline/segment_sink.h"

namespace xrayd::lb {

inline constexpr size_t kMaxLineBytes = 64 * 1024;
inline constexpr size_t kBatchSegments = 100;

// What the load-balancer sources did, process-wide per source set; read by logs and tests.
struct LbCounters {
  std::atomic<uint64_t> objects{0};         // objects read to the end
  std::atomic<uint64_t> object_errors{0};   // objects that could not be read (whole or in part)
  std::atomic<uint64_t> lines{0};           // non-empty lines seen
  std::atomic<uint64_t> malformed{0};       // lines refused by the parser (or too long)
  std::atomic<uint64_t> segments{0};        // segments offered to the sink
  std::atomic<uint64_t> accepted{0};        // ... and accepted by it
};

class LogReader {
 public:
  LogReader(pipeline::SegmentSink& sink, SynthesisOptions options, LbCounters& counters);
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // Starts an object; `name` is only for log messages.
  void Begin(std::string_view name);
  // The object's next bytes. Error (kInvalidArgument) on corrupt gzip data: the rest is ignored.
  Status Feed(std::string_view bytes);
  // Ends the object: reads a last line without '\n', offers what is batched. Error when the gzip
  // stream is truncated or Feed failed.
  Status Finish();

 private:
  Status Inflate(std::string_view bytes);
  void Lines(std::string_view text);
  void Line(std::string_view line);
  void Flush();

  pipeline::SegmentSink& sink_;
  const SynthesisOptions options_;
  LbCounters& counters_;
  log::RateLimiter malformed_log_;

  std::string name_;
  bool started_ = false;  // the first bytes have decided plain or gzip
  bool gzip_ = false;
  bool gzip_ended_ = true;  // between members / before the first
  bool failed_ = false;
  bool overlong_ = false;  // discarding a too-long line up to its '\n'
  z_stream zs_{};
  bool zs_ready_ = false;
  std::string partial_;  // the current line's start, when it spans pieces
  LogEntry entry_;       // reused: its strings keep their capacity
  std::vector<std::string> batch_;
};

}  // namespace xrayd::lb
