// Spool: one exporter's durable, append-only on-disk log of segment batches.
//
// When an exporter's queue is full or its back end is down, its batches go here; they are read back
// in order when the back end recovers (and first thing after a restart), and acknowledged once
// delivered. The spool is bounded by size (the oldest data is dropped first, counted) and by age
// (older records are dropped, counted); a chunk holding records Read() but not yet Ack()ed is
// never dropped (its records are the consumer's to settle), so the bound may be exceeded by them.
// One directory per exporter; one Spool per directory (a LOCK file held with flock() refuses a
// second opener, in this process or another).
//
// Owns its chunk files, the ack file and the descriptors on them (LOCK, the chunk being appended,
// the chunk being read, the ack file); starts no thread. Close() (or the destructor) syncs, closes
// them and releases the LOCK.
//
// Thread safety: every public method may be called from any thread; one mutex serializes them,
// including their file I/O (an Append waits for a Read's pread and vice versa; records are a batch,
// tens of KB). Read()/Ack() assume ONE consumer: records are handed out once each, in order.
//
// ## Design constraints
// 1. Files are fixed-size chunks, so dropping the oldest data is deleting a file and never a rewrite.
// 2. Every record carries two CRC32s (zlib's polynomial): one over its header, one over its payload
//    as stored on disk (the zstd frame when compressed), so damage is caught before decompression.
//    A bad payload CRC with a good header skips exactly that record (its length is trusted); a bad
//    header cuts the rest of its chunk (the next record's position is unknown). Nothing read from
//    disk is trusted before its CRC matches, and lengths are checked against the file size first.
// 3. The writer only appends; a failed append (disk full) truncates the chunk back to its last whole
//    record, so a torn record is never followed by good ones in the same chunk.
// 4. The acknowledged position is a sequence number in its own small file, a log of fixed-size
//    checksummed entries: each Ack() appends one (one small write; no rename, no directory update),
//    the highest intact entry is the position, and when the log reaches 64 KiB the next Ack()
//    replaces it atomically with a fresh one (write ack.tmp, rename). Chunks wholly at or below the
//    position are deleted.
// 5. A format version newer than this code's is refused at Open() with a clear error; the caller
//    then runs from memory. The directory is never modified in that case.
//
// ## On-disk format (version 2; all integers little-endian)
//
//   DIR/LOCK                    empty; flock()ed while open
//   DIR/ack                     24-byte entries: "XRAK" | u32 version | u64 acked_seq | u32 crc32(bytes 0..16) | u32 0
//                               (unchanged since version 1, so entries still say 1; a spool written
//                               before the log held exactly one; a reader that knows only that form
//                               reads the first entry: an older position)
//   DIR/<20-digit id>.chunk     chunk files, id increasing; each starts with a 16-byte file header:
//                                 "XRSPOOL1" | u32 version | u32 crc32(bytes 0..12)
//                               then records back to back:
//
//   offset size field
//        0    4 header_crc    crc32 of bytes 4..40 of this header
//        4    4 payload_crc   crc32 of the payload AS STORED (compressed or not)
//        8    4 payload_len   stored bytes after the 40-byte header (at most kMaxRecordBytes)
//       12    2 version       record format version (1 or 2)
//       14    2 flags         bit 0: the payload is one zstd frame (version 2 only); other bits 0
//       16    8 sequence      1, 2, 3, ... across chunks and restarts (gaps only where records were lost)
//       24    8 append_ms     wall-clock time of the append, ms since the Unix epoch (for max age)
//       32    4 segment_count
//       36    4 raw_len       version 2: the payload's size before compression (at most
//                             kMaxRecordBytes; = payload_len when not compressed); version 1: 0
//       40    n payload       segment_count x (u32 length | that many bytes of segment document),
//                             compressed as one zstd frame (level kSpoolZstdLevel, content size in
//                             the frame header) when flag bit 0 is set; stored as is when
//                             compression would not make it smaller
//
// Versions: this code writes version-2 chunks and records, and reads version 1 (uncompressed, from
// xrayd before compression) and 2, so a spool left by the previous release is replayed; a chunk or
// ack entry of a higher version is refused (see 5). A compressed payload is checked in this order,
// each failure a counted corrupt record (skipped, its length is trusted), never a crash: CRC over
// the stored bytes; raw_len at most kMaxRecordBytes and equal to the frame's declared content size
// (so a record never makes the reader allocate more than kMaxRecordBytes: no zip bombs); the frame
// decompresses to exactly raw_len bytes; the segment framing then covers them exactly. The scan at
// Open() checks the CRC and the declared sizes only; Read() decompresses.
// The size bound (max_bytes) counts bytes on disk, i.e. compressed.
//
// ## Durability (FsyncPolicy) and duplicates
// Every Append() write()s its record before returning, so a process crash (SIGKILL) loses nothing
// that Append() accepted. Power loss can lose what was not yet fsync()ed:
//   kAlways    fsync the chunk before Append() returns, and the ack file on each Ack() (the
//              directory too when a chunk or a fresh ack file is created). Nothing acknowledged is
//              lost on power loss; costs one fsync per batch appended and one per Ack (see bench/).
//   kInterval  fsync the chunk and the ack file at most every fsync_interval, checked on
//              Append/Ack, and on Sync()/Close(). Power loss may lose up to that interval's appends
//              (default 1 s).
//   kNever     leave it to the kernel's writeback (about 30 s on Linux).
// A torn tail found at Open() (a crash mid-write) is cut and counted (torn_tail_cuts, cut_bytes).
// Duplicates: the ack file is rewritten on every Ack(), so after a process crash the records replayed
// twice are exactly those Read() but not yet Ack()ed (the consumer's batches in flight). Under
// kInterval/kNever the ack file is not fsync'ed at each Ack: after power loss it may be older (by up
// to the interval, or the file system's commit interval, 5 s on ext4, under kNever), replaying what
// was acknowledged since; a torn entry is skipped (an older position); with no intact entry every
// record still on disk is replayed (logged). Duplicates, never loss.
//
// ## Accounting (SpoolStats)
//   recovered + appended = delivered + pending + dropped_full + expired + corrupt   (records and segments)
// where recovered counts records with a valid header found unacknowledged at Open(). Bytes cut for a
// torn tail or a bad header are counted in cut_bytes (their records are unknown).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/thread_annotations.h"

namespace xrayd::pipeline {

inline constexpr uint16_t kSpoolFormatVersion = 2;  // written; 1 and 2 are read
inline constexpr uint32_t kSpoolAckVersion = 1;     // the ack entry's format is unchanged since 1
inline constexpr int kSpoolZstdLevel = 1;           // ~7.5x on segment JSON at ~300 MB/s (bench/README.md)
inline constexpr size_t kSpoolFileHeaderBytes = 16;
inline constexpr size_t kSpoolRecordHeaderBytes = 40;
inline constexpr uint32_t kMaxRecordBytes = 64u << 20;  // a record above this is corrupt by definition

enum class FsyncPolicy { kAlways, kInterval, kNever };

struct SpoolOptions {
  uint64_t max_bytes = 1ull << 30;  // bound on the chunk files' total size
  uint64_t chunk_bytes = 0;         // target chunk size; 0: max_bytes / 8, within [4 KiB, 64 MiB]
  std::chrono::milliseconds max_age{0};  // 0: no age limit
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  std::chrono::milliseconds fsync_interval{1000};

  // Every problem, joined into one message.
  Status Validate() const;
  uint64_t EffectiveChunkBytes() const;
};

// An open file the spool appends to. Not thread-safe (the Spool serializes its calls).
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of `data` or returns an error; after an error the file may hold part of it.
  virtual Status Append(std::string_view data) = 0;
  virtual Status Sync() = 0;
  virtual Status Truncate(uint64_t size) = 0;
};

// The spool's seams: wall-clock time (max age must hold across restarts, so not steady_clock) and the
// files it writes, so tests can fake a clock and a full or failing disk. Must outlive the Spool.
class SpoolEnv {
 public:
  virtual ~SpoolEnv() = default;
  virtual int64_t NowUnixMs() = 0;
  // Opens `path` for appending, creating it if needed.
  virtual Result<std::unique_ptr<WritableFile>> OpenAppend(const std::string& path) = 0;
  // The real clock and POSIX files.
  static SpoolEnv* Default();
};

struct SpoolRecord {
  uint64_t sequence = 0;
  std::vector<std::string> segments;
};

struct SpoolStats {
  uint64_t recovered_records = 0, recovered_segments = 0;  // unacked at Open()
  uint64_t appended_records = 0, appended_segments = 0;
  uint64_t delivered_records = 0, delivered_segments = 0;  // Ack()ed
  uint64_t dropped_full_records = 0, dropped_full_segments = 0;  // oldest dropped for max_bytes
  uint64_t expired_records = 0, expired_segments = 0;            // older than max_age
  uint64_t corrupt_records = 0, corrupt_segments = 0;            // payload CRC or framing failed
  uint64_t torn_tail_cuts = 0;  // chunks whose tail was an incomplete record (a crash mid-write)
  uint64_t corrupt_cuts = 0;    // chunks cut at a record whose header failed its CRC
  uint64_t cut_bytes = 0;       // bytes removed by both kinds of cut
  uint64_t pending_records = 0, pending_segments = 0;  // on disk, not yet acknowledged
  uint64_t disk_bytes = 0;      // chunk files' total size
  uint64_t appended_raw_bytes = 0;   // appended payloads before compression
  uint64_t appended_disk_bytes = 0;  // appended records as written (headers + stored payloads)
  uint64_t fsyncs = 0;
  uint64_t fsync_errors = 0;    // logged; the data was written but may not be durable
};

// What a scan of one chunk's bytes finds; pure, so the fuzz target can drive it directly.
struct ScannedRecord {
  uint64_t offset = 0;  // of the record header within the chunk
  uint32_t bytes = 0;   // header + payload
  uint64_t sequence = 0;
  int64_t append_ms = 0;
  uint32_t segments = 0;
  bool compressed = false;  // the payload is a zstd frame (decompressed by Read())
  bool payload_ok = false;  // false: header fine, payload CRC, declared sizes or framing bad (skip it)
};
struct ChunkScan {
  std::vector<ScannedRecord> records;
  uint64_t valid_end = 0;     // bytes up to the end of the last record whose header is good
  bool torn_tail = false;     // the bytes after valid_end are an incomplete record
  bool corrupt_cut = false;   // the bytes after valid_end start with a bad header
  std::optional<uint32_t> newer_version;  // the file header names a version above ours
  bool bad_file_header = false;
};
ChunkScan ScanChunk(std::string_view bytes);

// Decodes a record's (uncompressed) payload into segment documents; nullopt if the framing is wrong.
std::optional<std::vector<std::string>> DecodePayload(std::string_view payload, uint32_t segment_count);

// Checks one whole record (header CRC, version, flags, payload CRC, declared sizes) and decodes its
// segments, decompressing a compressed payload into at most kMaxRecordBytes; nullopt if anything
// is wrong. Pure (the fuzz target drives it); Read() does the same with contexts it reuses.
std::optional<std::vector<std::string>> DecodeRecord(std::string_view record);

class Spool {
 public:
  // Opens (creating if needed) the spool in `dir`: takes the LOCK, checks versions, scans every
  // chunk, cuts torn tails and bad headers (counted), and positions the reader after the
  // acknowledged sequence. Errors: kIo (unwritable or locked directory), kPermanent (written by a
  // newer format version; nothing was changed), kInvalidArgument (options).
  static Result<std::unique_ptr<Spool>> Open(const std::string& dir, const SpoolOptions& options,
                                             SpoolEnv* env = SpoolEnv::Default());
  ~Spool();  // Close()s
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends one batch as one record and returns its sequence number. Drops the oldest chunks first
  // when max_bytes would be exceeded (counted). kIo on a write failure (disk full): the chunk is cut
  // back to its last whole record and the batch is NOT in the spool. kInvalidArgument for an empty
  // batch, one above kMaxRecordBytes before compression, or one whose record (compressed) cannot fit
  // in max_bytes.
  Result<uint64_t> Append(const std::vector<std::string>& segments) XRAYD_EXCLUDES(mu_);

  // The next record not yet read, in sequence order; nullopt when caught up. Records older than
  // max_age and records whose payload fails its CRC are skipped and counted. kIo if a chunk cannot
  // be read.
  Result<std::optional<SpoolRecord>> Read() XRAYD_EXCLUDES(mu_);

  // Acknowledges every record up to `sequence` (delivered: counted, and never replayed after a
  // restart), deletes chunks wholly settled and persists the position. kIo if the position could
  // not be persisted: it still holds in this process; a restart would replay those records.
  Status Ack(uint64_t sequence) XRAYD_EXCLUDES(mu_);

  // Sends every read-but-unacknowledged record to Read() again (the consumer gave up on them).
  void Rewind() XRAYD_EXCLUDES(mu_);

  // fsyncs the open chunk, the ack file and the directory now, whatever the policy.
  Status Sync() XRAYD_EXCLUDES(mu_);

  // Syncs, releases the LOCK; later calls fail with kIo. Idempotent.
  Status Close() XRAYD_EXCLUDES(mu_);

  SpoolStats stats() const XRAYD_EXCLUDES(mu_);
  // Wall-clock append time (ms since the Unix epoch) of the oldest record not yet settled
  // (acknowledged, dropped, expired or corrupt); 0 when there is none. Walks the settled records
  // at the front of the oldest live chunk: for a scrape, not for every append.
  int64_t OldestPendingMs() const XRAYD_EXCLUDES(mu_);
  const std::string& dir() const { return dir_; }

 private:
  struct Record {
    uint64_t sequence;
    uint64_t offset;
    uint32_t bytes;
    uint32_t segments;
    int64_t append_ms;
    bool gone;  // settled: delivered, dropped, expired or corrupt (counted once, when it became so)
  };
  struct Chunk {
    uint64_t id;
    uint64_t bytes;  // file size (up to the last whole record)
    uint64_t live;   // records not yet settled
    std::deque<Record> records;
  };

  Spool(std::string dir, SpoolOptions options, SpoolEnv* env, int lock_fd);
  Status Recover() XRAYD_REQUIRES(mu_);
  Status RecoverChunk(uint64_t id, std::vector<Chunk>& out, uint64_t& max_seq) XRAYD_REQUIRES(mu_);
  Status LoadAck() XRAYD_REQUIRES(mu_);
  Status StartChunk() XRAYD_REQUIRES(mu_);
  Status MakeRoom(uint64_t record_bytes) XRAYD_REQUIRES(mu_);
  void DropChunk(size_t index, bool expired) XRAYD_REQUIRES(mu_);
  void DropExpiredChunks() XRAYD_REQUIRES(mu_);
  bool HoldsReadRecords(const Chunk& c) const XRAYD_REQUIRES(mu_);
  void DeleteAckedChunks() XRAYD_REQUIRES(mu_);
  // Encodes the record into write_buf_: the payload built in codec_'s buffer, compressed when that
  // makes it smaller.
  void EncodeRecord(uint64_t seq, int64_t now_ms, const std::vector<std::string>& segments) XRAYD_REQUIRES(mu_);
  Status WriteAck() XRAYD_REQUIRES(mu_);
  Status RewriteAck(const std::string& rec) XRAYD_REQUIRES(mu_);
  // The record's bytes, read into read_buf_ through read_fd_ (kept open on the chunk being read);
  // shorter than the record if the file is.
  Result<std::string_view> ReadRecordBytes(const Chunk& c, const Record& r) XRAYD_REQUIRES(mu_);
  void CloseReader() XRAYD_REQUIRES(mu_);
  Status MaybeSync(bool force) XRAYD_REQUIRES(mu_);
  void SyncOrCount() XRAYD_REQUIRES(mu_);
  Record* FindUnread(Chunk*& chunk) XRAYD_REQUIRES(mu_);
  void Settle(Chunk& c, Record& r, uint64_t& records, uint64_t& segments) XRAYD_REQUIRES(mu_);
  std::string ChunkPath(uint64_t id) const;

  // Constant after construction.
  const std::string dir_;
  const SpoolOptions options_;
  const uint64_t chunk_bytes_;
  SpoolEnv* const env_;

  mutable Mutex mu_;
  // Guarded by mu_.
  int lock_fd_ XRAYD_GUARDED_BY(mu_);
  std::deque<Chunk> chunks_ XRAYD_GUARDED_BY(mu_);  // oldest first; the last is the one written
  std::unique_ptr<WritableFile> writer_ XRAYD_GUARDED_BY(mu_);  // of chunks_.back(); null: none open
  std::unique_ptr<WritableFile> ack_writer_ XRAYD_GUARDED_BY(mu_);  // DIR/ack; null: rewrite it at the next Ack
  uint64_t ack_log_bytes_ XRAYD_GUARDED_BY(mu_) = 0;
  bool ack_dirty_ XRAYD_GUARDED_BY(mu_) = false;  // ack entries appended since the last fsync
  int read_fd_ XRAYD_GUARDED_BY(mu_) = -1;        // the chunk Read() last read from; -1: none
  uint64_t read_fd_chunk_ XRAYD_GUARDED_BY(mu_) = 0;
  std::string write_buf_ XRAYD_GUARDED_BY(mu_);   // the record being appended (capacity reused)
  std::string read_buf_ XRAYD_GUARDED_BY(mu_);    // the record being read (capacity reused)
  struct Codec;                                   // zstd contexts and the raw payload buffer
  std::unique_ptr<Codec> codec_ XRAYD_GUARDED_BY(mu_);
  uint64_t next_chunk_id_ XRAYD_GUARDED_BY(mu_) = 1;
  uint64_t next_sequence_ XRAYD_GUARDED_BY(mu_) = 1;
  uint64_t acked_ XRAYD_GUARDED_BY(mu_) = 0;          // every record <= acked_ is delivered or gone
  uint64_t consumed_ XRAYD_GUARDED_BY(mu_) = 0;       // every record <= consumed_ was read or skipped
  uint64_t last_returned_ XRAYD_GUARDED_BY(mu_) = 0;  // the last sequence Read() handed out
  bool dirty_ XRAYD_GUARDED_BY(mu_) = false;          // writes since the last fsync
  int64_t last_sync_ms_ XRAYD_GUARDED_BY(mu_) = 0;
  bool write_failed_ XRAYD_GUARDED_BY(mu_) = false;    // the last Append's write failed (disk full?)
  bool closed_ XRAYD_GUARDED_BY(mu_) = false;
  SpoolStats stats_ XRAYD_GUARDED_BY(mu_);
};

}  // namespace xrayd::pipeline
