// TraceStore: the embedded trace store behind `xrayd serve` (SQLite in WAL mode, one file).
//
// On-disk format (schema version 7, file DATA_DIR/traces.db). Each trace has an integer key, tid
// (assigned in arrival order), and every per-trace table names its trace by it: the 35-character
// trace id is stored once. Names are interned in small tables; retention deletes a service, user
// agent or annotation key with the last trace that used it (user agents can be many).
//   traces(tid INTEGER PRIMARY KEY, trace_id UNIQUE, trace_time, ...)  a per-trace summary kept up
//       to date on every Append: time bounds, the root segment's HTTP fields (url_id: urls.id, 0 for
//       none), user and name, error/fault/throttle flags; root name, origin and user agent are
//       names.id (0: empty). Listing order is (time, tid): the time indexes hold only the time
//       (and the row's tid), never the trace id text again.
//   segments(tid, id, parent_id, kind, start_time, in_progress, dict, doc)  rows appended in arrival
//       order (pages filled), unique index segments_by_key(tid, id): one row per segment or
//       independent subsegment document (doc: the JSON text when dict is 0, else zstd-compressed with dictionaries.id = dict; see store/doc_codec.h); a
//       later document with the same (trace, id) replaces the earlier one unless the earlier one is
//       complete and the later one is still in progress (so in-progress -> complete converges in any
//       arrival order).
//   annotations(tid, key_id, service_id, value)  WITHOUT ROWID; key and service are names.id.
//   trace_services(tid, service_id, has_error, has_fault, has_throttle)  WITHOUT ROWID; every
//       service (services.id: name, type) that sent a segment (type = its origin) and every one it
//       only called (remote/aws subsegments, typed as the service graph infers them), with that
//       service's own flags, for service()/edge() filters.
//   names(id, name UNIQUE), services(id, name, type, UNIQUE(name, type))  interned strings
//       (names: annotation keys and services, root names, origins, user agents).
//   urls(id, url UNIQUE) + url_trigrams  the distinct root URLs of stored traces and their trigram
//       index (store/trace_query.h); retention deletes a URL with the last trace that has it.
//   graph_rollups(minute, kind, from_name, from_type, to_name, to_type, ok, error, throttle, fault,
//       total, roots, total_rt, start, end, hist)  per minute of a call's start, the service graph's
//       counts (segment/graph.h: nodes, edges, requests entering the graph), kept in each Append's
//       transaction so they always equal what the stored documents say: a trace that grows or gets a
//       late document (an LB segment minutes later, a completed in-progress segment) has its old
//       calls taken out and its new ones counted; retention takes deleted traces' calls out. hist:
//       response times in whole ms, varint-coded.
//   dictionaries(id, dict, trained_at)  zstd dictionaries trained on the store's own documents.
//   meta(key, value)  schema_version, longest_trace_seconds (bounds range scans), index_bucket_shift
//       (S of the bucketed query indexes) and settings (sampling rules, groups).
// Query indexes (store/trace_query.h): the annotation-value and URL indexes are time-bucketed,
// (key_id, tid >> S, value) and (tid >> S, url_id), so inserts stay in the newest bucket's pages.
// Older files are upgraded on open: schema 2 -> 3 (service flag columns) and 4 -> 5 (segments.dict)
// in place, then schema 5 -> 6 by copying: the old tables are renamed v5_*, copied 2,000 traces per
// transaction (meta.migrate_after records the last trace copied, so an interrupted migration resumes
// at the next open), then dropped; a file before schema 4 gets its rollups computed in that last
// transaction. Schema 6 -> 7 drops the two unbucketed indexes (annotations_by_value,
// traces_by_url); opening builds their bucketed successors. A file of a newer schema is refused
// with an error naming both versions.
// Retention deletes whole traces by age (start time) and, past a size bound, oldest first, in
// chunks of kRetentionChunk traces, each chunk its own transaction (writers wait for one chunk,
// never for the whole sweep).
//
// Documents are validated and their facts extracted by segment::Parser (segment/segment.h): the
// store holds nothing the ingest rules refuse, so no stored time can break a later query.
//
// Errors: every SQLite call's result is checked. A failed write rolls its whole transaction back
// (an Append that fails leaves no part of its batch behind), is reported to
// StoreOptions::on_error and returned as an Error whose kind says what a caller may do:
//   kRetryable  SQLITE_BUSY, SQLITE_LOCKED (another writer), SQLITE_FULL (disk or page limit:
//               retention may free room), SQLITE_IOERR, SQLITE_NOMEM, SQLITE_INTERRUPT,
//               SQLITE_PROTOCOL, SQLITE_CANTOPEN: the same call may succeed later.
//   kPermanent  everything else (SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_PERM,
//               SQLITE_CONSTRAINT, SQLITE_TOOBIG, misuse): retrying the same call cannot help
//               until an operator acts.
//
// Connections and who waits for whom. Thread-safe. The store owns no thread; it owns SQLite
// connections to one file, closed by the destructor (no call may be in flight then):
//   writer   one read-write connection under mu_: Open (schema creation and upgrade, before any
//            reader opens), Append, PutSetting, EnforceRetention, ApproximateBytes. Writers wait
//            for each other (mu_), never for readers, except as below.
//   readers  a pool of at most StoreOptions::readers read-only connections (SQLITE_OPEN_READONLY,
//            opened on first need), each used by one call at a time: ListTraces, Summary,
//            SegmentsOf, DocumentsInRange, GetSetting. A read takes an idle reader (or waits for
//            one, never for mu_) and runs in WAL mode on the last committed snapshot, so it never
//            waits for a write transaction and never sees an uncommitted or partial batch.
// Consistency a reader gets: each call is one read transaction, so one call's rows (a listing
// page with its annotations and services; DocumentsInRange's count and documents) are of one
// snapshot. Two calls are not: a listing page and a later Summary/SegmentsOf/BatchGetTraces may
// see different snapshots (a trace listed may since have grown, or been deleted by retention).
// An Append is visible to every read that starts after it returned.
// WAL growth: a checkpoint cannot copy WAL frames past the oldest open read snapshot, so readers
// that always overlap could keep the WAL growing. Read transactions last one call (bounded: one
// page, at most max_traces traces), and after each commit the writer checks the WAL file: past
// StoreOptions::wal_limit_bytes it runs a TRUNCATE checkpoint, which waits (up to busy_timeout_ms)
// for the readers of older snapshots to finish — the one case where the writer waits for readers —
// then empties the WAL. If a reader outlasts that wait the checkpoint is logged and retried after
// the next commit. Retention deletes run on the writer while readers are open; readers of older
// snapshots keep seeing the deleted traces until their call ends.
// Append() commits before it returns, so an acknowledged segment survives a restart.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/thread_annotations.h"

#include "segment/graph.h"
#include "segment/segment.h"
#include "store/doc_codec.h"
#include "store/trace_query.h"

namespace xrayd::store {

struct StoreOptions {
  std::string data_dir;
  double retention_seconds = 7 * 24 * 3600;
  uint64_t max_bytes = 0;  // 0: no size bound
  // How long a write waits for another connection's lock, a TRUNCATE checkpoint for older readers,
  // and a reader for a WAL recovery or restart in progress.
  int busy_timeout_ms = 5000;
  // Called once per failed store operation, after its rollback, with the error returned. Runs on
  // the caller's thread, possibly with the writer's lock or a reader connection held: keep it
  // cheap (count a metric) and never call back into the store.
  std::function<void(const Error&)> on_error;
  // Read-only connections in the pool, opened as concurrent reads need them. As many as the API's
  // handler slots: with fewer, a 1 ms BatchGetTraces waits behind slow listings for a connection
  // (measured: 320 ms p99 with 3 readers and 3 listing clients under ingest; bench/store_read_bench.py).
  int readers = 8;
  // WAL size past which the writer checkpoints with TRUNCATE after a commit (waiting for readers);
  // SQLite's own passive checkpoint runs every ~64 MiB and cannot pass an open reader.
  uint64_t wal_limit_bytes = 256ull << 20;
  // For tests (0..30): traces per bucket of the bucketed indexes is 2^shift (store/trace_query.h).
  // Tests lower it to get many buckets from a few traces; a store opened with another shift than
  // the one its file records rebuilds those indexes.
  int index_bucket_shift = kDefaultIndexBucketShift;
};

// Traces deleted per retention transaction.
inline constexpr int64_t kRetentionChunk = 500;

struct AnnotationEntry {
  std::string key;
  std::string service;
  std::string value_json;  // a JSON string, number or boolean
};

struct TraceSummaryRow {
  std::string trace_id;
  double start_time = 0, end_time = 0;  // over all documents
  std::optional<double> root_start, root_end;
  std::string root_name, root_origin;
  std::string http_url, http_method, user_agent, client_ip, user;
  std::optional<int> http_status;
  bool has_error = false, has_fault = false, has_throttle = false, is_partial = false;
  int revision = 0;
  int64_t key = 0;  // the store's key of the trace (traces.tid): orders traces of the same time in listings
  std::vector<AnnotationEntry> annotations;
  std::vector<std::pair<std::string, std::string>> services;  // (name, type/origin)
  struct ServiceFlags {
    bool error = false, fault = false, throttle = false;
  };
  std::vector<ServiceFlags> service_flags;  // parallel to services: that service's own flags
};

struct StoredSegment {
  std::string id;
  std::string parent_id;
  bool independent_subsegment = false;
  std::string doc;
};

// A listing: traces in (time, key) order, time being the trace id's epoch (by_trace_id_time,
// X-Ray's TimeRangeType TraceId) or the start time. `cursor` is "" for the first page, else
// ListCursorAfter() of the last row read: opaque text (callers hand it out as NextToken and must
// not look inside). A cursor that does not decode, or was made for the other order, makes
// ListTraces fail with an InvalidArgument error.
struct ListQuery {
  double start_time = 0;
  double end_time = 0;
  bool by_trace_id_time = false;
  std::string cursor;
  size_t limit = 1000;
  // Optional: a necessary condition of the rows the caller keeps (store/trace_query.h). Rows that
  // fail it may be left out (when the store finds the others by index); any row may still fail it.
  std::shared_ptr<const IndexCondition> condition;
  int64_t max_index_candidates = kMaxIndexCandidates;  // the index plan's bound (tests lower it)
};

// The cursor that resumes `query`'s listing after `row` (a row ListTraces returned for it).
std::string ListCursorAfter(const ListQuery& query, const TraceSummaryRow& row);

namespace detail {
struct WriteCache;       // the writer's interned ids (trace_store.cc)
struct WriteStatements;  // the writer's prepared statements (trace_store.cc)
}  // namespace detail

class TraceStore {
 public:
  static Result<std::unique_ptr<TraceStore>> Open(const StoreOptions& options);
  ~TraceStore();

  // Writer. Stores segment documents in one transaction. Documents segment::Parser refuses are
  // skipped and returned by index with the rule they broke; the others are committed before Append
  // returns. On error nothing of the batch is stored (see Errors above). Parsing, compression and
  // each trace's graph calls happen before the writer's lock is taken (concurrent Appends overlap
  // there); in the transaction a trace's summary, services and annotations are written once per
  // batch. Bigger batches cost less per segment (fewer commits, fewer distinct pages dirtied).
  Result<std::vector<std::pair<size_t, std::string>>> Append(const std::vector<std::string>& docs)
      XRAYD_EXCLUDES(mu_);

  // Readers (see Connections above).
  // In store/trace_query.cc; `plan` (optional) says how it was answered.
  Result<std::vector<TraceSummaryRow>> ListTraces(const ListQuery& query, ListPlan* plan = nullptr)
      XRAYD_EXCLUDES(pool_mu_);
  Result<std::vector<StoredSegment>> SegmentsOf(const std::string& trace_id) XRAYD_EXCLUDES(pool_mu_);
  // SegmentsOf of each of `trace_ids` (parallel: element i holds trace_ids[i]'s segments, empty for
  // one not stored), all read in ONE read transaction: one snapshot, one reader taken once (a
  // listing page's root causes, BatchGetTraces). In store/trace_query.cc.
  Result<std::vector<std::vector<StoredSegment>>> SegmentsOfTraces(const std::vector<std::string>& trace_ids)
      XRAYD_EXCLUDES(pool_mu_);
  Result<std::optional<TraceSummaryRow>> Summary(const std::string& trace_id) XRAYD_EXCLUDES(pool_mu_);
  // Every document of the traces that overlap [start, end], at most `max_traces` traces (newest
  // first); for service graphs. `truncated` tells whether traces were left out.
  Result<std::vector<std::string>> DocumentsInRange(double start, double end, size_t max_traces, bool* truncated)
      XRAYD_EXCLUDES(pool_mu_);
  // DocumentsInRange of the traces that may satisfy `condition` (store/trace_query.h; in
  // trace_query.cc): when its indexes name at most kMaxIndexCandidates traces only those are read,
  // so `max_traces` (and `truncated`) count candidates in the window, not all its traces; else the
  // same as DocumentsInRange. `plan` (optional) says which.
  Result<std::vector<std::string>> CandidateDocumentsInRange(double start, double end, size_t max_traces,
                                                             const IndexCondition& condition, bool* truncated,
                                                             ListPlan* plan = nullptr) XRAYD_EXCLUDES(pool_mu_);

  // The per-minute graph rollups (see the format above) of minutes [first_minute, last_minute]
  // (epoch seconds, multiples of 60): exact counts of every call stored that started then.
  Result<segment::Rollup> GraphRollups(int64_t first_minute, int64_t last_minute) XRAYD_EXCLUDES(pool_mu_);

  // Small named settings kept with the traces (sampling rules, groups), as JSON text. PutSetting is
  // the writer's; GetSetting a reader's (it sees every PutSetting that returned).
  Status PutSetting(const std::string& key, const std::string& value) XRAYD_EXCLUDES(mu_);
  Result<std::optional<std::string>> GetSetting(const std::string& key) XRAYD_EXCLUDES(pool_mu_);

  // Writer. Deletes traces older than the retention (and any whose start is past segment::kMaxTime,
  // stored before that rule existed) and, past max_bytes, the oldest; returns how many. Stops at the
  // first error: the chunks committed before it stay deleted.
  Result<int64_t> EnforceRetention(double now_epoch_seconds) XRAYD_EXCLUDES(mu_);
  // Writer. The file's size in bytes (page_count * page_size); 0 when SQLite cannot say.
  uint64_t ApproximateBytes() XRAYD_EXCLUDES(mu_);

 private:
  class Reader;  // a pooled read-only connection, held by one call (RAII)

  TraceStore(sqlite3* db, StoreOptions options, std::string path);
  Status Exec(const char* sql) XRAYD_REQUIRES(mu_);
  // Schema: the file's version (0: a new file), then creation, or the upgrades and the migration.
  Result<int> SchemaVersion() XRAYD_REQUIRES(mu_);
  bool HasTable(const char* name) XRAYD_REQUIRES(mu_);
  Status Upgrade() XRAYD_REQUIRES(mu_);
  Status AddServiceFlagColumns() XRAYD_REQUIRES(mu_);  // schema 2 -> 3, idempotent
  Status AddDictColumn() XRAYD_REQUIRES(mu_);          // schema 4 -> 5, idempotent
  // Schema 5 -> 6 (older files after their own upgrades): old tables renamed, copied in chunks of
  // traces (one transaction each, resumable), then dropped; rollups computed for files before 4.
  Status MigrateToV6() XRAYD_REQUIRES(mu_);
  // Schema 6 -> 7: the unbucketed indexes dropped (EnsureQueryIndexes builds their successors).
  Status MigrateToV7() XRAYD_REQUIRES(mu_);
  Status MigrateChunk(int64_t* copied) XRAYD_REQUIRES(mu_);
  Status LoadLongestTrace() XRAYD_REQUIRES(mu_);
  Status ComputeAllRollups() XRAYD_REQUIRES(mu_);  // in the caller's transaction
  // One trace's part of a batch (trace_store.cc): its documents, its calls as the batch alone
  // shows them (segment::TraceCalls) and, once the lock is taken, its key. Built before the lock.
  struct BatchTrace;
  using Batch = std::vector<BatchTrace>;
  // `valid` by trace, in order of first appearance, with each trace's calls (no lock needed).
  static Batch GroupByTrace(const std::vector<std::pair<size_t, segment::Facts>>& valid);
  // The rollup delta of a batch: RollupBefore before its rows are written (it also finds or
  // assigns every trace's key), RollupAfter after.
  Status RollupBefore(Batch& batch, segment::Parser& parser, segment::Rollup* delta) XRAYD_REQUIRES(mu_);
  Status RollupAfter(const Batch& batch, segment::Parser& parser, segment::Rollup* delta) XRAYD_REQUIRES(mu_);
  // Ends the transaction `st` was the body of: COMMIT when ok, else (or when COMMIT fails) ROLLBACK;
  // a failure is reported and returned.
  Status Finish(Status st) XRAYD_REQUIRES(mu_);
  // `packed`: the documents compressed with dictionary `dict`, parallel to `valid` (empty when dict is 0).
  Status WriteAll(const std::vector<std::string>& docs, const std::vector<std::pair<size_t, segment::Facts>>& valid,
                  const std::vector<std::string>& packed, int64_t dict, Batch& batch, double* longest)
      XRAYD_REQUIRES(mu_);
  // The writer's prepared statements, prepared on first use and kept until the store closes.
  Result<detail::WriteStatements*> Statements() XRAYD_REQUIRES(mu_);
  Status LoadDictionaries() XRAYD_REQUIRES(mu_);  // into dicts_; counts documents when none yet
  void MaybeTrainDictionary() XRAYD_REQUIRES(mu_);
  void CompressPlainDocuments(const Dict& dict) XRAYD_REQUIRES(mu_);
  // After a commit: a TRUNCATE checkpoint when the WAL file is past options_.wal_limit_bytes.
  void BoundWal() XRAYD_REQUIRES(mu_);
  // Deletes up to `limit` traces matching `where` (one parameter ?1 = arg) in one transaction.
  Result<int64_t> DeleteChunk(const std::string& where, double arg, int64_t limit) XRAYD_EXCLUDES(mu_);
  Status DeleteVictims(const std::string& where, double arg, int64_t limit, int64_t* deleted) XRAYD_REQUIRES(mu_);
  Status DeleteUnusedUrls(const std::set<int64_t>& ids) XRAYD_REQUIRES(mu_);
  Status InternedIdsOf(const std::vector<int64_t>& tids, std::set<int64_t>* names, std::set<int64_t>* services)
      XRAYD_REQUIRES(mu_);
  Status DeleteUnusedServices(const std::set<int64_t>& ids) XRAYD_REQUIRES(mu_);
  Status DeleteUnusedNames(const std::set<int64_t>& ids) XRAYD_REQUIRES(mu_);
  // An Error for SQLite result code `rc` on the writer, classified by kind (see Errors above).
  Error SqlError(int rc, const std::string& what) XRAYD_REQUIRES(mu_);
  // Reports `e` to options_.on_error and returns it.
  Error Report(Error e) const;
  uint64_t ApproximateBytesLocked() XRAYD_REQUIRES(mu_);

  // An idle reader connection, opening one when fewer than options_.readers exist, else waiting
  // for one to be returned.
  Result<sqlite3*> TakeReader() XRAYD_EXCLUDES(pool_mu_);
  void ReturnReader(sqlite3* db) XRAYD_EXCLUDES(pool_mu_);
  Result<sqlite3*> OpenReader();
  // A reader connection in a read transaction (one snapshot) until the Reader is destroyed.
  Result<std::unique_ptr<Reader>> BeginRead() XRAYD_EXCLUDES(pool_mu_);
  // Runs `read` on a reader connection in one read transaction (for code outside trace_store.cc).
  Status Read(const std::function<Status(sqlite3* db)>& read) XRAYD_EXCLUDES(pool_mu_);

  // Constant after construction.
  const StoreOptions options_;
  const std::string path_;  // DATA_DIR/traces.db

  // The writer: state below is protected by mu_.
  Mutex mu_;
  sqlite3* const db_ XRAYD_PT_GUARDED_BY(mu_);  // the writer's connection; closed by the destructor
  // The longest end - start of any trace stored (never lowered by retention: a safe bound), so range
  // scans can start at `window start - longest` instead of the oldest trace. Kept in meta as
  // longest_trace_seconds, where readers read it in their own snapshot.
  double longest_trace_seconds_ XRAYD_GUARDED_BY(mu_) = 0;
  // Documents stored as text since the store had no dictionary (trains one at kTrainAfterDocuments).
  int64_t plain_documents_ XRAYD_GUARDED_BY(mu_) = 0;
  // Interned ids and the next trace key (a cache of the file's rows).
  const std::unique_ptr<detail::WriteCache> cache_ XRAYD_PT_GUARDED_BY(mu_);
  // Prepared once (first Append) on db_, finalized by the destructor before db_ closes.
  std::unique_ptr<detail::WriteStatements> stmts_ XRAYD_PT_GUARDED_BY(mu_);
  // The compression dictionaries (thread-safe itself): added by the writer, used by every call.
  Dictionaries dicts_;

  // The reader pool. A connection taken from idle_ belongs to the taking call alone until returned.
  Mutex pool_mu_;
  std::condition_variable reader_returned_;
  std::vector<sqlite3*> idle_ XRAYD_GUARDED_BY(pool_mu_);
  int readers_open_ XRAYD_GUARDED_BY(pool_mu_) = 0;  // idle or taken (counting ones being opened)
};

}  // namespace xrayd::store
