#include "lb/log_reader.h"

#include <chrono>

namespace xrayd::lb {

LogReader::LogReader(pipeline::SegmentSink& sink, SynthesisOptions options, LbCounters& counters)
    : sink_(sink), options_(std::move(options)), counters_(counters), malformed_log_(std::chrono::seconds(1)) {}

LogReader::~LogReader() {
  if (zs_ready_) inflateEnd(&zs_);
}

void LogReader::Begin(std::string_view name) {
  name_.assign(name);
  started_ = gzip_ = failed_ = overlong_ = false;
  gzip_ended_ = true;
  partial_.clear();
  batch_.clear();
}

Status LogReader::Feed(std::string_view bytes) {
  if (failed_) return Error::InvalidArgument(name_ + ": corrupt gzip data");
  if (bytes.empty()) return OkStatus();
  if (!started_) {
    started_ = true;
    gzip_ = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
            static_cast<unsigned char>(bytes[1]) == 0x8b;
  }
  if (!gzip_) {
    Lines(bytes);
    return OkStatus();
  }
  return Inflate(bytes);
}

Status LogReader::Inflate(std::string_view bytes) {
  char out[64 * 1024];
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs_.avail_in = static_cast<uInt>(bytes.size());
  while (zs_.avail_in > 0) {
    if (gzip_ended_) {  // a new member (the first, or one concatenated after the last)
      int rc = zs_ready_ ? inflateReset2(&zs_, 15 + 16) : inflateInit2(&zs_, 15 + 16);
      if (rc != Z_OK) {
        failed_ = true;
        return Error::InvalidArgument(name_ + ": zlib could not start");
      }
      zs_ready_ = true;
      gzip_ended_ = false;
    }
    zs_.next_out = reinterpret_cast<Bytef*>(out);
    zs_.avail_out = sizeof(out);
    const int rc = inflate(&zs_, Z_NO_FLUSH);
    Lines(std::string_view(out, sizeof(out) - zs_.avail_out));
    if (rc == Z_STREAM_END) {
      gzip_ended_ = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      failed_ = true;
      return Error::InvalidArgument(name_ + ": corrupt gzip data (" + (zs_.msg ? zs_.msg : "zlib error") + ")");
    }
  }
  return OkStatus();
}

void LogReader::Lines(std::string_view text) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view piece = text.substr(0, nl == std::string_view::npos ? text.size() : nl);
    if (!overlong_) {
      if (partial_.size() + piece.size() > kMaxLineBytes) {
        overlong_ = true;
        partial_.clear();
      } else if (nl != std::string_view::npos && partial_.empty()) {
        Line(piece);  // the common case: a whole line inside one piece, never copied
      } else {
        partial_.append(piece);
      }
    }
    if (nl == std::string_view::npos) return;
    if (overlong_) {
      counters_.lines.fetch_add(1, std::memory_order_relaxed);
      counters_.malformed.fetch_add(1, std::memory_order_relaxed);
      if (malformed_log_.Allow()) XLOG_WARN("LB log {}: a line longer than {} bytes skipped", name_, kMaxLineBytes);
      overlong_ = false;
    } else if (!partial_.empty()) {
      Line(partial_);
      partial_.clear();
    }
    text.remove_prefix(nl + 1);
  }
}

void LogReader::Line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return;
  counters_.lines.fetch_add(1, std::memory_order_relaxed);
  batch_.emplace_back();
  Status st = ParseLogLine(line, &entry_);
  if (st) st = SynthesizeSegment(entry_, line, options_, &batch_.back());
  if (!st) {
    batch_.pop_back();
    counters_.malformed.fetch_add(1, std::memory_order_relaxed);
    if (malformed_log_.Allow())
      XLOG_WARN("LB log {}: malformed line skipped: {} ({} more since the last message)", name_, st.error().message,
                malformed_log_.TakeSuppressed());
    return;
  }
  if (batch_.size() >= kBatchSegments) Flush();
}

void LogReader::Flush() {
  if (batch_.empty()) return;
  const size_t n = batch_.size();
  const size_t accepted = sink_.Offer(batch_);
  batch_.clear();
  counters_.segments.fetch_add(n, std::memory_order_relaxed);
  counters_.accepted.fetch_add(accepted, std::memory_order_relaxed);
}

Status LogReader::Finish() {
  if (!overlong_ && !partial_.empty()) Line(partial_);
  partial_.clear();
  Flush();
  if (failed_) {
    counters_.object_errors.fetch_add(1, std::memory_order_relaxed);
    return Error::InvalidArgument(name_ + ": corrupt gzip data");
  }
  if (gzip_ && !gzip_ended_) {
    counters_.object_errors.fetch_add(1, std::memory_order_relaxed);
    return Error::InvalidArgument(name_ + ": truncated gzip data");
  }
  counters_.objects.fetch_add(1, std::memory_order_relaxed);
  return OkStatus();
}

}  // namespace xrayd::lb
