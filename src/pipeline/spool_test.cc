#include "pipeline/spool.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>
#include <zlib.h>
#include <zstd.h>
#include <cstring>
#include <random>

namespace xrayd::pipeline {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "spool_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Wall-clock time the test controls (max age).
class FakeClockEnv : public SpoolEnv {
 public:
  int64_t NowUnixMs() override { return now_ms; }
  Result<std::unique_ptr<WritableFile>> OpenAppend(const std::string& path) override {
    return SpoolEnv::Default()->OpenAppend(path);
  }
  int64_t now_ms = 1'700'000'000'000;
};

// A disk holding `budget` more bytes: a write beyond it lands partly, then fails with ENOSPC, as a
// full file system does.
class FullDiskEnv : public FakeClockEnv {
 public:
  class File : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> f, FullDiskEnv* env) : f_(std::move(f)), env_(env) {}
    Status Append(std::string_view d) override {
      if (d.size() <= env_->budget) {
        env_->budget -= d.size();
        return f_->Append(d);
      }
      (void)f_->Append(d.substr(0, env_->budget));  // the part that fit
      env_->budget = 0;
      ++env_->failures;
      return Error::Io("write: No space left on device");
    }
    Status Sync() override { return f_->Sync(); }
    Status Truncate(uint64_t size) override { return f_->Truncate(size); }

   private:
    std::unique_ptr<WritableFile> f_;
    FullDiskEnv* env_;
  };
  Result<std::unique_ptr<WritableFile>> OpenAppend(const std::string& path) override {
    auto f = FakeClockEnv::OpenAppend(path);
    if (!f) return f.error();
    return std::unique_ptr<WritableFile>(new File(std::move(*f), this));
  }
  uint64_t budget = UINT64_MAX;
  int failures = 0;
};

std::vector<std::string> Batch(int n, int i, size_t pad = 0) {
  std::vector<std::string> out;
  for (int k = 0; k < n; ++k)
    out.push_back("{\"trace_id\":\"1-5f000000-" + std::to_string(i) + "\",\"k\":" + std::to_string(k) + ",\"pad\":\"" +
                  std::string(pad, 'x') + "\"}");
  return out;
}

// Like Batch, padded with bytes zstd cannot shrink, for tests that need records of a known size on
// disk (size bound, chunk count).
std::vector<std::string> NoisyBatch(int n, int i, size_t pad) {
  std::mt19937 rng(static_cast<uint32_t>(i));
  auto out = Batch(n, i);
  for (auto& s : out)
    for (size_t k = 0; k < pad; ++k) s.push_back(static_cast<char>(rng()));
  return out;
}

SpoolOptions Small() {
  SpoolOptions o;
  o.max_bytes = 1 << 20;
  o.chunk_bytes = 64 << 10;
  o.fsync = FsyncPolicy::kNever;
  return o;
}

std::unique_ptr<Spool> MustOpen(const std::string& dir, const SpoolOptions& o, SpoolEnv* env = SpoolEnv::Default()) {
  auto s = Spool::Open(dir, o, env);
  EXPECT_TRUE(s.ok()) << s.error().message;
  return s.ok() ? std::move(*s) : nullptr;
}

std::vector<SpoolRecord> ReadAll(Spool& s) {
  std::vector<SpoolRecord> out;
  for (;;) {
    auto r = s.Read();
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok() || !r->has_value()) return out;
    out.push_back(std::move(**r));
  }
}

// recovered + appended = delivered + pending + dropped_full + expired + corrupt, for records and segments.
void ExpectBalanced(const SpoolStats& s) {
  EXPECT_EQ(s.recovered_records + s.appended_records, s.delivered_records + s.pending_records +
                                                          s.dropped_full_records + s.expired_records + s.corrupt_records);
  EXPECT_EQ(s.recovered_segments + s.appended_segments, s.delivered_segments + s.pending_segments +
                                                            s.dropped_full_segments + s.expired_segments +
                                                            s.corrupt_segments);
}

std::vector<std::string> Chunks(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".chunk") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST(Spool, AppendReadAckRoundTrip) {
  TempDir t;
  auto s = MustOpen(t.path(), Small());
  ASSERT_TRUE(s);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(*s->Append(Batch(i + 1, i)), uint64_t(i + 1));
  auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i].sequence, uint64_t(i + 1));
    EXPECT_EQ(got[i].segments, Batch(i + 1, i));
  }
  ASSERT_TRUE(s->Ack(3).ok());
  const SpoolStats st = s->stats();
  EXPECT_EQ(st.delivered_records, 3u);
  EXPECT_EQ(st.delivered_segments, 6u);
  EXPECT_EQ(st.pending_records, 0u);
  ExpectBalanced(st);
}

// The format as documented in spool.h, written by an independent encoder (fuzz/make_spool_seeds.py).
TEST(Spool, ReadsTheDocumentedFormatWrittenByAnotherEncoder) {
  TempDir t;
  const std::string seed = Slurp(std::string(XRAYD_SOURCE_DIR) + "/fuzz/corpus/fuzz_spool/three_records");
  ASSERT_GT(seed.size(), 100u);
  Spit(t.sub("00000000000000000001.chunk"), seed.substr(1));  // byte 0: the fuzz input's flags
  auto s = MustOpen(t.path(), Small());
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].segments.size(), 2u);
  EXPECT_NE(got[1].segments[1].find("\"parent_id\":\"7226467e3f845502\""), std::string::npos);
  EXPECT_EQ(got[2].segments, std::vector<std::string>{"{}"});
  EXPECT_EQ(*s->Append(Batch(1, 0)), 4u);
  const SpoolStats st = s->stats();
  EXPECT_EQ(st.recovered_records, 3u);
  EXPECT_EQ(st.corrupt_records + st.corrupt_cuts + st.torn_tail_cuts, 0u);
}

TEST(Spool, RejectsBadBatchesAndOptions) {
  TempDir t;
  auto s = MustOpen(t.path(), Small());
  EXPECT_EQ(s->Append({}).error().kind, Error::Kind::kInvalidArgument);
  // The bound counts bytes on disk: 2 MiB that do not compress exceed a 1 MiB spool ...
  std::mt19937 rng(7);
  std::string noise(2 << 20, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  EXPECT_EQ(s->Append({noise}).error().kind, Error::Kind::kInvalidArgument);
  // ... 2 MiB that compress to a few hundred bytes fit, and come back whole.
  ASSERT_TRUE(s->Append({std::string(2 << 20, 'x')}).ok());
  auto back = s->Read();
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->segments, std::vector<std::string>{std::string(2 << 20, 'x')});
  EXPECT_LT(s->stats().disk_bytes, 4096u);
  // Above the record limit before compression: refused whatever it compresses to.
  EXPECT_EQ(s->Append({std::string(kMaxRecordBytes, 'x')}).error().kind, Error::Kind::kInvalidArgument);
  SpoolOptions bad;
  bad.max_bytes = 150;
  bad.chunk_bytes = 100;
  bad.fsync_interval = std::chrono::milliseconds(0);
  auto r = Spool::Open(t.sub("other"), bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("chunk_bytes"), std::string::npos);
  EXPECT_NE(r.error().message.find("max_bytes"), std::string::npos);
  EXPECT_NE(r.error().message.find("fsync_interval"), std::string::npos);
}

// What was read but not acknowledged before a crash is replayed (the duplicates); nothing acked is.
TEST(Spool, RestartResumesAfterTheAcknowledgedPosition) {
  TempDir t;
  {
    auto s = MustOpen(t.path(), Small());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->Append(Batch(2, i)).ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Read()->has_value());
    ASSERT_TRUE(s->Ack(2).ok());
    // No Close(): the destructor stands in for the process ending; records are written() already.
  }
  auto s = MustOpen(t.path(), Small());
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].sequence, 3u);  // read before the "crash", not acked: one duplicate
  EXPECT_EQ(got[2].sequence, 5u);
  EXPECT_EQ(got[0].segments, Batch(2, 2));
  EXPECT_EQ(s->stats().recovered_records, 3u);
  EXPECT_EQ(*s->Append(Batch(1, 9)), 6u);  // sequence numbers continue
  ASSERT_TRUE(s->Ack(5).ok());
  ExpectBalanced(s->stats());
}

TEST(Spool, SecondOpenerOfTheSameDirectoryIsRefused) {
  TempDir t;
  auto s = MustOpen(t.path(), Small());
  auto second = Spool::Open(t.path(), Small());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().kind, Error::Kind::kIo);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos);
  ASSERT_TRUE(s->Close().ok());
  EXPECT_TRUE(Spool::Open(t.path(), Small()).ok());
}

TEST(Spool, RewindHandsOutUnacknowledgedRecordsAgain) {
  TempDir t;
  auto s = MustOpen(t.path(), Small());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(1, i)).ok());
  ASSERT_EQ(ReadAll(*s).size(), 3u);
  ASSERT_TRUE(s->Ack(1).ok());
  s->Rewind();
  const auto again = ReadAll(*s);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].sequence, 2u);
}

// A crash mid-append leaves a prefix of the last record: every such prefix is cut (and counted),
// the records before it survive, and appending afterwards works.
TEST(Spool, TornTailAtEveryByteOffsetOfTheLastRecordIsCut) {
  TempDir t;
  const std::string golden = t.sub("golden");
  {
    auto s = MustOpen(golden, Small());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(2, i)).ok());
  }
  const std::string chunk_name = fs::path(Chunks(golden).at(0)).filename();
  const std::string full = Slurp(golden + "/" + chunk_name);
  const auto scan = ScanChunk(full);
  ASSERT_EQ(scan.records.size(), 3u);
  const size_t last_start = scan.records[2].offset;
  ASSERT_EQ(last_start + scan.records[2].bytes, full.size());
  for (size_t cut = last_start; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const std::string dir = t.sub("torn");
    fs::remove_all(dir);
    fs::create_directories(dir);
    Spit(dir + "/" + chunk_name, full.substr(0, cut));
    {
      auto s = MustOpen(dir, Small());
      ASSERT_TRUE(s);
      const SpoolStats st = s->stats();
      EXPECT_EQ(st.torn_tail_cuts, cut == last_start ? 0u : 1u);
      EXPECT_EQ(st.cut_bytes, cut - last_start);
      EXPECT_EQ(fs::file_size(dir + "/" + chunk_name), last_start);
      const auto got = ReadAll(*s);
      ASSERT_EQ(got.size(), 2u);
      EXPECT_EQ(got[1].segments, Batch(2, 1));
      ASSERT_EQ(*s->Append(Batch(1, 7)), 3u);
    }
    auto s = MustOpen(dir, Small());
    const auto got = ReadAll(*s);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[2].segments, Batch(1, 7));
  }
}

// Power loss can extend a file before its data lands: a zero-filled tail is a torn tail too.
TEST(Spool, ZeroFilledTailIsATornTail) {
  TempDir t;
  {
    auto s = MustOpen(t.path(), Small());
    ASSERT_TRUE(s->Append(Batch(1, 0)).ok());
  }
  const std::string chunk = Chunks(t.path()).at(0);
  const auto size = fs::file_size(chunk);
  fs::resize_file(chunk, size + 4096);
  auto s = MustOpen(t.path(), Small());
  EXPECT_EQ(s->stats().torn_tail_cuts, 1u);
  EXPECT_EQ(s->stats().corrupt_cuts, 0u);
  EXPECT_EQ(fs::file_size(chunk), size);
  EXPECT_EQ(ReadAll(*s).size(), 1u);
}

// A bit flip at every byte of a chunk (bit position rotating): no crash, no wrong data handed out, every loss counted.
// Run on small records (stored as is: compression would not shrink them) and on padded ones (zstd).
class SpoolBitFlips : public ::testing::TestWithParam<size_t> {};
INSTANTIATE_TEST_SUITE_P(PlainAndCompressed, SpoolBitFlips, ::testing::Values(0u, 300u));

TEST_P(SpoolBitFlips, BitFlipsAnywhereAreSkippedOrCutAndCounted) {
  const size_t pad = GetParam();
  TempDir t;
  const std::string golden = t.sub("golden");
  {
    auto s = MustOpen(golden, Small());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(2, i, pad)).ok());
  }
  const std::string chunk_name = fs::path(Chunks(golden).at(0)).filename();
  const std::string full = Slurp(golden + "/" + chunk_name);
  const auto scan = ScanChunk(full);
  ASSERT_EQ(scan.records.size(), 3u);
  if (pad > 0)
    for (const auto& r : scan.records) EXPECT_TRUE(r.compressed);
  for (size_t byte = 0; byte < full.size(); ++byte) {
    for (int bit = static_cast<int>(byte % 8); bit == static_cast<int>(byte % 8); ++bit) {  // one bit per byte, all 8 positions used
      SCOPED_TRACE("byte " + std::to_string(byte) + " bit " + std::to_string(bit));
      const std::string dir = t.sub("flip");
      fs::remove_all(dir);
      fs::create_directories(dir);
      std::string bytes = full;
      bytes[byte] = static_cast<char>(bytes[byte] ^ (1 << bit));
      Spit(dir + "/" + chunk_name, bytes);
      auto s = MustOpen(dir, Small());
      ASSERT_TRUE(s);
      const auto got = ReadAll(*s);
      for (const auto& r : got) EXPECT_EQ(r.segments, Batch(2, static_cast<int>(r.sequence) - 1, pad));
      const SpoolStats st = s->stats();
      if (byte < kSpoolFileHeaderBytes) {  // the file header: the whole chunk is cut
        EXPECT_TRUE(got.empty());
        EXPECT_EQ(st.corrupt_cuts, 1u);
        continue;
      }
      size_t rec = 0;
      while (byte >= scan.records[rec].offset + scan.records[rec].bytes) ++rec;
      const size_t in_rec = byte - scan.records[rec].offset;
      const size_t rec_len = scan.records[rec].bytes;
      ASSERT_EQ(got.size(), 2u);  // the other two records always survive
      for (const auto& r : got) EXPECT_NE(r.sequence, rec + 1);
      if (in_rec < kSpoolRecordHeaderBytes) {
        // Header bytes (its payload CRC included): the record is cut; the scan finds the next one.
        EXPECT_EQ(st.corrupt_cuts, 1u);
        EXPECT_EQ(st.cut_bytes, rec_len);
      } else {
        // Payload: that record alone is skipped, with its segments counted.
        EXPECT_EQ(st.corrupt_records, 1u);
        EXPECT_EQ(st.corrupt_segments, 2u);
      }
      ExpectBalanced(st);
    }
  }
}

// A record damaged on disk after it was indexed (bit rot while running) is skipped at Read().
TEST(Spool, CorruptionAfterOpenIsSkippedAtRead) {
  TempDir t;
  auto s = MustOpen(t.path(), Small());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(1, i)).ok());
  const std::string chunk = Chunks(t.path()).at(0);
  std::string bytes = Slurp(chunk);
  const auto scan = ScanChunk(bytes);
  ASSERT_EQ(scan.records.size(), 3u);
  bytes[scan.records[1].offset + kSpoolRecordHeaderBytes + 5] ^= 0x20;  // record 2's payload
  Spit(chunk, bytes);
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].sequence, 3u);
  EXPECT_EQ(s->stats().corrupt_records, 1u);
  ASSERT_TRUE(s->Ack(3).ok());
  ExpectBalanced(s->stats());
}

// The size bound reached again and again: the oldest chunks go first, each drop counted, and what
// remains reads back in order, newest last.
TEST(Spool, WrapAroundDropsTheOldestAndCountsIt) {
  TempDir t;
  SpoolOptions o = Small();
  o.max_bytes = 32 << 10;
  o.chunk_bytes = 4 << 10;
  auto s = MustOpen(t.path(), o);
  uint64_t last = 0;
  for (int i = 0; i < 400; ++i) {
    auto seq = s->Append(NoisyBatch(2, i, 200));
    ASSERT_TRUE(seq.ok()) << seq.error().message;
    last = *seq;
    ASSERT_LE(s->stats().disk_bytes, o.max_bytes);
    uint64_t on_disk = 0;
    for (const auto& c : Chunks(t.path())) on_disk += fs::file_size(c);
    ASSERT_EQ(on_disk, s->stats().disk_bytes);
    if (i % 50 == 49) {  // a reader that keeps up now and then
      auto r = s->Read();
      ASSERT_TRUE(r.ok() && r->has_value());
      ASSERT_TRUE(s->Ack((*r)->sequence).ok());
    }
  }
  const SpoolStats before = s->stats();
  EXPECT_GT(before.dropped_full_records, 300u);
  EXPECT_EQ(before.dropped_full_segments, 2 * before.dropped_full_records);
  const auto got = ReadAll(*s);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back().sequence, last);
  for (size_t i = 1; i < got.size(); ++i) EXPECT_EQ(got[i].sequence, got[i - 1].sequence + 1);
  EXPECT_EQ(got.back().segments, NoisyBatch(2, 399, 200));
  ASSERT_TRUE(s->Ack(last).ok());
  ExpectBalanced(s->stats());
  EXPECT_LE(Chunks(t.path()).size(), 1u);  // acknowledged chunks are deleted
}

TEST(Spool, RecordsOlderThanMaxAgeAreDroppedAndCounted) {
  TempDir t;
  FakeClockEnv env;
  SpoolOptions o = Small();
  o.chunk_bytes = 4096;
  o.max_age = std::chrono::seconds(60);
  auto s = MustOpen(t.path(), o, &env);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(s->Append(NoisyBatch(1, i, 300)).ok());  // several chunks
  const size_t chunks_before = Chunks(t.path()).size();
  ASSERT_GT(chunks_before, 2u);
  env.now_ms += 30'000;
  ASSERT_TRUE(s->Append(Batch(3, 100)).ok());
  env.now_ms += 40'000;  // the first 40 are 70 s old, the last 40 s
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].segments, Batch(3, 100));
  const SpoolStats st = s->stats();
  EXPECT_EQ(st.expired_records, 40u);
  EXPECT_EQ(st.expired_segments, 40u);
  EXPECT_LT(Chunks(t.path()).size(), chunks_before);  // whole expired chunks deleted
  ASSERT_TRUE(s->Ack(got[0].sequence).ok());
  ExpectBalanced(s->stats());
  // Age holds across a restart (wall-clock times are in the records).
  ASSERT_TRUE(s->Append(Batch(1, 200)).ok());
  ASSERT_TRUE(s->Close().ok());
  env.now_ms += 61'000;
  auto again = MustOpen(t.path(), o, &env);
  EXPECT_TRUE(ReadAll(*again).empty());
  EXPECT_EQ(again->stats().expired_records, 1u);
}

uint32_t Crc32(std::string_view b) {
  return static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size())));
}
std::string Le32(uint32_t v) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

// A newer format version in a chunk or in the ack file: refused with a clear error, nothing touched.
TEST(Spool, DirectoryWrittenByANewerVersionIsRefusedUntouched) {
  TempDir t;
  {
    auto s = MustOpen(t.path(), Small());
    ASSERT_TRUE(s->Append(Batch(1, 0)).ok());
  }
  const std::string chunk = Chunks(t.path()).at(0);
  std::string bytes = Slurp(chunk);
  std::string head = bytes.substr(0, 8) + Le32(kSpoolFormatVersion + 1);
  bytes.replace(0, 16, head + Le32(Crc32(head)));
  Spit(chunk, bytes);
  auto r = Spool::Open(t.path(), Small());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kPermanent);
  EXPECT_NE(r.error().message.find("format version 3"), std::string::npos) << r.error().message;
  EXPECT_EQ(Slurp(chunk), bytes);  // untouched

  TempDir t2;
  {
    auto s = MustOpen(t2.path(), Small());
    ASSERT_TRUE(s->Append(Batch(1, 0)).ok());
    ASSERT_TRUE(s->Read().ok());
    ASSERT_TRUE(s->Ack(1).ok());
  }
  std::string ack = Slurp(t2.sub("ack"));
  ASSERT_EQ(ack.size(), 24u);
  ack.replace(4, 4, Le32(7));
  Spit(t2.sub("ack"), ack);
  auto r2 = Spool::Open(t2.path(), Small());
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("format version 7"), std::string::npos) << r2.error().message;
}

TEST(Spool, DamagedAckFileReplaysEverythingRatherThanLosingAnything) {
  TempDir t;
  {
    auto s = MustOpen(t.path(), Small());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(1, i)).ok());
    ASSERT_TRUE(s->Read().ok());
    ASSERT_TRUE(s->Ack(1).ok());
  }
  std::string ack = Slurp(t.sub("ack"));
  ack[10] ^= 1;
  Spit(t.sub("ack"), ack);
  auto s = MustOpen(t.path(), Small());
  EXPECT_EQ(ReadAll(*s).size(), 3u);
}

// The ack file is a log: one 24-byte entry per Ack, a fresh file (one entry) once it reaches 64 KiB;
// the position after a restart is the last one acknowledged, whatever the log's length.
TEST(Spool, AckLogGrowsOneEntryPerAckAndStartsAfreshWhenFull) {
  TempDir t;
  uint64_t last = 0;
  {
    auto s = MustOpen(t.path(), Small());
    for (int i = 0; i < 3000; ++i) {
      auto seq = s->Append(Batch(1, i));
      ASSERT_TRUE(seq.ok());
      ASSERT_TRUE(s->Read().ok());
      ASSERT_TRUE(s->Ack(*seq).ok());
      last = *seq;
      if (i == 9) EXPECT_EQ(fs::file_size(t.sub("ack")), 10u * 24);
    }
    EXPECT_LE(fs::file_size(t.sub("ack")), 64u * 1024);
    EXPECT_EQ(fs::file_size(t.sub("ack")) % 24, 0u);
    ASSERT_TRUE(s->Append(Batch(1, 3000)).ok());
  }
  EXPECT_FALSE(fs::exists(t.sub("ack.tmp")));
  auto s = MustOpen(t.path(), Small());
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 1u) << "acknowledged records replayed after a restart";
  EXPECT_EQ(got[0].sequence, last + 1);
}

// A crash (or power loss) mid-append of an ack entry: the torn entry is skipped and the previous
// position holds (that batch is replayed: a duplicate, never a loss); the log is rewritten cleanly.
TEST(Spool, TornAckEntryFallsBackToThePreviousPosition) {
  TempDir t;
  {
    auto s = MustOpen(t.path(), Small());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(1, i)).ok());
    for (uint64_t seq = 1; seq <= 2; ++seq) {
      ASSERT_TRUE(s->Read().ok());
      ASSERT_TRUE(s->Ack(seq).ok());
    }
  }
  const std::string ack = Slurp(t.sub("ack"));
  ASSERT_EQ(ack.size(), 48u);
  for (size_t keep : {size_t{24 + 10}, size_t{48}}) {
    SCOPED_TRACE("ack file cut to " + std::to_string(keep) + " bytes, last entry damaged");
    std::string damaged = ack.substr(0, keep);
    if (keep == 48) damaged[24 + 9] ^= 0x10;  // a bit flip in the newest entry's position
    Spit(t.sub("ack"), damaged);
    {
      auto s = MustOpen(t.path(), Small());
      const auto got = ReadAll(*s);
      ASSERT_EQ(got.size(), 2u);
      EXPECT_EQ(got[0].sequence, 2u) << "the previous entry's position (1) holds";
      ASSERT_TRUE(s->Ack(got[0].sequence).ok());  // a clean log again, one entry
    }
    EXPECT_EQ(fs::file_size(t.sub("ack")), 24u);
    Spit(t.sub("ack"), ack);
  }
}

// A spool written before the ack log (a 24-byte ack file) opens at its position.
TEST(Spool, SingleEntryAckFileOfEarlierVersionsStillReads) {
  TempDir t;
  {
    auto s = MustOpen(t.path(), Small());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(1, i)).ok());
  }
  std::string entry = "XRAK" + Le32(1);
  for (int i = 0; i < 8; ++i) entry.push_back(i == 0 ? 2 : 0);  // position 2
  entry += Le32(Crc32(entry)) + Le32(0);
  Spit(t.sub("ack"), entry);
  auto s = MustOpen(t.path(), Small());
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].sequence, 3u);
}

// A write that fails half-way (disk full) leaves no torn record behind: the chunk is cut back, the
// error is a value, and the spool works again once there is room.
TEST(Spool, DiskFullFailsTheAppendAndLeavesTheChunkWhole) {
  TempDir t;
  FullDiskEnv env;
  auto s = MustOpen(t.path(), Small(), &env);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(2, i)).ok());
  env.budget = 30;  // less than one record
  auto failed = s->Append(Batch(2, 3));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().kind, Error::Kind::kIo);
  EXPECT_EQ(env.failures, 1);
  EXPECT_EQ(s->stats().appended_records, 3u);
  uint64_t on_disk = 0;
  for (const auto& c : Chunks(t.path())) on_disk += fs::file_size(c);
  EXPECT_EQ(on_disk, s->stats().disk_bytes);
  env.budget = UINT64_MAX;
  ASSERT_EQ(*s->Append(Batch(2, 4)), 4u);
  ASSERT_TRUE(s->Close().ok());
  auto again = MustOpen(t.path(), Small());
  EXPECT_EQ(again->stats().torn_tail_cuts, 0u);
  const auto got = ReadAll(*again);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[3].segments, Batch(2, 4));
}

// The same on a real full file system: a 64 KiB tmpfs (needs CAP_SYS_ADMIN; skipped, visibly, without).
TEST(Spool, DiskFullOnARealTmpfs) {
  TempDir t;
  const std::string mnt = t.sub("tmpfs");
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount(p.c_str()); }
  } unmount{mnt};
  auto s = MustOpen(mnt + "/spool", Small());
  ASSERT_TRUE(s);
  int appended = 0;
  Result<uint64_t> r = uint64_t{0};
  for (int i = 0; i < 1000; ++i) {
    r = s->Append(Batch(4, i, 500));
    if (!r.ok()) break;
    ++appended;
  }
  ASSERT_FALSE(r.ok()) << "64 KiB never filled";
  EXPECT_EQ(r.error().kind, Error::Kind::kIo);
  EXPECT_NE(r.error().message.find("No space left"), std::string::npos) << r.error().message;
  EXPECT_GT(appended, 5);
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), static_cast<size_t>(appended));  // everything accepted reads back
  ASSERT_TRUE(s->Ack(got.back().sequence).ok());  // frees chunks: appends work again
  EXPECT_TRUE(s->Append(Batch(1, 1)).ok());
}

TEST(Spool, UnwritableDirectoryIsAnIoError) {
  TempDir t;
  Spit(t.sub("file"), "x");
  auto r = Spool::Open(t.sub("file") + "/spool", Small());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kIo);
  EXPECT_NE(r.error().message.find("cannot create"), std::string::npos) << r.error().message;
  // A directory whose files cannot be created (read-only bind of /proc's view is not portable;
  // /proc/self is a directory no one may create files in).
  auto r2 = Spool::Open("/proc/self/spool", Small());
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().kind, Error::Kind::kIo);
}

TEST(Spool, FsyncPolicyDecidesHowOftenDataIsSynced) {
  for (auto [policy, expect_min, expect_max] :
       {std::tuple{FsyncPolicy::kAlways, 20, 40}, std::tuple{FsyncPolicy::kNever, 0, 0},
        std::tuple{FsyncPolicy::kInterval, 0, 2}}) {
    TempDir t;
    FakeClockEnv env;
    SpoolOptions o = Small();
    o.fsync = policy;
    auto s = MustOpen(t.path(), o, &env);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(s->Append(Batch(1, i)).ok());  // clock stands still
    const auto n = s->stats().fsyncs;
    EXPECT_GE(n, static_cast<uint64_t>(expect_min)) << static_cast<int>(policy);
    EXPECT_LE(n, static_cast<uint64_t>(expect_max)) << static_cast<int>(policy);
    if (policy == FsyncPolicy::kInterval) {
      env.now_ms += 1000;
      ASSERT_TRUE(s->Append(Batch(1, 99)).ok());
      EXPECT_EQ(s->stats().fsyncs, n + 1);
    }
  }
}

// One appender, one reader acknowledging as it goes: every record exactly once, in order.
TEST(Spool, ConcurrentAppendAndReadDeliverEverythingOnceInOrder) {
  TempDir t;
  SpoolOptions o = Small();
  o.max_bytes = 64 << 20;
  o.chunk_bytes = 16 << 10;
  auto s = MustOpen(t.path(), o);
  constexpr int kN = 3000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kN; ++i) ASSERT_TRUE(s->Append(Batch(1, i, 50)).ok());
    done = true;
  });
  uint64_t expect = 1;
  while (expect <= kN) {
    auto r = s->Read();
    ASSERT_TRUE(r.ok());
    if (!r->has_value()) {
      if (done && expect > kN) break;
      std::this_thread::yield();
      continue;
    }
    ASSERT_EQ((*r)->sequence, expect);
    ASSERT_EQ((*r)->segments, Batch(1, static_cast<int>(expect) - 1, 50));
    ASSERT_TRUE(s->Ack(expect).ok());
    ++expect;
  }
  writer.join();
  const SpoolStats st = s->stats();
  EXPECT_EQ(st.delivered_records, static_cast<uint64_t>(kN));
  EXPECT_EQ(st.pending_records, 0u);
  ExpectBalanced(st);
  EXPECT_LE(Chunks(t.path()).size(), 1u);
}

}  // namespace

// ---- Compression (format version 2) and the version-1 spools it still reads ----

std::string Le16(uint16_t v) { return Le32(v).substr(0, 2); }
std::string Le64(uint64_t v) { return Le32(static_cast<uint32_t>(v)) + Le32(static_cast<uint32_t>(v >> 32)); }

std::string RawPayload(const std::vector<std::string>& segments) {
  std::string p;
  for (const auto& s : segments) p += Le32(static_cast<uint32_t>(s.size())) + s;
  return p;
}

// One record as documented in spool.h, written here independently of spool.cc.
std::string RecordBytes(uint16_t version, uint16_t flags, uint64_t seq, int64_t ms, uint32_t segments,
                        uint32_t raw_len, const std::string& stored) {
  const std::string rest = Le32(Crc32(stored)) + Le32(static_cast<uint32_t>(stored.size())) + Le16(version) +
                           Le16(flags) + Le64(seq) + Le64(static_cast<uint64_t>(ms)) + Le32(segments) + Le32(raw_len);
  return Le32(Crc32(rest)) + rest + stored;
}

std::string FileHeaderBytes(uint32_t version) {
  const std::string h = std::string("XRSPOOL1", 8) + Le32(version);
  return h + Le32(Crc32(h));
}

std::string AckBytes(uint64_t position) {
  const std::string b = std::string("XRAK", 4) + Le32(1) + Le64(position);
  return b + Le32(Crc32(b)) + Le32(0);
}

std::string Zstd(const std::string& raw, int level = 1) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), level);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// A spool left by the previous release (format version 1: uncompressed records, version-1 file
// header, one ack entry) is replayed from its acknowledged position; new records are appended in a
// version-2 chunk after it, and both read back after a restart.
TEST(SpoolFormat, Version1SpoolFromThePreviousReleaseIsReplayed) {
  TempDir t;
  std::string chunk = FileHeaderBytes(1);
  for (int i = 0; i < 3; ++i) {
    const auto b = Batch(2, i, 100);
    chunk += RecordBytes(1, 0, i + 1, 1'700'000'000'000 + i, 2, 0, RawPayload(b));
  }
  Spit(t.sub("00000000000000000001.chunk"), chunk);
  Spit(t.sub("ack"), AckBytes(1));
  {
    auto s = MustOpen(t.path(), Small());
    ASSERT_TRUE(s);
    EXPECT_EQ(s->stats().recovered_records, 2u);
    EXPECT_EQ(s->stats().corrupt_records + s->stats().corrupt_cuts + s->stats().torn_tail_cuts, 0u);
    auto got = ReadAll(*s);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].sequence, 2u);
    EXPECT_EQ(got[0].segments, Batch(2, 1, 100));
    EXPECT_EQ(got[1].segments, Batch(2, 2, 100));
    ASSERT_TRUE(s->Ack(2).ok());
    EXPECT_EQ(*s->Append(Batch(3, 9, 200)), 4u);
  }
  const auto chunks = Chunks(t.path());
  ASSERT_EQ(chunks.size(), 2u);  // the old chunk still holds record 3; the new one is version 2
  EXPECT_EQ(Slurp(chunks[1]).substr(0, 16), FileHeaderBytes(2));
  EXPECT_EQ(Slurp(chunks[0]).substr(0, 16), FileHeaderBytes(1));
  auto s = MustOpen(t.path(), Small());
  auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].sequence, 3u);
  EXPECT_EQ(got[0].segments, Batch(2, 2, 100));
  EXPECT_EQ(got[1].sequence, 4u);
  EXPECT_EQ(got[1].segments, Batch(3, 9, 200));
  ASSERT_TRUE(s->Ack(4).ok());
  ExpectBalanced(s->stats());
}

// Segment-like JSON compresses several times over; disk_bytes (what max_bytes bounds) counts the
// compressed bytes, and the records on disk are zstd frames another decoder can read.
TEST(SpoolFormat, RecordsAreCompressedAndTheBoundCountsBytesOnDisk) {
  TempDir t;
  auto s = MustOpen(t.path(), Small());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(s->Append(Batch(50, i, 300)).ok());
  const SpoolStats st = s->stats();
  EXPECT_GT(st.appended_raw_bytes, 4 * st.appended_disk_bytes);
  EXPECT_EQ(st.disk_bytes, kSpoolFileHeaderBytes + st.appended_disk_bytes);
  uint64_t files = 0;
  for (const auto& c : Chunks(t.path())) files += fs::file_size(c);
  EXPECT_EQ(files, st.disk_bytes);
  // The first record's payload, decompressed by libzstd directly, is the documented raw framing.
  const std::string bytes = Slurp(Chunks(t.path()).at(0));
  const auto scan = ScanChunk(bytes);
  ASSERT_EQ(scan.records.size(), 20u);
  ASSERT_TRUE(scan.records[0].compressed);
  const std::string_view stored =
      std::string_view(bytes).substr(kSpoolFileHeaderBytes + kSpoolRecordHeaderBytes,
                                     scan.records[0].bytes - kSpoolRecordHeaderBytes);
  const std::string raw = RawPayload(Batch(50, 0, 300));
  std::string out(raw.size(), '\0');
  EXPECT_EQ(ZSTD_decompress(out.data(), out.size(), stored.data(), stored.size()), raw.size());
  EXPECT_EQ(out, raw);
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(got[i].segments, Batch(50, i, 300));
}

// Compressed payloads whose CRCs match but which are wrong inside: each is a counted corrupt
// record, skipped; the records around it are delivered; nothing crashes or allocates past the
// record limit (a frame declaring more than raw_len, or raw_len above kMaxRecordBytes).
TEST(SpoolFormat, BadCompressedPayloadsAreCountedCorruptNeverCrash) {
  const auto good = Batch(2, 0, 200);
  const std::string raw = RawPayload(good);
  const std::string frame = Zstd(raw);
  std::string garbage = frame;
  for (size_t i = 6; i < garbage.size(); ++i) garbage[i] = static_cast<char>(garbage[i] * 31 + 7);
  const std::string bomb = Zstd(std::string(48 << 20, '\0'), 3);  // 48 MiB of zeros
  const std::string truncated = frame.substr(0, frame.size() - 3);
  struct Case {
    std::string name;
    uint16_t flags;
    uint32_t raw_len;
    std::string stored;
  };
  const std::vector<Case> cases = {
      {"garbage frame", 1, static_cast<uint32_t>(raw.size()), garbage},
      {"truncated frame", 1, static_cast<uint32_t>(raw.size()), truncated},
      {"raw_len below the frame's size", 1, static_cast<uint32_t>(raw.size() - 1), frame},
      {"raw_len above the frame's size", 1, static_cast<uint32_t>(raw.size() + 1), frame},
      {"bomb: frame larger than raw_len", 1, 1000, bomb},
      {"raw_len above the record limit", 1, kMaxRecordBytes + 1, frame},
      {"not compressed, raw_len wrong", 0, static_cast<uint32_t>(raw.size() + 4), raw},
      {"unknown flag", 3, static_cast<uint32_t>(raw.size()), frame},
      {"version 1 with the zstd flag", 1, 0, frame},
      {"frame of the wrong segment framing", 1, 5, Zstd("hello")},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir t;
    const uint16_t version = c.name.starts_with("version 1") ? 1 : 2;
    const std::string chunk = FileHeaderBytes(2) + RecordBytes(2, 1, 1, 1'700'000'000'000, 2, raw.size(), frame) +
                              RecordBytes(version, c.flags, 2, 1'700'000'000'001, 2, c.raw_len, c.stored) +
                              RecordBytes(2, 0, 3, 1'700'000'000'002, 2, raw.size(), raw);
    EXPECT_FALSE(DecodeRecord(std::string_view(chunk).substr(kSpoolFileHeaderBytes + kSpoolRecordHeaderBytes +
                                                             frame.size())
                                  .substr(0, kSpoolRecordHeaderBytes + c.stored.size()))
                     .has_value());
    Spit(t.sub("00000000000000000001.chunk"), chunk);
    auto s = MustOpen(t.path(), Small());
    ASSERT_TRUE(s);
    const auto got = ReadAll(*s);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].sequence, 1u);
    EXPECT_EQ(got[0].segments, good);
    EXPECT_EQ(got[1].sequence, 3u);
    EXPECT_EQ(got[1].segments, good);
    const SpoolStats st = s->stats();
    EXPECT_EQ(st.corrupt_records, 1u);
    EXPECT_EQ(st.corrupt_segments, 2u);
    EXPECT_EQ(st.corrupt_cuts + st.torn_tail_cuts, 0u);
    ASSERT_TRUE(s->Ack(3).ok());
    ExpectBalanced(s->stats());
  }
}

// A frame that passes the scan's checks at Open() but is damaged afterwards (bit rot while
// running, CRC recomputed to reach the decompressor): Read() counts it corrupt and moves on.
TEST(SpoolFormat, FrameDamagedAfterOpenIsCountedAtRead) {
  TempDir t;
  auto s = MustOpen(t.path(), Small());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->Append(Batch(4, i, 200)).ok());
  const std::string chunk = Chunks(t.path()).at(0);
  std::string bytes = Slurp(chunk);
  const auto scan = ScanChunk(bytes);
  ASSERT_EQ(scan.records.size(), 3u);
  const auto& r = scan.records[1];
  ASSERT_TRUE(r.compressed);
  std::string stored = bytes.substr(r.offset + kSpoolRecordHeaderBytes, r.bytes - kSpoolRecordHeaderBytes);
  for (size_t i = stored.size() / 2; i < stored.size(); ++i) stored[i] = static_cast<char>(~stored[i]);
  const std::string header = bytes.substr(r.offset, kSpoolRecordHeaderBytes);
  const std::string rebuilt = RecordBytes(2, 1, r.sequence, r.append_ms, r.segments,
                                          static_cast<uint8_t>(header[36]) | static_cast<uint8_t>(header[37]) << 8 |
                                              static_cast<uint32_t>(static_cast<uint8_t>(header[38])) << 16,
                                          stored);
  ASSERT_EQ(rebuilt.size(), r.bytes);
  bytes.replace(r.offset, r.bytes, rebuilt);
  Spit(chunk, bytes);
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].sequence, 3u);
  EXPECT_EQ(s->stats().corrupt_records, 1u);
  EXPECT_EQ(s->stats().corrupt_segments, 4u);
  ASSERT_TRUE(s->Ack(3).ok());
  ExpectBalanced(s->stats());
}

// fuzz/make_spool_seeds.py compresses with the zstd command-line tool: another encoder again.
TEST(SpoolFormat, ReadsCompressedRecordsWrittenByAnotherEncoder) {
  TempDir t;
  const std::string seed = Slurp(std::string(XRAYD_SOURCE_DIR) + "/fuzz/corpus/fuzz_spool/compressed_records");
  ASSERT_GT(seed.size(), 100u);
  Spit(t.sub("00000000000000000001.chunk"), seed.substr(1));
  const auto scan = ScanChunk(seed.substr(1));
  ASSERT_EQ(scan.records.size(), 3u);
  EXPECT_TRUE(scan.records[0].compressed);
  auto s = MustOpen(t.path(), Small());
  const auto got = ReadAll(*s);
  ASSERT_EQ(got.size(), 3u);
  ASSERT_EQ(got[0].segments.size(), 20u);
  EXPECT_NE(got[0].segments[19].find("\"name\":\"svc-19\""), std::string::npos);
  EXPECT_EQ(got[2].segments, std::vector<std::string>{"{}"});
  EXPECT_EQ(s->stats().corrupt_records + s->stats().corrupt_cuts + s->stats().torn_tail_cuts, 0u);
}

}  // namespace xrayd::pipeline
