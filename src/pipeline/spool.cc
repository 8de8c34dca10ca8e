#include "pipeline/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.h"

namespace xrayd::pipeline {
namespace {

constexpr char kFileMagic[8] = {'X', 'R', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr char kAckMagic[4] = {'X', 'R', 'A', 'K'};
constexpr size_t kAckBytes = 24;
// The ack file is a log of ack records, appended one per Ack() (one small write, no rename); once
// it reaches this size the next Ack() starts a fresh one (write ack.tmp, rename).
constexpr size_t kAckLogMaxBytes = 64 * 1024;
constexpr std::string_view kChunkSuffix = ".chunk";

uint32_t Crc(std::string_view b) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size())));
}

template <typename T>
void Put(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
}
template <typename T>
T Get(std::string_view b, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return static_cast<T>(v);
}

Error IoError(const std::string& what, const std::string& path, int err) {
  return Error::Io("spool: " + what + " " + path + ": " + std::strerror(err));
}

std::string FileHeader() {
  std::string h(kFileMagic, sizeof(kFileMagic));
  Put<uint32_t>(h, kSpoolFormatVersion);
  Put<uint32_t>(h, Crc(h));
  return h;
}

template <typename T>
void PutAt(std::string& out, size_t at, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out[at + i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}

constexpr uint16_t kFlagZstd = 1;

// Writes the 40-byte header at the front of `rec`, whose payload (after the header) is in place.
void PutHeader(std::string& rec, uint64_t seq, int64_t now_ms, uint32_t segments, uint16_t flags, uint32_t raw_len) {
  const std::string_view payload = std::string_view(rec).substr(kSpoolRecordHeaderBytes);
  PutAt<uint32_t>(rec, 4, Crc(payload));
  PutAt<uint32_t>(rec, 8, static_cast<uint32_t>(payload.size()));
  PutAt<uint16_t>(rec, 12, kSpoolFormatVersion);
  PutAt<uint16_t>(rec, 14, flags);
  PutAt<uint64_t>(rec, 16, seq);
  PutAt<int64_t>(rec, 24, now_ms);
  PutAt<uint32_t>(rec, 32, segments);
  PutAt<uint32_t>(rec, 36, raw_len);
  PutAt<uint32_t>(rec, 0, Crc(std::string_view(rec).substr(4, kSpoolRecordHeaderBytes - 4)));
}

// One ack record: "XRAK" | u32 version | u64 position | u32 crc32(bytes 0..16) | u32 0.
std::string EncodeAck(uint64_t position) {
  std::string b(kAckMagic, 4);
  Put<uint32_t>(b, kSpoolAckVersion);
  Put<uint64_t>(b, position);
  Put<uint32_t>(b, Crc(b));
  Put<uint32_t>(b, 0);
  return b;
}

// A record header at `at` whose CRC matches and whose fields are sane; nullopt otherwise.
std::optional<ScannedRecord> ParseHeader(std::string_view b, uint64_t at) {
  if (b.size() - at < kSpoolRecordHeaderBytes) return std::nullopt;
  const std::string_view h = b.substr(at, kSpoolRecordHeaderBytes);
  if (Get<uint32_t>(h, 0) != Crc(h.substr(4))) return std::nullopt;
  const uint32_t len = Get<uint32_t>(h, 8);
  const uint16_t version = Get<uint16_t>(h, 12);
  if (version < 1 || version > kSpoolFormatVersion || len > kMaxRecordBytes) return std::nullopt;
  ScannedRecord r;
  r.offset = at;
  r.bytes = static_cast<uint32_t>(kSpoolRecordHeaderBytes + len);
  r.sequence = Get<uint64_t>(h, 16);
  r.append_ms = Get<int64_t>(h, 24);
  r.segments = Get<uint32_t>(h, 32);
  r.compressed = version >= 2 && (Get<uint16_t>(h, 14) & kFlagZstd);
  return r;
}

// The header's claims about its stored payload that can be checked without decompressing: flags
// known for its version, raw_len bounded, and for a zstd frame, raw_len equal to the size the frame
// declares (so decompression never needs more than raw_len <= kMaxRecordBytes of output).
bool PayloadShapeOk(std::string_view header, std::string_view payload) {
  const uint16_t version = Get<uint16_t>(header, 12), flags = Get<uint16_t>(header, 14);
  const uint32_t raw_len = Get<uint32_t>(header, 36);
  if (version == 1) return flags == 0 && raw_len == 0;
  if ((flags & ~kFlagZstd) != 0 || raw_len > kMaxRecordBytes) return false;
  if (!(flags & kFlagZstd)) return raw_len == payload.size();
  return ZSTD_getFrameContentSize(payload.data(), payload.size()) == raw_len;
}

// Checks a whole record and returns its raw (uncompressed) payload: `record` itself for an
// uncompressed one, else decompressed into `scratch` (with `dctx`, or a one-off context when null).
std::optional<std::string_view> RawPayload(std::string_view record, ZSTD_DCtx* dctx, std::string& scratch) {
  if (record.size() < kSpoolRecordHeaderBytes) return std::nullopt;
  auto r = ParseHeader(record, 0);
  if (!r || r->bytes != record.size()) return std::nullopt;
  const std::string_view header = record.substr(0, kSpoolRecordHeaderBytes);
  const std::string_view payload = record.substr(kSpoolRecordHeaderBytes);
  if (Crc(payload) != Get<uint32_t>(header, 4) || !PayloadShapeOk(header, payload)) return std::nullopt;
  if (!r->compressed) return payload;
  const uint32_t raw_len = Get<uint32_t>(header, 36);
  scratch.resize(raw_len);
  const size_t n = dctx ? ZSTD_decompressDCtx(dctx, scratch.data(), raw_len, payload.data(), payload.size())
                        : ZSTD_decompress(scratch.data(), raw_len, payload.data(), payload.size());
  if (ZSTD_isError(n) || n != raw_len) return std::nullopt;
  return std::string_view(scratch);
}

bool AllZero(std::string_view b) {
  return std::all_of(b.begin(), b.end(), [](char c) { return c == 0; });
}

// After a bad header at `at`: the next offset holding a whole record whose header and payload both
// check out (two CRCs make a false match negligible), or nullopt.
std::optional<uint64_t> Resync(std::string_view b, uint64_t at) {
  for (uint64_t o = at + 1; o + kSpoolRecordHeaderBytes <= b.size(); ++o) {
    auto r = ParseHeader(b, o);
    if (!r || r->bytes > b.size() - o) continue;
    const std::string_view payload = b.substr(o + kSpoolRecordHeaderBytes, r->bytes - kSpoolRecordHeaderBytes);
    if (Crc(payload) == Get<uint32_t>(b, o + 4)) return o;
  }
  return std::nullopt;
}

class PosixFile final : public WritableFile {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }
  Status Append(std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return IoError("write", path_, errno);
      data.remove_prefix(static_cast<size_t>(n));
    }
    return OkStatus();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return IoError("fdatasync", path_, errno);
    return OkStatus();
  }
  Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return IoError("truncate", path_, errno);
    return OkStatus();
  }

 private:
  const int fd_;
  const std::string path_;
};

class PosixEnv final : public SpoolEnv {
 public:
  int64_t NowUnixMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  Result<std::unique_ptr<WritableFile>> OpenAppend(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("open", path, errno);
    return std::unique_ptr<WritableFile>(new PosixFile(fd, path));
  }
};

Result<std::string> ReadRange(const std::string& path, uint64_t offset, std::optional<uint64_t> len) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return IoError("stat", path, e);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t n = offset >= size ? 0 : std::min(len.value_or(size), size - offset);
  std::string out(n, '\0');
  uint64_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const int e = r < 0 ? errno : EIO;
      ::close(fd);
      return IoError("read", path, e);
    }
    got += static_cast<uint64_t>(r);
  }
  ::close(fd);
  return out;
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("open", dir, errno);
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) return IoError("fsync", dir, e);
  return OkStatus();
}

}  // namespace

SpoolEnv* SpoolEnv::Default() {
  static PosixEnv env;
  return &env;
}

Status SpoolOptions::Validate() const {
  std::string problems;
  auto add = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  const uint64_t chunk = EffectiveChunkBytes();
  if (chunk < 4096) add("chunk_bytes must be at least 4096");
  if (max_bytes < 2 * chunk) add("max_bytes must hold at least two chunks (" + std::to_string(2 * chunk) + " bytes)");
  if (max_age.count() < 0) add("max_age must not be negative");
  if (fsync == FsyncPolicy::kInterval && fsync_interval.count() <= 0) add("fsync_interval must be positive");
  if (!problems.empty()) return Error::InvalidArgument("spool options: " + problems);
  return OkStatus();
}

uint64_t SpoolOptions::EffectiveChunkBytes() const {
  if (chunk_bytes != 0) return chunk_bytes;
  return std::clamp<uint64_t>(max_bytes / 8, 4096, 64ull << 20);
}

ChunkScan ScanChunk(std::string_view b) {
  ChunkScan scan;
  if (b.size() < kSpoolFileHeaderBytes || std::memcmp(b.data(), kFileMagic, sizeof(kFileMagic)) != 0 ||
      Get<uint32_t>(b, 12) != Crc(b.substr(0, 12))) {
    scan.bad_file_header = true;
    scan.torn_tail = b.size() < kSpoolFileHeaderBytes;
    return scan;
  }
  if (const uint32_t v = Get<uint32_t>(b, 8); v > kSpoolFormatVersion) {
    scan.newer_version = v;
    return scan;
  }
  uint64_t at = kSpoolFileHeaderBytes;
  scan.valid_end = at;
  while (at < b.size()) {
    auto r = ParseHeader(b, at);
    if (!r) {
      if (b.size() - at < kSpoolRecordHeaderBytes || AllZero(b.substr(at))) {
        scan.torn_tail = true;  // a crash mid-write (or a size extended before its data landed)
        return scan;
      }
      scan.corrupt_cut = true;
      auto next = Resync(b, at);
      if (!next) return scan;
      at = *next;
      continue;
    }
    if (r->bytes > b.size() - at) {
      scan.torn_tail = true;
      return scan;
    }
    const std::string_view payload = b.substr(at + kSpoolRecordHeaderBytes, r->bytes - kSpoolRecordHeaderBytes);
    // A compressed payload is decompressed by Read(), not here: recovery stays a CRC pass.
    r->payload_ok = Crc(payload) == Get<uint32_t>(b, at + 4) &&
                    PayloadShapeOk(b.substr(at, kSpoolRecordHeaderBytes), payload) &&
                    (r->compressed || DecodePayload(payload, r->segments).has_value());
    scan.records.push_back(*r);
    at += r->bytes;
    scan.valid_end = at;
  }
  return scan;
}

std::optional<std::vector<std::string>> DecodePayload(std::string_view p, uint32_t segment_count) {
  std::vector<std::string> out;
  out.reserve(std::min<size_t>(segment_count, p.size() / 4));
  size_t at = 0;
  for (uint32_t i = 0; i < segment_count; ++i) {
    if (p.size() - at < 4) return std::nullopt;
    const uint32_t len = Get<uint32_t>(p, at);
    at += 4;
    if (p.size() - at < len) return std::nullopt;
    out.emplace_back(p.substr(at, len));
    at += len;
  }
  if (at != p.size()) return std::nullopt;
  return out;
}

std::optional<std::vector<std::string>> DecodeRecord(std::string_view record) {
  std::string scratch;
  auto raw = RawPayload(record, nullptr, scratch);
  if (!raw) return std::nullopt;
  return DecodePayload(*raw, Get<uint32_t>(record, 32));
}

// ---- Spool ----

// zstd's contexts (reused: creating one per record costs more than compressing it) and the buffer
// the raw payload is built in and decompressed into. A null context (out of memory at Open())
// means: store records uncompressed / decompress with one-off contexts.
struct Spool::Codec {
  Codec() : cctx(ZSTD_createCCtx()), dctx(ZSTD_createDCtx()) {
    if (cctx) {
      ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, kSpoolZstdLevel);
      ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);  // the record's CRC covers the frame
    }
  }
  ~Codec() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;
  ZSTD_CCtx* const cctx;
  ZSTD_DCtx* const dctx;
  std::string raw;
};

void Spool::EncodeRecord(uint64_t seq, int64_t now_ms, const std::vector<std::string>& segments) {
  std::string& raw = codec_->raw;
  size_t raw_len = 0;
  for (const auto& s : segments) raw_len += 4 + s.size();
  raw.resize(raw_len);
  size_t at = 0;
  for (const auto& s : segments) {
    PutAt<uint32_t>(raw, at, static_cast<uint32_t>(s.size()));
    std::memcpy(raw.data() + at + 4, s.data(), s.size());
    at += 4 + s.size();
  }
  uint16_t flags = 0;
  write_buf_.resize(kSpoolRecordHeaderBytes + ZSTD_compressBound(raw_len));
  size_t stored = codec_->cctx ? ZSTD_compress2(codec_->cctx, write_buf_.data() + kSpoolRecordHeaderBytes,
                                                write_buf_.size() - kSpoolRecordHeaderBytes, raw.data(), raw_len)
                               : raw_len;
  if (!ZSTD_isError(stored) && stored < raw_len) {
    flags = kFlagZstd;
  } else {  // incompressible (or a zstd error): stored as is
    stored = raw_len;
    std::memcpy(write_buf_.data() + kSpoolRecordHeaderBytes, raw.data(), raw_len);
  }
  write_buf_.resize(kSpoolRecordHeaderBytes + stored);
  PutHeader(write_buf_, seq, now_ms, static_cast<uint32_t>(segments.size()), flags, static_cast<uint32_t>(raw_len));
}

Spool::Spool(std::string dir, SpoolOptions options, SpoolEnv* env, int lock_fd)
    : dir_(std::move(dir)),
      options_(options),
      chunk_bytes_(options.EffectiveChunkBytes()),
      env_(env),
      lock_fd_(lock_fd),
      codec_(std::make_unique<Codec>()) {}

Spool::~Spool() { (void)Close(); }

std::string Spool::ChunkPath(uint64_t id) const {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu", static_cast<unsigned long long>(id));
  return dir_ + "/" + name + std::string(kChunkSuffix);
}

Result<std::unique_ptr<Spool>> Spool::Open(const std::string& dir, const SpoolOptions& options, SpoolEnv* env) {
  if (auto s = options.Validate(); !s) return s.error();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error::Io("spool: cannot create " + dir + ": " + ec.message());
  const std::string lock_path = dir + "/LOCK";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("open", lock_path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    return Error::Io("spool: " + dir + " is in use by another spool (" + std::strerror(e) + ")");
  }
  std::unique_ptr<Spool> spool(new Spool(dir, options, env, fd));
  MutexLock lock(spool->mu_);
  if (auto s = spool->Recover(); !s) {
    ::close(fd);
    spool->lock_fd_ = -1;
    spool->closed_ = true;
    return s.error();
  }
  return spool;
}

// The ack file holds whole 24-byte ack records (one before this version, a log of them since); the
// position is the highest one whose record is intact. A torn or damaged record is skipped (the
// position falls back to an earlier one: duplicates, never loss); none intact: replay everything.
Status Spool::LoadAck() {
  const std::string path = dir_ + "/ack";
  if (::access(path.c_str(), F_OK) != 0) return OkStatus();
  auto bytes = ReadRange(path, 0, kAckLogMaxBytes + kAckBytes);
  if (!bytes) return bytes.error();
  const std::string_view b = *bytes;
  std::optional<uint64_t> best;
  size_t damaged = b.size() % kAckBytes ? 1 : 0;
  for (size_t at = 0; at + kAckBytes <= b.size(); at += kAckBytes) {
    const std::string_view rec = b.substr(at, kAckBytes);
    const bool magic = std::memcmp(rec.data(), kAckMagic, 4) == 0;
    const uint32_t version = Get<uint32_t>(rec, 4);
    if (magic && version > kSpoolFormatVersion)
      return Error::Permanent("spool: " + dir_ + " was written by format version " + std::to_string(version) +
                              "; this xrayd reads up to version " + std::to_string(kSpoolFormatVersion));
    const uint64_t position = Get<uint64_t>(rec, 8);
    // A position at or above 2^62 is not one we could have written.
    if (!magic || version == 0 || Get<uint32_t>(rec, 16) != Crc(rec.substr(0, 16)) || position >= (1ull << 62)) {
      ++damaged;
      continue;
    }
    best = std::max(best.value_or(0), position);
  }
  if (!best) {
    // Everything still on disk is replayed: duplicates, never loss.
    XLOG_WARN("spool: {}/ack is damaged; replaying every spooled record", dir_);
    return OkStatus();
  }
  if (damaged > 0)
    XLOG_WARN("spool: {}/ack: {} damaged or torn entries skipped; replaying from position {}", dir_, damaged, *best);
  acked_ = *best;
  return OkStatus();
}

Status Spool::Recover() {
  std::vector<uint64_t> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 20 + kChunkSuffix.size() || !name.ends_with(kChunkSuffix)) continue;
    if (!std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) continue;
    ids.push_back(std::stoull(name.substr(0, 20)));
  }
  if (ec) return Error::Io("spool: cannot list " + dir_ + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  // Versions first, so a newer directory is refused before anything in it is touched.
  for (uint64_t id : ids) {
    auto head = ReadRange(ChunkPath(id), 0, kSpoolFileHeaderBytes);
    if (!head) return head.error();
    if (auto scan = ScanChunk(*head); scan.newer_version)
      return Error::Permanent("spool: " + ChunkPath(id) + " was written by format version " +
                              std::to_string(*scan.newer_version) + "; this xrayd reads up to version " +
                              std::to_string(kSpoolFormatVersion));
  }
  if (auto s = LoadAck(); !s) return s;
  ::unlink((dir_ + "/ack.tmp").c_str());  // a crash mid-rewrite; the ack file itself is intact
  uint64_t max_seq = 0;
  std::vector<Chunk> found;
  for (uint64_t id : ids) {
    if (auto s = RecoverChunk(id, found, max_seq); !s) return s;
    next_chunk_id_ = id + 1;
  }
  max_seq = std::max(max_seq, acked_);
  for (auto& c : found) {
    stats_.disk_bytes += c.bytes;
    chunks_.push_back(std::move(c));
  }
  next_sequence_ = max_seq + 1;
  consumed_ = last_returned_ = acked_;
  last_sync_ms_ = env_->NowUnixMs();
  return OkStatus();
}

// Scans one chunk: cuts a torn tail, counts corruption, indexes the records not yet acknowledged
// and deletes the file if none is left.
Status Spool::RecoverChunk(uint64_t id, std::vector<Chunk>& out, uint64_t& max_seq) {
  const std::string path = ChunkPath(id);
  auto bytes = ReadRange(path, 0, std::nullopt);
  if (!bytes) return bytes.error();
  const ChunkScan scan = ScanChunk(*bytes);
  Chunk chunk{id, scan.valid_end, 0, {}};
  uint64_t good = 0;
  for (const auto& r : scan.records) good += r.bytes;
  const uint64_t cut = bytes->size() - (scan.bad_file_header ? 0 : kSpoolFileHeaderBytes + good);
  if (scan.bad_file_header) {
    (scan.torn_tail ? stats_.torn_tail_cuts : stats_.corrupt_cuts) += bytes->empty() ? 0 : 1;
  } else {
    if (scan.corrupt_cut) ++stats_.corrupt_cuts;
    if (scan.torn_tail) ++stats_.torn_tail_cuts;
  }
  stats_.cut_bytes += cut;
  if (cut > 0) XLOG_WARN("spool: {}: cut {} bytes of damaged or torn records", path, cut);
  for (const auto& r : scan.records) {
    // Sequences only grow; one that does not (or is absurdly large) was not written by us.
    const bool in_order = r.sequence > max_seq && r.sequence < (1ull << 62);
    if (in_order) max_seq = r.sequence;
    if (in_order && r.sequence <= acked_) continue;  // delivered in an earlier run
    ++stats_.recovered_records;
    stats_.recovered_segments += r.segments;
    if (!r.payload_ok || !in_order) {
      ++stats_.corrupt_records;
      stats_.corrupt_segments += r.segments;
      continue;
    }
    ++stats_.pending_records;
    stats_.pending_segments += r.segments;
    chunk.records.push_back({r.sequence, r.offset, r.bytes, r.segments, r.append_ms, false});
    ++chunk.live;
  }
  if (chunk.records.empty()) {
    if (::unlink(path.c_str()) != 0) return IoError("unlink", path, errno);
    return OkStatus();
  }
  if (scan.valid_end < bytes->size() && ::truncate(path.c_str(), static_cast<off_t>(scan.valid_end)) != 0)
    return IoError("truncate", path, errno);
  out.push_back(std::move(chunk));
  return OkStatus();
}

Status Spool::StartChunk() {
  const uint64_t id = next_chunk_id_++;
  auto file = env_->OpenAppend(ChunkPath(id));
  if (!file) return file.error();
  const std::string header = FileHeader();
  if (auto s = (*file)->Append(header); !s) {
    ::unlink(ChunkPath(id).c_str());
    return s;
  }
  writer_ = std::move(*file);
  chunks_.push_back(Chunk{id, header.size(), 0, {}});
  stats_.disk_bytes += header.size();
  dirty_ = true;
  if (options_.fsync == FsyncPolicy::kAlways) return SyncDir(dir_);
  return OkStatus();
}

void Spool::Settle(Chunk& c, Record& r, uint64_t& records, uint64_t& segments) {
  if (r.gone) return;
  r.gone = true;
  --c.live;
  ++records;
  segments += r.segments;
  --stats_.pending_records;
  stats_.pending_segments -= r.segments;
}

void Spool::DropChunk(size_t index, bool expired) {
  Chunk& c = chunks_[index];
  for (auto& r : c.records)
    Settle(c, r, expired ? stats_.expired_records : stats_.dropped_full_records,
           expired ? stats_.expired_segments : stats_.dropped_full_segments);
  if (index + 1 == chunks_.size()) writer_.reset();
  if (read_fd_ >= 0 && read_fd_chunk_ == c.id) CloseReader();
  const std::string path = ChunkPath(c.id);
  if (::unlink(path.c_str()) != 0) XLOG_WARN("spool: cannot delete {}: {}", path, std::strerror(errno));
  stats_.disk_bytes -= c.bytes;
  chunks_.erase(chunks_.begin() + static_cast<ptrdiff_t>(index));
}

// A chunk holding a record handed out by Read() and not yet acknowledged is never dropped for size
// or age: the consumer settles (and counts) that record itself, so dropping it too would count its
// segments twice (delivered and dropped). The bound may thus be exceeded by what is in flight.
bool Spool::HoldsReadRecords(const Chunk& c) const {
  for (const auto& r : c.records) {
    if (r.sequence > last_returned_) return false;
    if (r.sequence > acked_ && !r.gone) return true;
  }
  return false;
}

void Spool::DropExpiredChunks() {
  if (options_.max_age.count() == 0) return;
  const int64_t cutoff = env_->NowUnixMs() - options_.max_age.count();
  while (!chunks_.empty() && !(writer_ && chunks_.size() == 1)) {
    const Chunk& c = chunks_.front();
    if (!c.records.empty() && c.records.back().append_ms >= cutoff) break;
    if (HoldsReadRecords(c)) break;  // expires once acknowledged; Read() skips what is left unread
    DropChunk(0, true);
  }
}

// Deletes every chunk whose records are all settled. The open chunk is kept (a consumer keeping
// pace would otherwise create and delete a file per batch) unless the last write failed: then its
// space is given back, and the next Append starts a new chunk.
void Spool::DeleteAckedChunks() {
  for (size_t i = 0; i < chunks_.size();) {
    const bool keep_open = writer_ && i + 1 == chunks_.size() && !write_failed_;
    if (keep_open || chunks_[i].live != 0 || chunks_[i].records.empty()) {
      ++i;
      continue;
    }
    DropChunk(i, false);  // counts nothing: every record is settled
  }
}

// Seals a full chunk, then drops the oldest chunks (counted) until the record fits under max_bytes.
Status Spool::MakeRoom(uint64_t record_bytes) {
  if (writer_ && !chunks_.back().records.empty() && chunks_.back().bytes + record_bytes > chunk_bytes_) {
    if (options_.fsync != FsyncPolicy::kNever) {
      if (auto s = MaybeSync(true); !s) return s;
    }
    writer_.reset();  // the chunk is full: it stays, read-only
  }
  size_t first = 0;  // chunks before it hold records in flight (HoldsReadRecords): they stay
  while (first < chunks_.size()) {
    const uint64_t needed = record_bytes + (writer_ ? 0 : kSpoolFileHeaderBytes);
    if (stats_.disk_bytes + needed <= options_.max_bytes) break;
    if (HoldsReadRecords(chunks_[first])) {
      ++first;
      continue;
    }
    DropChunk(first, false);  // the oldest unread data; closes the writer if that was the open chunk
  }
  return writer_ ? OkStatus() : StartChunk();
}

Status Spool::MaybeSync(bool force) {
  const int64_t now = env_->NowUnixMs();
  const bool due = options_.fsync == FsyncPolicy::kAlways ||
                   (options_.fsync == FsyncPolicy::kInterval && now - last_sync_ms_ >= options_.fsync_interval.count());
  if ((!dirty_ && !ack_dirty_) || !(force || due)) return OkStatus();
  if (writer_) {
    if (auto s = writer_->Sync(); !s) return s;
    ++stats_.fsyncs;
  }
  if (ack_dirty_ && ack_writer_) {
    if (auto s = ack_writer_->Sync(); !s) return s;
    ++stats_.fsyncs;
  }
  dirty_ = ack_dirty_ = false;
  last_sync_ms_ = now;
  return OkStatus();
}

// The record is written either way; a failed fsync is logged and counted, not returned, so that
// Append()'s result says only whether the batch is in the spool.
void Spool::SyncOrCount() {
  if (auto s = MaybeSync(false); !s) {
    ++stats_.fsync_errors;
    XLOG_WARN("{}", s.error().message);
  }
}

Result<uint64_t> Spool::Append(const std::vector<std::string>& segments) {
  MutexLock lock(mu_);
  if (closed_) return Error::Io("spool: " + dir_ + " is closed");
  if (segments.empty()) return Error::InvalidArgument("spool: empty batch");
  uint64_t payload = 0;
  for (const auto& s : segments) payload += 4 + s.size();
  if (payload > kMaxRecordBytes)
    return Error::InvalidArgument("spool: a batch of " + std::to_string(payload) + " bytes exceeds the record limit");
  const uint64_t seq = next_sequence_;
  const int64_t now = env_->NowUnixMs();
  EncodeRecord(seq, now, segments);
  const uint64_t bytes = write_buf_.size();  // on disk: compressed
  if (bytes + kSpoolFileHeaderBytes > options_.max_bytes)
    return Error::InvalidArgument("spool: a batch of " + std::to_string(bytes) + " bytes exceeds the spool's bounds");
  DropExpiredChunks();
  if (auto s = MakeRoom(bytes); !s) return s.error();
  Chunk& chunk = chunks_.back();
  if (auto s = writer_->Append(write_buf_); !s) {
    // Cut back to the last whole record; if even that fails, abandon the chunk (Open() cuts it).
    if (!writer_->Truncate(chunk.bytes)) writer_.reset();
    write_failed_ = true;
    return s.error();
  }
  write_failed_ = false;
  ++next_sequence_;
  chunk.records.push_back({seq, chunk.bytes, static_cast<uint32_t>(bytes), static_cast<uint32_t>(segments.size()), now, false});
  ++chunk.live;
  chunk.bytes += bytes;
  stats_.disk_bytes += bytes;
  stats_.appended_disk_bytes += bytes;
  stats_.appended_raw_bytes += payload;
  ++stats_.appended_records;
  stats_.appended_segments += segments.size();
  ++stats_.pending_records;
  stats_.pending_segments += segments.size();
  dirty_ = true;
  SyncOrCount();
  return seq;
}

// The first record after consumed_ that is not settled, and its chunk; nullptr when caught up.
Spool::Record* Spool::FindUnread(Chunk*& chunk) {
  for (auto& c : chunks_) {
    if (c.records.empty() || c.records.back().sequence <= consumed_) continue;
    auto it = std::upper_bound(c.records.begin(), c.records.end(), consumed_,
                               [](uint64_t s, const Record& r) { return s < r.sequence; });
    for (; it != c.records.end(); ++it) {
      if (!it->gone) {
        chunk = &c;
        return &*it;
      }
      consumed_ = it->sequence;  // settled while read before a Rewind(): skip without recounting
    }
  }
  return nullptr;
}

Result<std::optional<SpoolRecord>> Spool::Read() {
  MutexLock lock(mu_);
  if (closed_) return Error::Io("spool: " + dir_ + " is closed");
  DropExpiredChunks();
  const int64_t cutoff = options_.max_age.count() ? env_->NowUnixMs() - options_.max_age.count() : INT64_MIN;
  Chunk* c = nullptr;
  while (Record* r = FindUnread(c)) {
    consumed_ = r->sequence;
    if (r->append_ms < cutoff) {
      Settle(*c, *r, stats_.expired_records, stats_.expired_segments);
    } else {
      auto bytes = ReadRecordBytes(*c, *r);
      if (!bytes) return bytes.error();
      const std::string_view b = *bytes;
      std::optional<std::vector<std::string>> segments;
      if (auto raw = RawPayload(b, codec_->dctx, codec_->raw); raw && b.size() == r->bytes)
        segments = DecodePayload(*raw, r->segments);
      if (segments) {
        last_returned_ = r->sequence;
        return std::optional<SpoolRecord>(SpoolRecord{r->sequence, std::move(*segments)});
      }
      XLOG_WARN("spool: record {} in {} failed its checksum or decompression since it was written; skipped", r->sequence, ChunkPath(c->id));
      Settle(*c, *r, stats_.corrupt_records, stats_.corrupt_segments);
    }
    if (acked_ >= last_returned_) acked_ = consumed_;  // nothing outstanding: the skip is settled
  }
  DeleteAckedChunks();
  return std::optional<SpoolRecord>();
}

Status Spool::Ack(uint64_t sequence) {
  MutexLock lock(mu_);
  if (closed_) return Error::Io("spool: " + dir_ + " is closed");
  uint64_t upto = std::min(sequence, last_returned_);
  if (upto == last_returned_) upto = consumed_;  // and the records skipped after it
  if (upto <= acked_) return OkStatus();
  for (auto& c : chunks_) {
    if (c.records.empty() || c.records.back().sequence <= acked_) continue;
    auto it = std::upper_bound(c.records.begin(), c.records.end(), acked_,
                               [](uint64_t s, const Record& r) { return s < r.sequence; });
    for (; it != c.records.end() && it->sequence <= upto; ++it)
      Settle(c, *it, stats_.delivered_records, stats_.delivered_segments);
  }
  acked_ = upto;
  // Chunks go before the ack is written: that frees space on a full disk, and a crash in between
  // only replays records of chunks still present (duplicates, never loss).
  DeleteAckedChunks();
  if (auto s = WriteAck(); !s) return s;
  SyncOrCount();
  return OkStatus();
}

// Appends the position to the ack log (fsync'ed under kAlways); starts a fresh log (ack.tmp, then
// rename) when there is none open yet or it is full. A failed append closes the log: its torn entry
// is skipped at the next Open(), and the next Ack() starts a fresh one.
Status Spool::WriteAck() {
  const std::string rec = EncodeAck(acked_);
  if (!ack_writer_ || ack_log_bytes_ + kAckBytes > kAckLogMaxBytes) return RewriteAck(rec);
  if (auto s = ack_writer_->Append(rec); !s) {
    ack_writer_.reset();
    return s;
  }
  ack_log_bytes_ += kAckBytes;
  ack_dirty_ = true;
  if (options_.fsync == FsyncPolicy::kAlways) {
    if (auto s = ack_writer_->Sync(); !s) return s;
    ++stats_.fsyncs;
    ack_dirty_ = false;
  }
  return OkStatus();
}

Status Spool::RewriteAck(const std::string& rec) {
  ack_writer_.reset();
  const std::string tmp = dir_ + "/ack.tmp", path = dir_ + "/ack";
  ::unlink(tmp.c_str());
  auto file = env_->OpenAppend(tmp);
  if (!file) return file.error();
  if (auto s = (*file)->Append(rec); !s) return s;
  if (options_.fsync == FsyncPolicy::kAlways) {
    if (auto s = (*file)->Sync(); !s) return s;
    ++stats_.fsyncs;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return IoError("rename", tmp, errno);
  ack_writer_ = std::move(*file);  // the descriptor now names DIR/ack: later entries append to it
  ack_log_bytes_ = kAckBytes;
  ack_dirty_ = options_.fsync != FsyncPolicy::kAlways;
  if (options_.fsync == FsyncPolicy::kAlways) return SyncDir(dir_);
  return OkStatus();
}

Result<std::string_view> Spool::ReadRecordBytes(const Chunk& c, const Record& r) {
  if (read_fd_ < 0 || read_fd_chunk_ != c.id) {
    CloseReader();
    const std::string path = ChunkPath(c.id);
    read_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (read_fd_ < 0) return IoError("open", path, errno);
    read_fd_chunk_ = c.id;
  }
  read_buf_.resize(r.bytes);
  size_t got = 0;
  while (got < r.bytes) {
    const ssize_t n = ::pread(read_fd_, read_buf_.data() + got, r.bytes - got, static_cast<off_t>(r.offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", ChunkPath(c.id), errno);
    if (n == 0) break;  // the file is shorter than the index says: the record fails its check
    got += static_cast<size_t>(n);
  }
  return std::string_view(read_buf_).substr(0, got);
}

void Spool::CloseReader() {
  if (read_fd_ >= 0) ::close(read_fd_);
  read_fd_ = -1;
}

void Spool::Rewind() {
  MutexLock lock(mu_);
  consumed_ = last_returned_ = acked_;
}

Status Spool::Sync() {
  MutexLock lock(mu_);
  if (closed_) return Error::Io("spool: " + dir_ + " is closed");
  if (auto s = MaybeSync(true); !s) return s;
  return SyncDir(dir_);
}

Status Spool::Close() {
  MutexLock lock(mu_);
  if (closed_) return OkStatus();
  closed_ = true;
  Status s = options_.fsync == FsyncPolicy::kNever ? OkStatus() : MaybeSync(true);
  writer_.reset();
  ack_writer_.reset();
  CloseReader();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // closing the descriptor releases the flock
  lock_fd_ = -1;
  return s;
}

SpoolStats Spool::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

int64_t Spool::OldestPendingMs() const {
  MutexLock lock(mu_);
  // Settled records leave a chunk only with the whole chunk: skip them.
  for (const Chunk& c : chunks_) {
    if (c.live == 0) continue;
    for (const Record& r : c.records)
      if (!r.gone) return r.append_ms;
  }
  return 0;
}

}  // namespace xrayd::pipeline
