// Fuzzes the spool's reader: any bytes as a chunk file (and optionally an ack file) must open, read
// back, acknowledge and append without a crash, hang or unbounded memory, hand out only records
// whose CRCs matched (and whose zstd payload decompressed within bounds), and keep the spool's
// accounting balanced.
//
// Input: byte 0 = flags (bit 0: the next 24 bytes are DIR/ack); the rest is DIR/<id>.chunk.
// Seeds (fuzz/corpus/fuzz_spool) are written from the documented format by make_spool_seeds.py.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "pipeline/spool.h"

namespace {

namespace fs = std::filesystem;
using xrayd::pipeline::Spool;

// One scratch directory per process, removed after each input (libFuzzer may leave by _Exit).
const std::string& Dir() {
  static const std::string dir = std::string(fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") +
                                 "/fuzz_spool." + std::to_string(::getpid());
  return dir;
}

struct RemoveDir {
  ~RemoveDir() {
    std::error_code ec;
    fs::remove_all(Dir(), ec);
  }
};

void Write(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void Balanced(const xrayd::pipeline::SpoolStats& s) {
  Check(s.recovered_records + s.appended_records ==
        s.delivered_records + s.pending_records + s.dropped_full_records + s.expired_records + s.corrupt_records);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The pure scanner: offsets inside the input, decodable payloads where it says so.
  const auto scan = xrayd::pipeline::ScanChunk(in);
  Check(scan.valid_end <= in.size());
  for (const auto& r : scan.records) {
    Check(r.offset + r.bytes <= in.size());
    // The whole-record decoder (decompressing zstd payloads, bounded by kMaxRecordBytes) agrees
    // with the scan: what decodes passed the scan's checks, and an uncompressed record that passed
    // them decodes; a compressed one may still fail to decompress (counted corrupt at Read()).
    const auto decoded = xrayd::pipeline::DecodeRecord(in.substr(r.offset, r.bytes));
    if (decoded) Check(r.payload_ok && decoded->size() == r.segments);
    if (r.payload_ok && !r.compressed) Check(decoded.has_value());
  }

  RemoveDir cleanup;
  fs::create_directories(Dir());
  if (!in.empty() && (in[0] & 1) && in.size() >= 25) {
    Write(Dir() + "/ack", in.substr(1, 24));
    in.remove_prefix(25);
  } else if (!in.empty()) {
    in.remove_prefix(1);
  }
  Write(Dir() + "/00000000000000000001.chunk", in);

  xrayd::pipeline::SpoolOptions o;
  o.max_bytes = 1 << 20;
  o.chunk_bytes = 64 << 10;
  o.fsync = xrayd::pipeline::FsyncPolicy::kNever;
  auto spool = Spool::Open(Dir(), o);
  if (!spool.ok()) return 0;  // a clear error (newer version) is a fine answer
  Spool& s = **spool;
  uint64_t last = 0;
  for (int i = 0; i < 100000; ++i) {
    auto r = s.Read();
    Check(r.ok());
    if (!r->has_value()) break;
    Check((*r)->sequence > last);
    last = (*r)->sequence;
  }
  if (last) Check(s.Ack(last).ok());
  Check(s.Append({"{\"id\":\"fuzz\"}"}).ok());
  Balanced(s.stats());
  Check(s.Close().ok());
  // What the first run left behind must open and read back cleanly.
  auto again = Spool::Open(Dir(), o);
  Check(again.ok());
  auto r = (*again)->Read();
  Check(r.ok() && r->has_value() && (*r)->segments.size() == 1 && (*r)->segments[0] == "{\"id\":\"fuzz\"}");
  Check((*again)->stats().torn_tail_cuts == 0 && (*again)->stats().corrupt_cuts == 0);
  return 0;
}
