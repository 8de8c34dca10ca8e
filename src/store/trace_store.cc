#include "store/trace_store.h"

#include "common/log.h"
#include "segment/graph.h"
#include "segment/lb_join.h"
#include "segment/segment.h"
#include "store/doc_codec.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

namespace xrayd::store {
namespace {

// Connection settings of the writer (page_size and auto_vacuum only take effect in a new file).
constexpr const char* kPragmas = R"sql(
PRAGMA page_size=16384;  -- new stores only (an existing file keeps its size): fewer splits, ~+15 % ingest
PRAGMA auto_vacuum=INCREMENTAL;
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
PRAGMA cache_size=-65536;
PRAGMA mmap_size=268435456;
PRAGMA temp_store=MEMORY;
PRAGMA wal_autocheckpoint=4000;  -- pages: checkpoint per ~64 MiB of WAL, not per 4 MiB
)sql";

constexpr int kSchemaVersion = 7;
constexpr int kRollupSchemaVersion = 4;  // graph_rollups: computed from the documents when migrating an older file
constexpr int64_t kMigrateChunkTraces = 2000;  // traces per transaction when migrating to schema 6

// Schema 7 (see the format in trace_store.h; its tables are schema 6's, the query indexes of
// trace_query.cc differ). Every statement is idempotent: a new file gets it all; the migration from
// schema 5 runs it after renaming the old tables out of the way.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
INSERT OR IGNORE INTO meta VALUES('schema_version', '7');
CREATE TABLE IF NOT EXISTS traces(
  tid INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, trace_time INTEGER NOT NULL, start_time REAL NOT NULL,
  end_time REAL NOT NULL, root_start REAL, root_end REAL, root_name_id INTEGER NOT NULL DEFAULT 0,
  root_origin_id INTEGER NOT NULL DEFAULT 0, url_id INTEGER NOT NULL DEFAULT 0, http_status INTEGER,
  http_method TEXT NOT NULL DEFAULT '', user_agent_id INTEGER NOT NULL DEFAULT 0, client_ip TEXT NOT NULL DEFAULT '',
  user TEXT NOT NULL DEFAULT '', has_error INTEGER NOT NULL DEFAULT 0, has_fault INTEGER NOT NULL DEFAULT 0,
  has_throttle INTEGER NOT NULL DEFAULT 0, revision INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS traces_by_trace_id ON traces(trace_id);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces(start_time);
CREATE INDEX IF NOT EXISTS traces_by_id_time ON traces(trace_time);
CREATE TABLE IF NOT EXISTS segments(
  tid INTEGER NOT NULL, id TEXT NOT NULL, parent_id TEXT NOT NULL, kind INTEGER NOT NULL,
  start_time REAL NOT NULL, in_progress INTEGER NOT NULL, dict INTEGER NOT NULL, doc BLOB NOT NULL);
-- A rowid table, rows appended in arrival order: SQLite fills appended rowid pages fully, while a
-- WITHOUT ROWID table (an index B-tree) splits them half full even in key order (measured: 290 vs
-- ~200 bytes per segment).
CREATE UNIQUE INDEX IF NOT EXISTS segments_by_key ON segments(tid, id);
CREATE TABLE IF NOT EXISTS dictionaries(id INTEGER PRIMARY KEY, dict BLOB NOT NULL, trained_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS services(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, UNIQUE(name, type));
CREATE TABLE IF NOT EXISTS annotations(
  tid INTEGER NOT NULL, key_id INTEGER NOT NULL, service_id INTEGER NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY(tid, key_id, service_id, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_services(
  tid INTEGER NOT NULL, service_id INTEGER NOT NULL, has_error INTEGER NOT NULL DEFAULT 0,
  has_fault INTEGER NOT NULL DEFAULT 0, has_throttle INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(tid, service_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS urls(id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS graph_rollups(
  minute INTEGER NOT NULL, kind INTEGER NOT NULL, from_name TEXT NOT NULL, from_type TEXT NOT NULL,
  to_name TEXT NOT NULL, to_type TEXT NOT NULL,
  ok INTEGER NOT NULL, error INTEGER NOT NULL, throttle INTEGER NOT NULL, fault INTEGER NOT NULL,
  total INTEGER NOT NULL, roots INTEGER NOT NULL, total_rt REAL NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
  hist BLOB NOT NULL,
  PRIMARY KEY(minute, kind, from_name, from_type, to_name, to_type)) WITHOUT ROWID;
)sql";

// The tables of schemas 2-5 that schema 6 replaces, as schema 5 declared them (a file of an older
// schema gets the rest by the upgrades below before it is migrated).
constexpr const char* kLegacySchema = R"sql(
CREATE TABLE IF NOT EXISTS dictionaries(id INTEGER PRIMARY KEY, dict BLOB NOT NULL, trained_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS graph_rollups(
  minute INTEGER NOT NULL, kind INTEGER NOT NULL, from_name TEXT NOT NULL, from_type TEXT NOT NULL,
  to_name TEXT NOT NULL, to_type TEXT NOT NULL,
  ok INTEGER NOT NULL, error INTEGER NOT NULL, throttle INTEGER NOT NULL, fault INTEGER NOT NULL,
  total INTEGER NOT NULL, roots INTEGER NOT NULL, total_rt REAL NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
  hist BLOB NOT NULL,
  PRIMARY KEY(minute, kind, from_name, from_type, to_name, to_type)) WITHOUT ROWID;
)sql";

// Schema 3 gave each service of a trace its own error/fault/throttle flags (for service(...) { fault }).
// A schema 2 file gets the columns, all 0: its older traces then only match on trace-level flags.
constexpr const char* kServiceFlagColumns[] = {"has_error", "has_fault", "has_throttle"};

// RAII prepared statement. A failed prepare or bind is remembered and returned by the next Step(),
// so a call site checks one result per execution.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { prepare_rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  int prepare_rc() const { return prepare_rc_; }
  sqlite3_stmt* get() { return s_; }
  // An empty view binds "" (a null data() would bind NULL).
  Stmt& Text(int i, std::string_view v) {
    return Bind(s_ ? sqlite3_bind_text(s_, i, NonNull(v), static_cast<int>(v.size()), SQLITE_TRANSIENT) : 0);
  }
  Stmt& Real(int i, double v) { return Bind(s_ ? sqlite3_bind_double(s_, i, v) : 0); }
  Stmt& Int(int i, int64_t v) { return Bind(s_ ? sqlite3_bind_int64(s_, i, v) : 0); }
  Stmt& Null(int i) { return Bind(s_ ? sqlite3_bind_null(s_, i) : 0); }
  Stmt& Blob(int i, std::string_view v) {
    return Bind(s_ ? sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) : 0);
  }
  Stmt& RealOrNull(int i, std::optional<double> v) { return v ? Real(i, *v) : Null(i); }
  // Bound without a copy: `v` must stay valid until the statement is reset (Run() or Reset()).
  Stmt& TextRef(int i, std::string_view v) {
    return Bind(s_ ? sqlite3_bind_text(s_, i, NonNull(v), static_cast<int>(v.size()), SQLITE_STATIC) : 0);
  }
  Stmt& BlobRef(int i, std::string_view v) {
    return Bind(s_ ? sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC) : 0);
  }

  // One step: SQLITE_ROW, SQLITE_DONE or an error code (the prepare's or a bind's first).
  int Step() {
    if (prepare_rc_ != SQLITE_OK) return prepare_rc_;
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(s_);
  }
  // Steps to the end (rows unread) and resets for reuse: SQLITE_DONE on success.
  int Run() {
    int rc;
    while ((rc = Step()) == SQLITE_ROW) {
    }
    Reset();
    return rc;
  }
  // Ready for new bindings (sqlite3_reset's return repeats the last step's, already checked).
  void Reset() {
    if (s_ == nullptr) return;
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    bind_rc_ = SQLITE_OK;
  }
  std::string ColText(int i) {
    const auto* t = sqlite3_column_text(s_, i);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, i)) : std::string();
  }

 private:
  static const char* NonNull(std::string_view v) { return v.data() ? v.data() : ""; }
  Stmt& Bind(int rc) {
    if (s_ == nullptr) return *this;
    if (bind_rc_ == SQLITE_OK && rc != SQLITE_OK) bind_rc_ = rc;
    return *this;
  }

  sqlite3_stmt* s_ = nullptr;
  int prepare_rc_ = SQLITE_OK;
  int bind_rc_ = SQLITE_OK;
};

bool IsRetryable(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_INTERRUPT:
    case SQLITE_PROTOCOL:
    case SQLITE_CANTOPEN: return true;
    default: return false;
  }
}

Error ErrorFor(sqlite3* db, int rc, const std::string& what) {
  // sqlite3_errmsg names the detail ("database or disk is full", "attempt to write a readonly
  // database") when it belongs to `rc`; otherwise the code's generic text.
  const char* detail = (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string msg = "trace store: " + what + ": " + detail + " (sqlite code " + std::to_string(rc) + ")";
  return IsRetryable(rc) ? Error::Retryable(std::move(msg)) : Error::Permanent(std::move(msg));
}

// What one batch adds to one trace: the documents of it that the segments table took (a new
// segment, or a replacement), folded so the trace's summary, services and annotations are written
// once per trace and batch rather than once per document (the same rows as document by document:
// bounds are min/max, flags OR, revision counts the documents, the last root document wins).
struct TraceDelta {
  double start = std::numeric_limits<double>::infinity();
  double end = -std::numeric_limits<double>::infinity();
  bool error = false, fault = false, throttle = false;
  int64_t documents = 0;
  const segment::Facts* root = nullptr;  // the batch's last root segment of the trace
  struct Flags {
    bool error = false, fault = false, throttle = false;
  };
  std::map<std::pair<std::string_view, std::string_view>, Flags> services;  // (name, type)
  std::set<std::tuple<std::string_view, std::string_view, std::string_view>> annotations;  // (service, key, value)

  void Add(const segment::Facts& f) {
    start = std::min(start, f.start_time);
    end = std::max(end, f.end_time.value_or(f.start_time));
    error |= f.error, fault |= f.fault, throttle |= f.throttle;
    ++documents;
    if (!f.independent_subsegment && f.parent_id.empty()) root = &f;
    // The service that sent the document (a segment, not an independent subsegment) and every one
    // it calls, each with its own flags.
    if (!f.independent_subsegment) Or(services[{f.name, f.origin}], f.own_error, f.own_fault, f.own_throttle);
    for (const auto& c : f.called_services) Or(services[{c.name, c.type}], c.error, c.fault, c.throttle);
    const std::string_view service = f.independent_subsegment ? std::string_view() : std::string_view(f.name);
    for (const auto& a : f.annotations) annotations.emplace(service, a.key, a.value_json);
  }

 private:
  static void Or(Flags& to, bool error, bool fault, bool throttle) {
    to.error |= error, to.fault |= fault, to.throttle |= throttle;
  }
};

}  // namespace

// The writer's memory of interned ids (names, services, URLs) and of the next trace key. Only a
// cache: cleared after a rolled-back transaction (which may have taken ids it remembers) and when
// retention deletes URLs, then filled again from the file. Used under the store's lock.
struct detail::WriteCache {
  // Looked up by string_view: a hit allocates nothing.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Ids = std::unordered_map<std::string, int64_t, Hash, std::equal_to<>>;
  Ids names, services, urls;  // services: name '\0' type
  int64_t next_tid = 0;  // 0: read max(tid) + 1 from the file first
  void Clear() {
    names.clear(), services.clear(), urls.clear();
    next_tid = 0;
  }
};

namespace {

constexpr size_t kMaxCachedUrls = 100000;  // distinct URLs can be unbounded; names and services are few

// The prepared statements of the writer's Appends, one method per table it writes, prepared once
// per store. Each returns the first failure as an Error; the caller's transaction then rolls
// everything back. Every statement is reset after its step (Stmt::Run), so none holds a lock or
// a snapshot between Appends. Used only inside TraceStore::WriteAll, under the store's lock, on
// its connection.
class Writer {
 public:
  Writer(sqlite3* db, detail::WriteCache& cache)
      : db_(db),
        cache_(cache),
        // A complete document is never replaced by an in-progress one for the same id.
        put_(db,
             "INSERT INTO segments(tid,id,parent_id,kind,start_time,in_progress,dict,doc) "
             "VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(tid,id) DO UPDATE SET "
             "parent_id=excluded.parent_id, kind=excluded.kind, start_time=excluded.start_time, "
             "in_progress=excluded.in_progress, doc=excluded.doc, dict=excluded.dict "
             "WHERE excluded.in_progress = 0 OR segments.in_progress = 1"),
        new_trace_(db,
                   "INSERT INTO traces(tid,trace_id,trace_time,start_time,end_time,has_error,has_fault,has_throttle,"
                   "revision,root_start,root_end,root_name_id,root_origin_id,url_id,http_status,http_method,user_agent_id,"
                   "client_ip,user) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)"),
        trace_(db,
               "UPDATE traces SET start_time=min(start_time,?2), end_time=max(end_time,?3), has_error=has_error|?4, "
               "has_fault=has_fault|?5, has_throttle=has_throttle|?6, revision=revision+?7 WHERE tid=?1 "
               "RETURNING start_time, end_time"),
        root_(db,
              "UPDATE traces SET root_start=?2, root_end=?3, root_name_id=?4, root_origin_id=?5, url_id=?6, "
              "http_status=?7, http_method=?8, user_agent_id=?9, client_ip=?10, user=?11 WHERE tid=?1"),
        ann_(db, "INSERT OR IGNORE INTO annotations(tid,key_id,service_id,value) VALUES(?1,?2,?3,?4)"),
        // A trace the batch creates has no rows yet, and TraceDelta holds each row once: no
        // conflict to resolve (a plain INSERT skips the upsert's extra search).
        ann_new_(db, "INSERT INTO annotations(tid,key_id,service_id,value) VALUES(?1,?2,?3,?4)"),
        svc_new_(db, "INSERT INTO trace_services(tid,service_id,has_error,has_fault,has_throttle) VALUES(?1,?2,?3,?4,?5)"),
        svc_(db,
             "INSERT INTO trace_services(tid,service_id,has_error,has_fault,has_throttle) "
             "VALUES(?1,?2,?3,?4,?5) ON CONFLICT(tid,service_id) DO UPDATE SET "
             "has_error=has_error|excluded.has_error, has_fault=has_fault|excluded.has_fault, "
             "has_throttle=has_throttle|excluded.has_throttle"),
        // An in-progress subsegment streamed on its own is superseded once its finished copy arrives
        // embedded in its parent: drop the stub so the trace is no longer partial.
        superseded_(db, "DELETE FROM segments WHERE tid=?1 AND id=?2 AND kind=1 AND in_progress=1"),
        name_get_(db, "SELECT id FROM names WHERE name=?1"),
        name_put_(db, "INSERT INTO names(name) VALUES(?1)"),
        service_get_(db, "SELECT id FROM services WHERE name=?1 AND type=?2"),
        service_put_(db, "INSERT INTO services(name,type) VALUES(?1,?2)"),
        // The distinct root URLs and their trigram index (store/trace_query.h: http.url CONTAINS).
        url_get_(db, "SELECT id FROM urls WHERE url=?1"),
        url_put_(db, "INSERT INTO urls(url) VALUES(?1)"),
        trigrams_(db, "INSERT INTO url_trigrams(rowid, url) VALUES(?1, ?2)") {}

  // Stores one valid document of trace `tid` (as text, dict 0, or compressed with dictionary
  // `dict`). *changed: false when it was an in-progress copy of a completed segment, ignored.
  Status PutSegment(int64_t tid, const segment::Facts& f, std::string_view doc, int64_t dict, bool* changed) {
    put_.Int(1, tid).TextRef(2, f.id).TextRef(3, f.parent_id).Int(4, f.independent_subsegment ? 1 : 0);
    put_.Real(5, f.start_time).Int(6, f.in_progress ? 1 : 0).Int(7, dict);
    if (dict == 0) put_.TextRef(8, doc);
    else put_.BlobRef(8, doc);
    if (auto st = Check(put_.Run(), "insert segment"); !st) return st;
    *changed = sqlite3_changes(db_) > 0;
    return OkStatus();
  }

  // Deletes the streamed in-progress stubs of the subsegments `f` carries complete. Only a trace
  // with a streamed subsegment stored or in its batch can have one (the caller knows which).
  Status DropSuperseded(int64_t tid, const segment::Facts& f) {
    for (const auto& id : f.embedded_complete_ids) {
      superseded_.Int(1, tid).TextRef(2, id);
      if (auto st = Check(superseded_.Run(), "drop superseded stub"); !st) return st;
    }
    return OkStatus();
  }

  // The trace's summary (a new row when `is_new`), root fields, services and annotations; raises
  // *longest to its span.
  Status PutTrace(int64_t tid, bool is_new, std::string_view trace_id, const TraceDelta& d, double* longest) {
    if (is_new) {
      if (auto st = InsertTrace(tid, trace_id, d); !st) return st;
      *longest = std::max(*longest, d.end - d.start);
    } else {
      if (auto st = UpdateTrace(tid, d, longest); !st) return st;
      if (d.root)
        if (auto st = UpdateRoot(tid, *d.root); !st) return st;
    }
    Stmt& svc = is_new ? svc_new_ : svc_;
    Stmt& ann = is_new ? ann_new_ : ann_;
    for (const auto& [key, flags] : d.services) {
      auto service = ServiceId(key.first, key.second);
      if (!service) return service.error();
      svc.Int(1, tid).Int(2, *service).Int(3, flags.error).Int(4, flags.fault).Int(5, flags.throttle);
      if (auto st = Check(svc.Run(), "insert service"); !st) return st;
    }
    for (const auto& [service, key, value] : d.annotations) {
      auto key_id = NameId(key);
      if (!key_id) return key_id.error();
      auto service_id = NameId(service);
      if (!service_id) return service_id.error();
      ann.Int(1, tid).Int(2, *key_id).Int(3, *service_id).TextRef(4, value);
      if (auto st = Check(ann.Run(), "insert annotation"); !st) return st;
    }
    return OkStatus();
  }

  // The first statement that failed to prepare, if any.
  int prepare_rc() const {
    for (const Stmt* s : {&put_, &new_trace_, &trace_, &root_, &ann_, &ann_new_, &svc_, &svc_new_, &superseded_, &name_get_, &name_put_,
                          &service_get_, &service_put_, &url_get_, &url_put_, &trigrams_})
      if (s->prepare_rc() != SQLITE_OK) return s->prepare_rc();
    return SQLITE_OK;
  }

 private:
  Status Check(int rc, const char* what) {
    if (rc == SQLITE_DONE) return OkStatus();
    return ErrorFor(db_, rc, what);
  }

  Status InsertTrace(int64_t tid, std::string_view trace_id, const TraceDelta& d) {
    new_trace_.Int(1, tid).TextRef(2, trace_id).Int(3, segment::TraceIdEpoch(trace_id)).Real(4, d.start).Real(5, d.end);
    new_trace_.Int(6, d.error).Int(7, d.fault).Int(8, d.throttle).Int(9, d.documents);
    if (auto st = BindRoot(new_trace_, 10, d.root); !st) return st;
    return Check(new_trace_.Run(), "insert trace summary");
  }

  Status UpdateTrace(int64_t tid, const TraceDelta& d, double* longest) {
    trace_.Int(1, tid).Real(2, d.start).Real(3, d.end);
    trace_.Int(4, d.error).Int(5, d.fault).Int(6, d.throttle).Int(7, d.documents);
    int rc = trace_.Step();
    if (rc == SQLITE_ROW) {
      *longest = std::max(*longest, sqlite3_column_double(trace_.get(), 1) - sqlite3_column_double(trace_.get(), 0));
      rc = trace_.Run();  // the RETURNING row is read; finish the statement
    } else {
      trace_.Reset();
    }
    return Check(rc, "update trace summary");
  }

  Status UpdateRoot(int64_t tid, const segment::Facts& f) {
    root_.Int(1, tid);
    if (auto st = BindRoot(root_, 2, &f); !st) return st;
    return Check(root_.Run(), "update trace root");
  }

  // The root fields (root_start .. user, 10 parameters from `first`) of `f`, or their defaults.
  Status BindRoot(Stmt& s, int first, const segment::Facts* f) {
    if (!f) {
      s.Null(first).Null(first + 1).Int(first + 2, 0).Int(first + 3, 0).Int(first + 4, 0).Null(first + 5);
      s.Text(first + 6, "").Int(first + 7, 0).Text(first + 8, "").Text(first + 9, "");
      return OkStatus();
    }
    auto url = UrlId(f->http_url);
    if (!url) return url.error();
    auto name = OptionalNameId(f->name), origin = OptionalNameId(f->origin), agent = OptionalNameId(f->user_agent);
    if (!name || !origin || !agent) return (!name ? name : !origin ? origin : agent).error();
    s.Real(first, f->start_time).RealOrNull(first + 1, f->end_time).Int(first + 2, *name);
    s.Int(first + 3, *origin).Int(first + 4, *url);
    if (f->http_status) s.Int(first + 5, *f->http_status);
    else s.Null(first + 5);
    s.TextRef(first + 6, f->http_method).Int(first + 7, *agent).TextRef(first + 8, f->client_ip);
    s.TextRef(first + 9, f->user);
    return OkStatus();
  }

  // The id of `key` in an interning table: from `cache`, else its row (get), else a new row (put;
  // `added` runs after it, e.g. to index a new URL). `bind` binds the key to get/put.
  template <typename Bind, typename Added>
  Result<int64_t> Intern(detail::WriteCache::Ids& cache, std::string_view key, Stmt& get, Stmt& put,
                         const Bind& bind, const Added& added, const char* what) {
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    bind(get);
    int rc = get.Step();
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(get.get(), 0) : 0;
    get.Reset();
    if (rc == SQLITE_DONE) {
      bind(put);
      if (rc = put.Run(); rc != SQLITE_DONE) return ErrorFor(db_, rc, what);
      id = sqlite3_last_insert_rowid(db_);
      if (auto st = added(id); !st) return st.error();
    } else if (rc != SQLITE_ROW) {
      return ErrorFor(db_, rc, what);
    }
    cache.emplace(std::string(key), id);
    return id;
  }

  Result<int64_t> NameId(std::string_view name) {
    auto bind = [&](Stmt& s) { s.TextRef(1, name); };
    return Intern(cache_.names, name, name_get_, name_put_, bind, [](int64_t) { return OkStatus(); },
                  "intern name");
  }

  // names.id of a root field, 0 for "".
  Result<int64_t> OptionalNameId(std::string_view name) {
    if (name.empty()) return int64_t{0};
    return NameId(name);
  }

  Result<int64_t> ServiceId(std::string_view name, std::string_view type) {
    service_key_.assign(name);
    service_key_.push_back('\0');
    service_key_.append(type);
    auto bind = [&](Stmt& s) { s.TextRef(1, name).TextRef(2, type); };
    return Intern(cache_.services, service_key_, service_get_, service_put_, bind,
                  [](int64_t) { return OkStatus(); }, "intern service");
  }

  // A root URL's id (0: none); a URL not seen before goes into urls and its trigram index.
  Result<int64_t> UrlId(const std::string& url) {
    if (url.empty()) return int64_t{0};
    if (cache_.urls.size() >= kMaxCachedUrls) cache_.urls.clear();
    auto bind = [&](Stmt& s) { s.TextRef(1, url); };
    auto index = [&](int64_t id) {
      trigrams_.Int(1, id).TextRef(2, url);
      return Check(trigrams_.Run(), "index url");
    };
    return Intern(cache_.urls, url, url_get_, url_put_, bind, index, "insert url");
  }

  sqlite3* const db_;
  detail::WriteCache& cache_;
  std::string service_key_;  // ServiceId's lookup key, reused
  Stmt put_, new_trace_, trace_, root_, ann_, ann_new_, svc_new_, svc_, superseded_, name_get_, name_put_, service_get_, service_put_,
      url_get_, url_put_, trigrams_;
};

constexpr const char* kDocsOfTrace = "SELECT doc, dict FROM segments WHERE tid=?1";


constexpr const char* kRollupKey =
    "minute=?1 AND kind=?2 AND from_name=?3 AND from_type=?4 AND to_name=?5 AND to_type=?6";
constexpr const char* kRollupColumns = "ok, error, throttle, fault, total, roots, total_rt, start, end, hist";

void BindRollupKey(Stmt& s, const segment::RollupKey& k) {
  s.Int(1, k.minute).Int(2, static_cast<int>(k.kind)).Text(3, k.from.name).Text(4, k.from.type);
  s.Text(5, k.to.name).Text(6, k.to.type);
}

// A rollup row's statistics from columns first.. of kRollupColumns; false when its histogram is damaged.
bool ReadRollupStats(sqlite3_stmt* raw, int first, segment::Stats* out) {
  auto i64 = [&](int i) { return sqlite3_column_int64(raw, first + i); };
  out->ok = i64(0), out->error = i64(1), out->throttle = i64(2), out->fault = i64(3);
  out->total = i64(4), out->roots = i64(5);
  out->total_response_time = sqlite3_column_double(raw, first + 6);
  out->start = sqlite3_column_double(raw, first + 7);
  out->end = sqlite3_column_double(raw, first + 8);
  const auto* blob = static_cast<const char*>(sqlite3_column_blob(raw, first + 9));
  return segment::Stats::DecodeHistogram(
      std::string_view(blob ? blob : "", static_cast<size_t>(sqlite3_column_bytes(raw, first + 9))), &out->histogram);
}

bool IsZero(const segment::Stats& d) {
  return d.ok == 0 && d.error == 0 && d.throttle == 0 && d.fault == 0 && d.total == 0 && d.roots == 0 &&
         d.total_response_time == 0 && d.histogram.empty();
}

// The statements that read, write and delete one graph_rollups row.
struct RollupStatements {
  explicit RollupStatements(sqlite3* db)
      : get(db, (std::string("SELECT ") + kRollupColumns + " FROM graph_rollups WHERE " + kRollupKey).c_str()),
        put(db, "INSERT OR REPLACE INTO graph_rollups VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"),
        del(db, (std::string("DELETE FROM graph_rollups WHERE ") + kRollupKey).c_str()) {}
  Stmt get, put, del;
};

// Adds `delta` to the graph_rollups rows (read, merge, write back; a row counting nothing goes).
Status ApplyRollup(sqlite3* db, RollupStatements& rs, const segment::Rollup& delta) {
  Stmt &get = rs.get, &put = rs.put, &del = rs.del;
  for (const auto& [key, d] : delta) {
    if (IsZero(d)) continue;  // e.g. a call counted out and in again unchanged
    segment::Stats row;
    BindRollupKey(get, key);
    int rc = get.Step();
    if (rc == SQLITE_ROW && !ReadRollupStats(get.get(), 0, &row)) rc = SQLITE_CORRUPT;
    get.Reset();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return ErrorFor(db, rc, "read graph rollup");
    row.Merge(d);
    if (row.total <= 0) {
      BindRollupKey(del, key);
      if (rc = del.Run(); rc != SQLITE_DONE) return ErrorFor(db, rc, "delete graph rollup");
      continue;
    }
    BindRollupKey(put, key);
    put.Int(7, row.ok).Int(8, row.error).Int(9, row.throttle).Int(10, row.fault).Int(11, row.total);
    put.Int(12, row.roots).Real(13, row.total_response_time).Real(14, row.start).Real(15, row.end);
    const std::string hist = row.EncodeHistogram();
    if (sqlite3_bind_blob(put.get(), 16, hist.data(), static_cast<int>(hist.size()), SQLITE_TRANSIENT) != SQLITE_OK)
      return ErrorFor(db, SQLITE_NOMEM, "bind graph rollup");
    if (rc = put.Run(); rc != SQLITE_DONE) return ErrorFor(db, rc, "write graph rollup");
  }
  return OkStatus();
}

// The same with statements prepared for this call (migration, retention).
Status ApplyRollup(sqlite3* db, const segment::Rollup& delta) {
  RollupStatements rs(db);
  return ApplyRollup(db, rs, delta);
}

// The document in columns `col` (doc) and `col + 1` (dict) of a segments row: text as stored, or
// decompressed with its dictionary (looked up, or loaded from `db` in the caller's snapshot).
Result<std::string> ReadDoc(sqlite3* db, sqlite3_stmt* raw, int col, Dictionaries& dicts) {
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(raw, col));
  const std::string_view stored(bytes ? bytes : "", static_cast<size_t>(sqlite3_column_bytes(raw, col)));
  const int64_t id = sqlite3_column_int64(raw, col + 1);
  if (id == 0) return std::string(stored);
  std::shared_ptr<const Dict> dict = dicts.Get(id);
  if (!dict) {
    Stmt load(db, "SELECT dict FROM dictionaries WHERE id=?1");
    load.Int(1, id);
    const int rc = load.Step();
    if (rc != SQLITE_ROW) return ErrorFor(db, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "load dictionary");
    const auto* d = static_cast<const char*>(sqlite3_column_blob(load.get(), 0));
    dict = Dict::Make(id, std::string(d ? d : "", static_cast<size_t>(sqlite3_column_bytes(load.get(), 0))));
    if (!dict) return ErrorFor(db, SQLITE_CORRUPT, "load dictionary");
    dicts.Add(dict);
  }
  return dict->Decompress(stored);
}

// What one trace's stored documents count in the rollups, added to `rollup` with `sign`.
// `docs_of` is kDocsOfTrace.
Status RollupOfStoredTrace(sqlite3* db, Stmt& docs_of, Dictionaries& dicts, segment::Parser& parser, int64_t tid,
                           int sign, segment::Rollup* rollup) {
  std::vector<std::string> docs;
  docs_of.Int(1, tid);
  int rc;
  while ((rc = docs_of.Step()) == SQLITE_ROW) {
    auto doc = ReadDoc(db, docs_of.get(), 0, dicts);
    if (!doc) {
      docs_of.Reset();
      return doc.error();
    }
    docs.push_back(std::move(*doc));
  }
  docs_of.Reset();
  if (rc != SQLITE_DONE) return ErrorFor(db, rc, "read a trace's documents");
  // Counted as the readers show the trace: a load balancer's segment (src/lb/, arriving minutes
  // later) puts the first service under it, so its recount moves client -> service to client -> LB
  // -> service.
  docs = segment::JoinLoadBalancer(std::move(docs));
  std::vector<segment::Facts> facts;
  facts.reserve(docs.size());
  for (const auto& doc : docs) {
    if (!parser.FactsOf(doc, &facts.emplace_back()).ok()) facts.pop_back();  // stored: valid when written
  }
  std::vector<const segment::Facts*> trace;
  for (const auto& f : facts) trace.push_back(&f);
  segment::AddToRollup(segment::TraceCalls(trace), sign, rollup);
  return OkStatus();
}

// This thread's parser, kept between Appends: a Parser holds simdjson's buffers for a 64 KB
// document (hundreds of KB), which cost an mmap, page faults and a munmap when made per Append.
segment::Parser& ThreadParser() {
  thread_local segment::Parser parser;
  return parser;
}

}  // namespace

// The writer's statements (see Writer), kept by the store between Appends.
struct detail::WriteStatements {
  WriteStatements(sqlite3* db, WriteCache& cache)
      : writer(db, cache),
        rollups(db),
        exists(db, "SELECT tid FROM traces WHERE trace_id=?1"),
        docs_of(db, kDocsOfTrace),
        next_tid(db, "SELECT coalesce(max(tid), 0) + 1 FROM traces"),
        save_longest(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('longest_trace_seconds', ?1)") {}
  int prepare_rc() const {
    if (writer.prepare_rc() != SQLITE_OK) return writer.prepare_rc();
    for (const Stmt* s : {&rollups.get, &rollups.put, &rollups.del, &exists, &docs_of, &next_tid, &save_longest})
      if (s->prepare_rc() != SQLITE_OK) return s->prepare_rc();
    return SQLITE_OK;
  }
  Writer writer;
  RollupStatements rollups;
  Stmt exists, docs_of, next_tid, save_longest;
};

struct TraceStore::BatchTrace {
  std::string_view trace_id;
  std::vector<size_t> docs;          // indexes into the batch's valid documents, in batch order
  std::vector<segment::Call> calls;  // as the batch alone shows them
  bool repeats = false;              // a document id repeats in the batch, or an independent subsegment
  // What its documents add to the trace's summary when every one of them is stored (not an
  // in-progress copy of a completed segment, ignored): built before the lock, used when so.
  TraceDelta delta;
  // Set under the lock (RollupBefore):
  int64_t tid = 0;
  bool is_new = false;     // the batch creates the trace's row
  bool recompute = false;  // its calls are counted from its stored documents (see RollupBefore)
};

Result<std::unique_ptr<TraceStore>> TraceStore::Open(const StoreOptions& options) {
  // SQLite's memory statistics take a global mutex around every allocation (~2 % of an Append's
  // CPU, profiled); nothing here reads them. Only possible before SQLite initializes: later (a
  // test's hook, a second store) the call fails harmlessly with SQLITE_MISUSE.
  static const bool no_memstatus = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  (void)no_memstatus;
  if (options.index_bucket_shift < 0 || options.index_bucket_shift > 30)
    return Error::InvalidArgument("trace store: index_bucket_shift " + std::to_string(options.index_bucket_shift) +
                                  " is outside 0..30");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Error::Io("cannot create data dir " + options.data_dir + ": " + ec.message());
  const std::string path = options.data_dir + "/traces.db";
  sqlite3* db = nullptr;
  if (const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                     nullptr);
      rc != SQLITE_OK) {
    Error e = ErrorFor(db, rc, "cannot open " + path);
    sqlite3_close(db);
    return e;
  }
  sqlite3_extended_result_codes(db, 1);  // errors name their cause (SQLITE_IOERR_WRITE, ...)
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  std::unique_ptr<TraceStore> store(new TraceStore(db, options, path));
  // Schema creation and upgrade happen here, on the writer, before any reader connection opens.
  MutexLock lock(store->mu_);
  if (auto st = store->Exec(kPragmas); !st) return st.error();
  if (auto st = store->Upgrade(); !st) return st.error();
  if (auto st = EnsureQueryIndexes(store->db_, options.index_bucket_shift); !st) return st.error();  // trace_query.h
  if (auto st = store->LoadDictionaries(); !st) return st.error();
  if (auto st = store->LoadLongestTrace(); !st) return st.error();
  return store;
}

TraceStore::TraceStore(sqlite3* db, StoreOptions options, std::string path)
    : options_(std::move(options)), path_(std::move(path)), db_(db), cache_(std::make_unique<detail::WriteCache>()) {}

Result<int> TraceStore::SchemaVersion() {
  Stmt tables(db_,
              "SELECT (SELECT count(*) FROM sqlite_master WHERE name='meta'), "
              "(SELECT count(*) FROM sqlite_master WHERE name IN ('segments', 'v5_segments'))");
  int rc = tables.Step();
  if (rc != SQLITE_ROW) return SqlError(rc, "read schema");
  const bool has_meta = sqlite3_column_int(tables.get(), 0) > 0, has_segments = sqlite3_column_int(tables.get(), 1) > 0;
  if (!has_meta) return has_segments ? 2 : 0;  // schema 2 kept its version in meta too; be lenient
  Stmt version(db_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key='schema_version'");
  rc = version.Step();
  if (rc == SQLITE_ROW) return sqlite3_column_int(version.get(), 0);
  if (rc != SQLITE_DONE) return SqlError(rc, "read schema version");
  return has_segments ? 2 : 0;
}

bool TraceStore::HasTable(const char* name) {
  Stmt s(db_, "SELECT 1 FROM sqlite_master WHERE name=?1");
  s.Text(1, name);
  return s.Step() == SQLITE_ROW;
}

// New file: schema 7. Schema 7: nothing to do. Schemas 2-5: their own upgrades (columns added in
// place), then the migration to 6 (resumed where it stopped if a previous open was interrupted),
// then 6 -> 7 (its indexes only).
Status TraceStore::Upgrade() {
  auto version = SchemaVersion();
  if (!version) return version.error();
  if (*version > kSchemaVersion)
    return Report(Error::Permanent("trace store: " + path_ + " has schema version " + std::to_string(*version) +
                                   ", newer than this xrayd's (" + std::to_string(kSchemaVersion) +
                                   "): open it with the xrayd that wrote it, or use another --data-dir"));
  if (*version == 0 || *version == kSchemaVersion) return Exec(kSchema);
  if (!HasTable("v5_traces")) {  // not begun: bring the file to schema 5's tables first
    if (auto st = Exec(kLegacySchema); !st) return st;
    if (auto st = AddServiceFlagColumns(); !st) return st;
    if (auto st = AddDictColumn(); !st) return st;
  }
  if (*version < 6)
    if (auto st = MigrateToV6(); !st) return st;
  return MigrateToV7();
}

namespace {

// Migration 6 -> 7 (one transaction): the indexes ordered by value alone go; EnsureQueryIndexes
// (trace_query.cc) then builds their bucketed successors, for the shift it records in meta (none
// recorded yet: built whatever the shift). Interrupted before that build, the next open builds them.
constexpr const char* kDropUnbucketed = R"sql(
DROP INDEX IF EXISTS annotations_by_value;
DROP INDEX IF EXISTS traces_by_url;
DELETE FROM meta WHERE key='index_bucket_shift';
UPDATE meta SET value='7' WHERE key='schema_version';
)sql";

}  // namespace

Status TraceStore::MigrateToV7() {
  XLOG_INFO("Trace store: migrating to schema 7 (time-bucketed annotation and URL indexes)");
  if (auto st = Exec("BEGIN IMMEDIATE"); !st) return st;
  return Finish(Exec(kDropUnbucketed));
}

namespace {

// Migration 5 -> 6, step 1 (one transaction): the old tables renamed v5_*, their indexes and the
// URL index dropped (rebuilt for schema 6), schema 6's tables created.
constexpr const char* kRenameLegacy = R"sql(
DROP TRIGGER IF EXISTS urls_to_trigrams;
DROP TRIGGER IF EXISTS traces_url_insert;
DROP TRIGGER IF EXISTS traces_url_update;
DROP INDEX IF EXISTS traces_by_start;
DROP INDEX IF EXISTS traces_by_id_time;
DROP INDEX IF EXISTS annotations_by_value;
DROP INDEX IF EXISTS trace_services_by_name;
DROP INDEX IF EXISTS trace_services_error;
DROP INDEX IF EXISTS trace_services_fault;
DROP INDEX IF EXISTS trace_services_throttle;
DROP INDEX IF EXISTS traces_by_url;
DROP INDEX IF EXISTS traces_error_by_start;
DROP INDEX IF EXISTS traces_fault_by_start;
DROP INDEX IF EXISTS traces_throttle_by_start;
DROP INDEX IF EXISTS traces_error_by_id_time;
DROP INDEX IF EXISTS traces_fault_by_id_time;
DROP INDEX IF EXISTS traces_throttle_by_id_time;
DROP TABLE IF EXISTS url_trigrams;
DROP TABLE IF EXISTS urls;
ALTER TABLE traces RENAME TO v5_traces;
ALTER TABLE segments RENAME TO v5_segments;
ALTER TABLE annotations RENAME TO v5_annotations;
ALTER TABLE trace_services RENAME TO v5_trace_services;
INSERT OR REPLACE INTO meta VALUES('migrate_after', '');
)sql";

// Step 2, per chunk (one transaction each): the next ?2 traces after trace id ?1 get keys from ?3
// on, with their segments, annotations, services and URL; meta.migrate_after says where to resume.
// Every join starts from the chunk's new traces rows (CROSS JOIN fixes that order: without
// statistics SQLite chose to scan all of v5_annotations and v5_trace_services per chunk, which
// made a 300,000-trace file take 12 minutes).
constexpr const char* kMigrateChunk[] = {
    "INSERT OR IGNORE INTO urls(url) SELECT http_url FROM (SELECT http_url FROM v5_traces WHERE trace_id > ?1 "
    "ORDER BY trace_id LIMIT ?2) WHERE http_url != ''",
    "INSERT OR IGNORE INTO names(name) SELECT value FROM (SELECT root_name, root_origin, user_agent FROM v5_traces "
    "WHERE trace_id > ?1 ORDER BY trace_id LIMIT ?2) c, json_each(json_array(c.root_name, c.root_origin, "
    "c.user_agent)) WHERE value != ''",
    "INSERT INTO traces(trace_id, trace_time, start_time, end_time, root_start, root_end, root_name_id, "
    "root_origin_id, url_id, http_status, http_method, user_agent_id, client_ip, user, has_error, has_fault, "
    "has_throttle, revision) "
    "SELECT trace_id, trace_time, start_time, end_time, root_start, root_end, "
    "coalesce((SELECT id FROM names WHERE name = v.root_name AND v.root_name != ''), 0), "
    "coalesce((SELECT id FROM names WHERE name = v.root_origin AND v.root_origin != ''), 0), "
    "coalesce((SELECT id FROM urls WHERE url = v.http_url AND v.http_url != ''), 0), http_status, http_method, "
    "coalesce((SELECT id FROM names WHERE name = v.user_agent AND v.user_agent != ''), 0), "
    "client_ip, user, has_error, has_fault, has_throttle, revision FROM v5_traces v WHERE trace_id > ?1 "
    "ORDER BY trace_id LIMIT ?2",
    "INSERT INTO segments(tid, id, parent_id, kind, start_time, in_progress, dict, doc) "
    "SELECT t.tid, s.id, s.parent_id, s.kind, s.start_time, s.in_progress, s.dict, s.doc "
    "FROM traces t JOIN v5_segments s ON s.trace_id = t.trace_id WHERE t.tid >= ?3",
    "INSERT OR IGNORE INTO names(name) SELECT a.key FROM traces t JOIN v5_annotations a ON a.trace_id = t.trace_id "
    "WHERE t.tid >= ?3 UNION SELECT a.service FROM traces t JOIN v5_annotations a ON a.trace_id = t.trace_id "
    "WHERE t.tid >= ?3",
    "INSERT OR IGNORE INTO annotations(tid, key_id, service_id, value) SELECT t.tid, k.id, n.id, a.value "
    "FROM traces t CROSS JOIN v5_annotations a ON a.trace_id = t.trace_id JOIN names k ON k.name = a.key "
    "JOIN names n ON n.name = a.service WHERE t.tid >= ?3",
    "INSERT OR IGNORE INTO services(name, type) SELECT ts.name, ts.type FROM traces t "
    "JOIN v5_trace_services ts ON ts.trace_id = t.trace_id WHERE t.tid >= ?3",
    "INSERT OR IGNORE INTO trace_services(tid, service_id, has_error, has_fault, has_throttle) "
    "SELECT t.tid, sv.id, ts.has_error, ts.has_fault, ts.has_throttle FROM traces t "
    "CROSS JOIN v5_trace_services ts ON ts.trace_id = t.trace_id JOIN services sv ON sv.name = ts.name AND sv.type = ts.type "
    "WHERE t.tid >= ?3",
    "UPDATE meta SET value = coalesce((SELECT max(trace_id) FROM traces WHERE tid >= ?3), value) "
    "WHERE key = 'migrate_after'",
};

// Step 3 (one transaction, with the rollups of a file older than schema 4 computed in it).
constexpr const char* kDropLegacy = R"sql(
DROP TABLE v5_segments;
DROP TABLE v5_traces;
DROP TABLE v5_annotations;
DROP TABLE v5_trace_services;
DELETE FROM meta WHERE key='migrate_after';
)sql";

// The row count of `table` (a full count: for the migration's progress only).
Result<int64_t> CountRows(sqlite3* db, const char* table) {
  Stmt count(db, (std::string("SELECT count(*) FROM ") + table).c_str());
  const int rc = count.Step();
  if (rc != SQLITE_ROW) return ErrorFor(db, rc, std::string("migrate: count ") + table);
  return sqlite3_column_int64(count.get(), 0);
}

// The migration's progress in the log: copied, total, rate and time left, at most every
// kEverySeconds (a large file takes minutes, and the store answers nothing meanwhile).
class MigrationProgress {
 public:
  static constexpr double kEverySeconds = 5;
  MigrationProgress(int64_t total, int64_t done) : total_(total), done_(done), first_(done) {}
  void Copied(int64_t n) {
    done_ += n;
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_).count() < kEverySeconds) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = static_cast<double>(done_ - first_) / std::max(seconds, 1e-3);
    XLOG_INFO("Trace store: migrating to schema 6: {} of {} traces copied ({:.0f} traces/s, about {:.0f} s left)",
              done_, total_, rate, static_cast<double>(std::max<int64_t>(total_ - done_, 0)) / std::max(rate, 1.0));
  }

 private:
  const int64_t total_;
  int64_t done_;
  const int64_t first_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

}  // namespace

Status TraceStore::MigrateToV6() {
  if (!HasTable("v5_traces")) {
    if (auto st = Exec("BEGIN IMMEDIATE"); !st) return st;
    Status st = Exec(kRenameLegacy);
    if (st) st = Exec(kSchema);
    if (st = Finish(std::move(st)); !st) return st;
  }
  auto total = CountRows(db_, "v5_traces");
  auto done = CountRows(db_, "traces");  // copied by an interrupted earlier run, if any
  if (!total || !done) return !total ? total.error() : done.error();
  XLOG_INFO("Trace store: migrating {} traces to schema 6 (integer trace keys, {} already copied), {} per transaction",
            *total, *done, kMigrateChunkTraces);
  int64_t traces = 0;
  MigrationProgress progress(*total, *done);
  for (;;) {
    int64_t copied = 0;
    if (auto st = Exec("BEGIN IMMEDIATE"); !st) return st;
    if (auto st = Finish(MigrateChunk(&copied)); !st) return st;
    traces += copied;
    if (copied == 0) break;
    progress.Copied(copied);
  }
  if (auto st = Exec("BEGIN IMMEDIATE"); !st) return st;
  auto version = SchemaVersion();
  Status st = version ? Exec(kDropLegacy) : Status(version.error());
  if (st && *version < kRollupSchemaVersion) {
    XLOG_INFO("Trace store: schema {}: computing per-minute graph rollups from the stored traces", *version);
    st = ComputeAllRollups();
  }
  if (st) st = Exec("UPDATE meta SET value='6' WHERE key='schema_version'");
  if (st = Finish(std::move(st)); !st) return st;
  XLOG_INFO("Trace store: schema 6: {} traces migrated in this run", traces);
  // Best effort: the old tables' pages go back to the file system now, else at the next size sweep,
  // and the WAL the copy grew (about the file's size) is emptied now rather than at shutdown.
  if (auto vacuum = Exec("PRAGMA incremental_vacuum"); !vacuum) XLOG_WARN("{}", vacuum.error().message);
  if (auto wal = Exec("PRAGMA wal_checkpoint(TRUNCATE)"); !wal) XLOG_WARN("{}", wal.error().message);
  return OkStatus();
}

Status TraceStore::MigrateChunk(int64_t* copied) {
  Stmt next(db_, "SELECT coalesce(max(tid), 0) + 1, (SELECT value FROM meta WHERE key='migrate_after') FROM traces");
  int rc = next.Step();
  if (rc != SQLITE_ROW) return SqlError(rc, "migrate: read progress");
  const int64_t first = sqlite3_column_int64(next.get(), 0);
  const std::string after = next.ColText(1);
  for (const char* sql : kMigrateChunk) {
    Stmt s(db_, sql);
    auto index = [&](const char* name) { return s.get() ? sqlite3_bind_parameter_index(s.get(), name) : 0; };
    if (const int i = index("?1"); i > 0) s.Text(i, after);
    if (const int i = index("?2"); i > 0) s.Int(i, kMigrateChunkTraces);
    if (const int i = index("?3"); i > 0) s.Int(i, first);
    if (rc = s.Run(); rc != SQLITE_DONE) return SqlError(rc, "migrate to schema 6");
    if (std::string_view(sql).starts_with("INSERT INTO traces")) *copied = sqlite3_changes(db_);
  }
  return OkStatus();
}

TraceStore::~TraceStore() {
  {
    MutexLock lock(pool_mu_);
    // Every reader is idle: no call may be in flight while the store is destroyed.
    for (sqlite3* r : idle_) sqlite3_close(r);
    idle_.clear();
  }
  MutexLock lock(mu_);
  stmts_.reset();  // finalized before their connection closes
  sqlite3_close(db_);
}

Result<detail::WriteStatements*> TraceStore::Statements() {
  if (stmts_) return stmts_.get();
  auto stmts = std::make_unique<detail::WriteStatements>(db_, *cache_);
  if (const int rc = stmts->prepare_rc(); rc != SQLITE_OK) return SqlError(rc, "prepare append");
  stmts_ = std::move(stmts);
  return stmts_.get();
}

namespace {

// Per reader: a quarter of the writer's page cache, temp tables in memory, and the whole file
// mapped (SQLite clamps the size to its compile-time limit, 2 GiB in Debian's build). The mapping
// matters more than the cache: a commit by the writer empties every reader's page cache at its
// next read, so under ingest each read starts cold, and a page outside the mapping is then a
// pread() of 16 KiB into that cache, a page inside it a pointer (the OS page cache is shared).
// So 8 MiB each: eight readers (StoreOptions::readers) hold at most 64 MiB.
constexpr const char* kReaderPragmas =
    "PRAGMA mmap_size=1099511627776; PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY;";

}  // namespace

Result<sqlite3*> TraceStore::OpenReader() {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_extended_result_codes(db, 1);
    // A reader waits only for WAL recovery or a WAL restart in progress, never for a transaction.
    sqlite3_busy_timeout(db, options_.busy_timeout_ms);
    rc = sqlite3_exec(db, kReaderPragmas, nullptr, nullptr, nullptr);
  }
  if (rc == SQLITE_OK) return db;
  Error e = ErrorFor(db, rc, "cannot open reader on " + path_);
  sqlite3_close(db);
  return Report(std::move(e));
}

Result<sqlite3*> TraceStore::TakeReader() {
  const int max_readers = std::max(1, options_.readers);
  {
    MutexLock lock(pool_mu_);
    // The predicate runs inside Wait, with pool_mu_ held.
    lock.Wait(reader_returned_, [&]() XRAYD_NO_THREAD_SAFETY_ANALYSIS {
      return !idle_.empty() || readers_open_ < max_readers;
    });
    if (!idle_.empty()) {
      sqlite3* db = idle_.back();
      idle_.pop_back();
      return db;
    }
    ++readers_open_;  // this call opens one (outside the lock: opening reads the file)
  }
  auto db = OpenReader();
  if (!db) {
    MutexLock lock(pool_mu_);
    --readers_open_;
    reader_returned_.notify_one();
  }
  return db;
}

void TraceStore::ReturnReader(sqlite3* db) {
  MutexLock lock(pool_mu_);
  idle_.push_back(db);
  reader_returned_.notify_one();
}

class TraceStore::Reader {
 public:
  Reader(TraceStore& store, sqlite3* db) : store_(store), db_(db) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  // Ends the read transaction (releasing its snapshot, so checkpoints can pass it) and returns the
  // connection to the pool. Statements on it must be finalized or reset by now.
  ~Reader() {
    if (!sqlite3_get_autocommit(db_) && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      XLOG_WARN("Trace store: ending a read transaction: {}", sqlite3_errmsg(db_));
      if (sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr) != SQLITE_OK) {
        // Still in a transaction: pooling it would pin an old snapshot. Drop the connection.
        XLOG_ERROR("Trace store: dropping a reader stuck in a transaction: {}", sqlite3_errmsg(db_));
        sqlite3_close(db_);
        MutexLock lock(store_.pool_mu_);
        --store_.readers_open_;
        store_.reader_returned_.notify_one();
        return;
      }
    }
    store_.ReturnReader(db_);
  }
  sqlite3* db() const { return db_; }

 private:
  TraceStore& store_;
  sqlite3* const db_;
};

Result<std::unique_ptr<TraceStore::Reader>> TraceStore::BeginRead() {
  auto db = TakeReader();
  if (!db) return db.error();
  auto reader = std::make_unique<Reader>(*this, *db);
  // Deferred: the snapshot is taken by the first SELECT and held until ~Reader.
  if (const int rc = sqlite3_exec(*db, "BEGIN", nullptr, nullptr, nullptr); rc != SQLITE_OK)
    return Report(ErrorFor(*db, rc, "begin read"));
  return reader;
}

Status TraceStore::Read(const std::function<Status(sqlite3* db)>& read) {
  auto reader = BeginRead();
  if (!reader) return reader.error();
  return read((*reader)->db());
}

Status TraceStore::LoadLongestTrace() {
  Stmt longest(db_, "SELECT value FROM meta WHERE key='longest_trace_seconds'");
  int rc = longest.Step();
  if (rc == SQLITE_ROW) {
    longest_trace_seconds_ = sqlite3_column_double(longest.get(), 0);
    return OkStatus();
  }
  if (rc != SQLITE_DONE) return SqlError(rc, "load longest trace");
  // A store written before this was kept: measure it once.
  Stmt measure(db_, "SELECT coalesce(max(end_time - start_time), 0) FROM traces");
  rc = measure.Step();
  if (rc != SQLITE_ROW) return SqlError(rc, "measure longest trace");
  longest_trace_seconds_ = sqlite3_column_double(measure.get(), 0);
  // Kept where readers look for it (DocumentsInRange reads it in its own snapshot).
  Stmt save(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('longest_trace_seconds', ?1)");
  save.Real(1, longest_trace_seconds_);
  if (rc = save.Run(); rc != SQLITE_DONE) return SqlError(rc, "save longest trace");
  return OkStatus();
}

Status TraceStore::AddServiceFlagColumns() {
  std::set<std::string> have;
  Stmt info(db_, "PRAGMA table_info(trace_services)");
  int rc;
  while ((rc = info.Step()) == SQLITE_ROW) have.insert(info.ColText(1));
  if (rc != SQLITE_DONE) return SqlError(rc, "read schema");
  for (const char* column : kServiceFlagColumns) {
    if (have.count(column)) continue;
    const std::string sql = std::string("ALTER TABLE trace_services ADD COLUMN ") + column + " INTEGER NOT NULL DEFAULT 0";
    if (auto st = Exec(sql.c_str()); !st) return st.error();
  }
  return Exec("UPDATE meta SET value='3' WHERE key='schema_version' AND CAST(value AS INTEGER) < 3");
}

// Schema 5: each segment row names the dictionary its document is compressed with (0: text).
Status TraceStore::AddDictColumn() {
  Stmt info(db_, "PRAGMA table_info(segments)");
  int rc;
  bool have = false;
  while ((rc = info.Step()) == SQLITE_ROW) have |= info.ColText(1) == "dict";
  if (rc != SQLITE_DONE) return SqlError(rc, "read schema");
  if (have) return OkStatus();
  return Exec("ALTER TABLE segments ADD COLUMN dict INTEGER NOT NULL DEFAULT 0");
}

Status TraceStore::LoadDictionaries() {
  Stmt s(db_, "SELECT id, dict FROM dictionaries ORDER BY id");
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    const auto* d = static_cast<const char*>(sqlite3_column_blob(s.get(), 1));
    auto dict = Dict::Make(sqlite3_column_int64(s.get(), 0),
                           std::string(d ? d : "", static_cast<size_t>(sqlite3_column_bytes(s.get(), 1))));
    if (!dict) return SqlError(SQLITE_CORRUPT, "load dictionary");
    dicts_.Add(std::move(dict));
  }
  if (rc != SQLITE_DONE) return SqlError(rc, "load dictionaries");
  if (dicts_.Newest()) return OkStatus();
  Stmt count(db_, "SELECT count(*) FROM (SELECT 1 FROM segments LIMIT ?1)");
  count.Int(1, kTrainAfterDocuments);
  if (rc = count.Step(); rc != SQLITE_ROW) return SqlError(rc, "count documents");
  plain_documents_ = sqlite3_column_int64(count.get(), 0);
  return OkStatus();
}

// Trains the store's dictionary on its newest documents, once kTrainAfterDocuments are stored.
// Best effort: a failure is logged and training is tried again after as many more documents.
void TraceStore::MaybeTrainDictionary() {
  if (plain_documents_ < kTrainAfterDocuments || dicts_.Newest()) return;
  plain_documents_ = 0;
  std::vector<std::string> samples;
  {
    // At most kMaxTrainingBytes of samples (zstd's advice: ~100 x the dictionary): 5000 documents of
    // the usual ~1.25 KB fit; 5000 of 60 KB were 300 MB, copied again by TrainDictionary (a peak of
    // ~0.8 GB RSS in bench/put_memory.py --rounds 4).
    constexpr size_t kMaxTrainingBytes = 128 * kDictionaryBytes;
    size_t bytes = 0;
    Stmt s(db_, "SELECT doc FROM segments WHERE dict=0 ORDER BY tid DESC LIMIT ?1");
    s.Int(1, kTrainAfterDocuments);
    while (bytes < kMaxTrainingBytes && s.Step() == SQLITE_ROW) {
      samples.push_back(s.ColText(0));
      bytes += samples.back().size();
    }
  }
  auto trained = TrainDictionary(samples);
  if (!trained) {
    XLOG_WARN("Trace store: could not train a compression dictionary on {} documents", samples.size());
    return;
  }
  Stmt put(db_, "INSERT INTO dictionaries(dict, trained_at) VALUES(?1, strftime('%s','now'))");
  put.Blob(1, *trained);
  if (const int rc = put.Run(); rc != SQLITE_DONE) {
    XLOG_WARN("Trace store: saving the compression dictionary: {}", SqlError(rc, "save dictionary").message);
    return;
  }
  auto dict = Dict::Make(sqlite3_last_insert_rowid(db_), std::move(*trained));
  if (!dict) return;
  dicts_.Add(dict);
  XLOG_INFO("Trace store: compression dictionary trained on {} documents", samples.size());
  CompressPlainDocuments(*dict);
}

// The documents stored as text before the first dictionary (a few thousand), compressed with it in
// one transaction and moved to the table's end (a new rowid): their old pages empty out and are
// reused, rather than staying a few MB of mostly free space. Best effort: on failure they stay
// text, which every read handles.
void TraceStore::CompressPlainDocuments(const Dict& dict) {
  if (!Exec("BEGIN IMMEDIATE")) return;
  auto compress = [&]() -> Status {
    std::vector<std::pair<int64_t, std::string>> plain;  // rowid, compressed doc
    Stmt read(db_, "SELECT rowid, doc FROM segments WHERE dict=0");
    int rc;
    while ((rc = read.Step()) == SQLITE_ROW) {
      auto z = dict.Compress(read.ColText(1));
      if (!z) return z.error();
      plain.emplace_back(sqlite3_column_int64(read.get(), 0), std::move(*z));
    }
    if (rc != SQLITE_DONE) return ErrorFor(db_, rc, "read plain documents");  // a lambda: no lock analysis
    Stmt put(db_, "UPDATE segments SET rowid=(SELECT max(rowid) FROM segments) + 1, doc=?2, dict=?3 WHERE rowid=?1");
    for (const auto& [rowid, doc] : plain)
      if (rc = put.Int(1, rowid).BlobRef(2, doc).Int(3, dict.id()).Run(); rc != SQLITE_DONE)
        return ErrorFor(db_, rc, "compress plain documents");
    XLOG_INFO("Trace store: {} documents stored before the dictionary compressed with it", plain.size());
    return OkStatus();
  };
  Status st = compress();
  if (st) st = Exec("COMMIT");
  if (st) return;
  XLOG_WARN("Documents stored before the dictionary stay uncompressed: {}", st.error().message);
  if (!sqlite3_get_autocommit(db_)) (void)Exec("ROLLBACK");
}

Status TraceStore::ComputeAllRollups() {
  {
    Stmt traces(db_, "SELECT tid FROM traces ORDER BY tid");
    Stmt docs_of(db_, kDocsOfTrace);
    segment::Parser parser;
    segment::Rollup rollup;
    int64_t n = 0;
    int step;
    while ((step = traces.Step()) == SQLITE_ROW) {
      const int64_t tid = sqlite3_column_int64(traces.get(), 0);
      if (auto r = RollupOfStoredTrace(db_, docs_of, dicts_, parser, tid, +1, &rollup); !r) return r;
      if (++n % 10000 == 0) {  // bounded memory: merge into the table as it goes
        if (auto a = ApplyRollup(db_, rollup); !a) return a;
        rollup.clear();
      }
    }
    if (step != SQLITE_DONE) return SqlError(step, "list traces for rollups");
    if (auto a = ApplyRollup(db_, rollup); !a) return a;
    XLOG_INFO("Trace store: graph rollups computed for {} traces", n);
  }
  return OkStatus();
}

Error TraceStore::Report(Error e) const {
  if (options_.on_error) options_.on_error(e);
  return e;
}

Error TraceStore::SqlError(int rc, const std::string& what) { return ErrorFor(db_, rc, what); }

Status TraceStore::Exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return OkStatus();
  sqlite3_free(err);  // the same text as sqlite3_errmsg, which ErrorFor reads
  return ErrorFor(db_, rc, std::string(sql).substr(0, 40));
}

Status TraceStore::Finish(Status st) {
  if (st) st = Exec("COMMIT");
  if (st) return st;
  cache_->Clear();  // ids it remembers may be of rows rolled back
  // SQLite may already have rolled back (after SQLITE_FULL, IOERR, NOMEM); otherwise do it now. A
  // failing ROLLBACK leaves the transaction open, so it is logged: the next BEGIN then fails too.
  if (!sqlite3_get_autocommit(db_)) {
    if (auto rb = Exec("ROLLBACK"); !rb) XLOG_ERROR("Rollback failed: {}", rb.error().message);
  }
  return Report(st.error());
}

Result<std::vector<std::pair<size_t, std::string>>> TraceStore::Append(const std::vector<std::string>& docs) {
  // Validate and extract before taking the lock: parsing is most of an Append's CPU.
  std::vector<std::pair<size_t, std::string>> rejected;
  std::vector<std::pair<size_t, segment::Facts>> valid;
  valid.reserve(docs.size());
  {
    segment::Parser& parser = ThreadParser();
    segment::Facts facts;
    for (size_t i = 0; i < docs.size(); ++i) {
      const segment::Verdict v = parser.Parse(docs[i], &facts);
      if (v.ok()) valid.emplace_back(i, std::move(facts));
      else rejected.emplace_back(i, std::string(ToString(*v.reject)) + ": " + std::string(v.detail));
    }
  }
  if (valid.empty()) return rejected;
  // Compressed outside the lock too, with the newest dictionary (none yet: stored as text).
  const std::shared_ptr<const Dict> dict = dicts_.Newest();
  std::vector<std::string> packed;
  if (dict) {
    packed.reserve(valid.size());
    for (const auto& [i, facts] : valid) {
      auto z = dict->Compress(docs[i]);
      if (!z) return Report(z.error());
      packed.push_back(std::move(*z));
    }
  }
  // The batch by trace, each with its calls for the rollups (also outside the lock).
  Batch batch = GroupByTrace(valid);
  MutexLock lock(mu_);
  double longest = longest_trace_seconds_;
  Status st = Exec("BEGIN IMMEDIATE");
  if (st) st = WriteAll(docs, valid, packed, dict ? dict->id() : 0, batch, &longest);
  if (st = Finish(std::move(st)); !st) return st.error();
  longest_trace_seconds_ = longest;
  BoundWal();
  if (!dict) {
    plain_documents_ += static_cast<int64_t>(valid.size());
    MaybeTrainDictionary();
  }
  return rejected;
}

void TraceStore::BoundWal() {
  std::error_code ec;
  const uint64_t wal = std::filesystem::file_size(path_ + "-wal", ec);
  if (ec || wal <= options_.wal_limit_bytes) return;
  // Waits (busy handler, up to busy_timeout_ms) for readers of older snapshots, copies every frame
  // into the database and truncates the WAL. Not an error of the Append that just committed.
  int log_frames = 0, copied = 0;
  const int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log_frames, &copied);
  if (rc != SQLITE_OK)
    XLOG_WARN("Trace store: WAL is {} bytes (limit {}); checkpoint could not finish, {} of {} frames copied: {}", wal,
              options_.wal_limit_bytes, copied, log_frames, sqlite3_errmsg(db_));
}

TraceStore::Batch TraceStore::GroupByTrace(const std::vector<std::pair<size_t, segment::Facts>>& valid) {
  Batch batch;
  std::unordered_map<std::string_view, size_t> index;  // trace id -> its place in batch
  index.reserve(valid.size());
  std::vector<std::pair<size_t, std::string_view>> ids;  // (trace's place, document id), to find repeats
  ids.reserve(valid.size());
  for (size_t k = 0; k < valid.size(); ++k) {
    const segment::Facts& f = valid[k].second;
    auto [it, added] = index.emplace(f.trace_id, batch.size());
    if (added) batch.emplace_back().trace_id = f.trace_id;
    BatchTrace& t = batch[it->second];
    t.docs.push_back(k);
    t.repeats |= f.independent_subsegment;
    ids.emplace_back(it->second, f.id);
  }
  std::sort(ids.begin(), ids.end());
  for (size_t k = 1; k < ids.size(); ++k)
    if (ids[k] == ids[k - 1]) batch[ids[k].first].repeats = true;
  std::vector<const segment::Facts*> facts;
  for (BatchTrace& t : batch) {
    facts.clear();
    for (const size_t k : t.docs) {
      facts.push_back(&valid[k].second);
      t.delta.Add(valid[k].second);
    }
    t.calls = segment::TraceCalls(facts);
  }
  return batch;
}

Status TraceStore::WriteAll(const std::vector<std::string>& docs,
                            const std::vector<std::pair<size_t, segment::Facts>>& valid,
                            const std::vector<std::string>& packed, int64_t dict, Batch& batch, double* longest) {
  auto stmts = Statements();
  if (!stmts) return stmts.error();
  Writer& w = (*stmts)->writer;
  segment::Parser& parser = ThreadParser();
  segment::Rollup delta;
  if (auto st = RollupBefore(batch, parser, &delta); !st) return st;
  // Traces in key order (a new trace's key is past every stored one: its rows append at the
  // B-trees' ends), each trace's documents in batch order.
  std::vector<const BatchTrace*> order;
  order.reserve(batch.size());
  for (const auto& t : batch) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const BatchTrace* a, const BatchTrace* b) { return a->tid < b->tid; });
  std::vector<size_t> stored;  // a trace's documents stored (changed a row)
  for (const BatchTrace* t : order) {
    stored.clear();
    for (const size_t k : t->docs) {
      const segment::Facts& facts = valid[k].second;
      bool changed = false;
      const std::string_view doc = dict ? std::string_view(packed[k]) : std::string_view(docs[valid[k].first]);
      if (auto st = w.PutSegment(t->tid, facts, doc, dict, &changed); !st) return st;
      if (!changed) continue;  // an in-progress copy of a completed segment: ignored
      // Only traces stored before, or with a streamed subsegment in the batch, can hold a stub.
      if (t->recompute)
        if (auto st = w.DropSuperseded(t->tid, facts); !st) return st;
      stored.push_back(k);
    }
    if (stored.empty()) continue;
    // Usually every document was stored and the delta built before the lock applies as it is.
    TraceDelta some;
    if (stored.size() != t->docs.size())
      for (const size_t k : stored) some.Add(valid[k].second);
    const TraceDelta& d = stored.size() == t->docs.size() ? t->delta : some;
    if (auto st = w.PutTrace(t->tid, t->is_new, t->trace_id, d, longest); !st) return st;
  }
  if (auto st = RollupAfter(batch, parser, &delta); !st) return st;
  if (auto st = ApplyRollup(db_, (*stmts)->rollups, delta); !st) return st;
  if (*longest <= longest_trace_seconds_) return OkStatus();
  Stmt& save = (*stmts)->save_longest;
  save.Real(1, *longest);
  if (const int rc = save.Run(); rc != SQLITE_DONE) return SqlError(rc, "save longest trace");
  return OkStatus();
}

// A trace's calls are counted in the rollups from its facts in the batch when the batch is all of
// it: the trace is new, no id repeats and no streamed subsegment could be superseded. Otherwise
// (a trace that grows, a late document, a replaced in-progress copy) its stored documents' calls
// are taken out before the batch is written and counted again after: the rollups then always equal
// what the stored documents say, in any arrival order.
Status TraceStore::RollupBefore(Batch& batch, segment::Parser& parser, segment::Rollup* delta) {
  detail::WriteStatements& stmts = *stmts_;
  if (cache_->next_tid == 0) {
    const int rc = stmts.next_tid.Step();
    if (rc == SQLITE_ROW) cache_->next_tid = sqlite3_column_int64(stmts.next_tid.get(), 0);
    stmts.next_tid.Reset();
    if (rc != SQLITE_ROW) return SqlError(rc, "next trace key");
  }
  Stmt& exists = stmts.exists;
  for (BatchTrace& t : batch) {
    exists.TextRef(1, t.trace_id);
    const int rc = exists.Step();
    const int64_t stored = rc == SQLITE_ROW ? sqlite3_column_int64(exists.get(), 0) : 0;
    exists.Reset();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlError(rc, "find trace");
    // A new trace's key is taken now; its row is written after its segments (PutTrace).
    t.tid = stored ? stored : cache_->next_tid++;
    t.is_new = stored == 0;
    t.recompute = stored != 0 || t.repeats;
    if (stored)
      if (auto st = RollupOfStoredTrace(db_, stmts.docs_of, dicts_, parser, stored, -1, delta); !st) return st;
  }
  return OkStatus();
}

Status TraceStore::RollupAfter(const Batch& batch, segment::Parser& parser, segment::Rollup* delta) {
  for (const BatchTrace& t : batch) {
    if (!t.recompute) {
      segment::AddToRollup(t.calls, +1, delta);
    } else if (auto st = RollupOfStoredTrace(db_, stmts_->docs_of, dicts_, parser, t.tid, +1, delta); !st) {
      return st;
    }
  }
  return OkStatus();
}

Result<segment::Rollup> TraceStore::GraphRollups(int64_t first_minute, int64_t last_minute) {
  auto reader = BeginRead();
  if (!reader) return reader.error();
  sqlite3* const db = (*reader)->db();
  Stmt s(db, (std::string("SELECT minute, kind, from_name, from_type, to_name, to_type, ") + kRollupColumns +
              " FROM graph_rollups WHERE minute >= ?1 AND minute <= ?2").c_str());
  s.Int(1, first_minute).Int(2, last_minute);
  segment::Rollup out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    segment::RollupKey key{sqlite3_column_int64(s.get(), 0), static_cast<segment::Call::Kind>(sqlite3_column_int(s.get(), 1)),
                           {s.ColText(2), s.ColText(3)}, {s.ColText(4), s.ColText(5)}};
    if (!ReadRollupStats(s.get(), 6, &out[key])) return Report(ErrorFor(db, SQLITE_CORRUPT, "read graph rollup"));
  }
  if (rc != SQLITE_DONE) return Report(ErrorFor(db, rc, "read graph rollups"));
  return out;
}

namespace detail {

Error SqlErrorFor(sqlite3* db, int rc, const std::string& what) { return ErrorFor(db, rc, what); }

Result<std::string> ReadDocument(sqlite3* db, sqlite3_stmt* raw, int col, Dictionaries& dicts) {
  return ReadDoc(db, raw, col, dicts);
}

}  // namespace detail

namespace {

Status LoadServicesAndAnnotations(sqlite3* db, std::vector<TraceSummaryRow>& rows, const std::vector<int64_t>& tids);

}  // namespace

// Rows of a prepared summary query (kSummaryColumns) on reader `db`, with their annotations and
// services, all read in the caller's read transaction.
Result<std::vector<TraceSummaryRow>> detail::LoadSummaries(sqlite3* db, sqlite3_stmt* raw) {
  std::vector<TraceSummaryRow> out;
  std::vector<int64_t> tids;  // parallel to out
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    TraceSummaryRow r;
    auto text = [&](int i) {
      const auto* t = sqlite3_column_text(raw, i);
      return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
    };
    auto opt = [&](int i) -> std::optional<double> {
      if (sqlite3_column_type(raw, i) == SQLITE_NULL) return std::nullopt;
      return sqlite3_column_double(raw, i);
    };
    r.trace_id = text(0);
    r.start_time = sqlite3_column_double(raw, 1);
    r.end_time = sqlite3_column_double(raw, 2);
    r.root_start = opt(3);
    r.root_end = opt(4);
    r.root_name = text(5);
    r.root_origin = text(6);
    r.http_url = text(7);
    if (sqlite3_column_type(raw, 8) != SQLITE_NULL) r.http_status = sqlite3_column_int(raw, 8);
    r.http_method = text(9);
    r.user_agent = text(10);
    r.client_ip = text(11);
    r.user = text(12);
    r.has_error = sqlite3_column_int(raw, 13);
    r.has_fault = sqlite3_column_int(raw, 14);
    r.has_throttle = sqlite3_column_int(raw, 15);
    r.revision = sqlite3_column_int(raw, 16);
    r.is_partial = sqlite3_column_int(raw, 17);
    r.key = sqlite3_column_int64(raw, 18);
    tids.push_back(r.key);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return ErrorFor(db, rc, "list traces");
  if (auto st = LoadServicesAndAnnotations(db, out, tids); !st) return st.error();
  return out;
}

namespace {

// Annotations and services for a whole page in two queries, not two per trace. `tids`: the rows' keys.
Status LoadServicesAndAnnotations(sqlite3* db, std::vector<TraceSummaryRow>& rows, const std::vector<int64_t>& tids) {
  if (rows.empty()) return OkStatus();
  std::map<int64_t, TraceSummaryRow*> by_tid;
  std::string in = "(";
  for (size_t i = 0; i < rows.size(); ++i) {
    by_tid[tids[i]] = &rows[i];
    in += i ? ",?" : "?";
  }
  in += ")";
  Stmt ann(db, ("SELECT a.tid, k.name, n.name, a.value FROM annotations a JOIN names k ON k.id = a.key_id "
                "JOIN names n ON n.id = a.service_id WHERE a.tid IN " + in + " ORDER BY a.tid, k.name, n.name, a.value")
                   .c_str());
  Stmt svc(db, ("SELECT x.tid, s.name, s.type, x.has_error, x.has_fault, x.has_throttle FROM trace_services x "
                "JOIN services s ON s.id = x.service_id WHERE x.tid IN " + in + " ORDER BY x.tid, s.name, s.type")
                   .c_str());
  for (size_t i = 0; i < rows.size(); ++i) {
    ann.Int(static_cast<int>(i + 1), tids[i]);
    svc.Int(static_cast<int>(i + 1), tids[i]);
  }
  int rc;
  while ((rc = ann.Step()) == SQLITE_ROW)
    by_tid[sqlite3_column_int64(ann.get(), 0)]->annotations.push_back({ann.ColText(1), ann.ColText(2), ann.ColText(3)});
  if (rc != SQLITE_DONE) return ErrorFor(db, rc, "load annotations");
  while ((rc = svc.Step()) == SQLITE_ROW) {
    TraceSummaryRow* row = by_tid[sqlite3_column_int64(svc.get(), 0)];
    row->services.emplace_back(svc.ColText(1), svc.ColText(2));
    row->service_flags.push_back({sqlite3_column_int(svc.get(), 3) != 0, sqlite3_column_int(svc.get(), 4) != 0,
                                  sqlite3_column_int(svc.get(), 5) != 0});
  }
  if (rc != SQLITE_DONE) return ErrorFor(db, rc, "load services");
  return OkStatus();
}

}  // namespace

const char* const detail::kSummaryColumns =
    "t.trace_id, t.start_time, t.end_time, t.root_start, t.root_end, "
    "coalesce((SELECT name FROM names WHERE id = t.root_name_id), ''), "
    "coalesce((SELECT name FROM names WHERE id = t.root_origin_id), ''), "
    "coalesce((SELECT url FROM urls WHERE id = t.url_id), ''), t.http_status, t.http_method, "
    "coalesce((SELECT name FROM names WHERE id = t.user_agent_id), ''), t.client_ip, t.user, t.has_error, t.has_fault, t.has_throttle, t.revision, "
    "EXISTS(SELECT 1 FROM segments s WHERE s.tid=t.tid AND s.in_progress=1), t.tid";

Result<std::optional<TraceSummaryRow>> TraceStore::Summary(const std::string& trace_id) {
  auto reader = BeginRead();
  if (!reader) return reader.error();
  sqlite3* const db = (*reader)->db();
  const std::string sql = std::string("SELECT ") + detail::kSummaryColumns + " FROM traces t WHERE t.trace_id = ?1";
  Stmt s(db, sql.c_str());
  if (s.prepare_rc() != SQLITE_OK) return Report(ErrorFor(db, s.prepare_rc(), "prepare summary"));
  s.Text(1, trace_id);
  auto rows = detail::LoadSummaries(db, s.get());
  if (!rows) return Report(rows.error());
  if (rows->empty()) return std::optional<TraceSummaryRow>();
  return std::optional<TraceSummaryRow>(std::move(rows->front()));
}

Result<std::vector<StoredSegment>> TraceStore::SegmentsOf(const std::string& trace_id) {
  auto one = SegmentsOfTraces({trace_id});  // trace_query.cc: the one statement that reads a trace's segments
  if (!one) return one.error();
  return std::move(one->front());
}

Result<std::vector<std::string>> TraceStore::DocumentsInRange(double start, double end, size_t max_traces,
                                                              bool* truncated) {
  auto reader = BeginRead();
  if (!reader) return reader.error();
  sqlite3* const db = (*reader)->db();
  // A trace overlapping [start, end] started at most the longest trace seen before `start` (?4): that
  // lower bound keeps the index scan to the window instead of everything older than its end. Read in
  // this call's snapshot, so it bounds every trace the queries below can see.
  Stmt longest(db, "SELECT value FROM meta WHERE key='longest_trace_seconds'");
  const int found = longest.Step();
  if (found != SQLITE_ROW && found != SQLITE_DONE) return Report(ErrorFor(db, found, "load longest trace"));
  const double earliest =
      found == SQLITE_ROW ? start - sqlite3_column_double(longest.get(), 0) - 1 : -std::numeric_limits<double>::infinity();
  Stmt count(db,
             "SELECT count(*) FROM (SELECT 1 FROM traces WHERE start_time >= ?4 AND start_time <= ?2 AND end_time >= ?1 "
             "LIMIT ?3 + 1)");
  count.Real(1, start).Real(2, end).Int(3, static_cast<int64_t>(max_traces)).Real(4, earliest);
  const int counted = count.Step();
  if (counted != SQLITE_ROW) return Report(ErrorFor(db, counted, "count range"));
  *truncated = static_cast<size_t>(sqlite3_column_int64(count.get(), 0)) > max_traces;
  Stmt s(db,
         "SELECT s.doc, s.dict FROM segments s JOIN (SELECT tid FROM traces WHERE start_time >= ?4 AND start_time <= ?2 "
         "AND end_time >= ?1 ORDER BY start_time DESC LIMIT ?3) t ON s.tid = t.tid");
  s.Real(1, start).Real(2, end).Int(3, static_cast<int64_t>(max_traces)).Real(4, earliest);
  std::vector<std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    auto doc = ReadDoc(db, s.get(), 0, dicts_);
    if (!doc) return Report(doc.error());
    out.push_back(std::move(*doc));
  }
  if (rc != SQLITE_DONE) return Report(ErrorFor(db, rc, "read range"));
  return out;
}

Status TraceStore::PutSetting(const std::string& key, const std::string& value) {
  MutexLock lock(mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  s.Text(1, "setting:" + key).Text(2, value);
  if (const int rc = s.Run(); rc != SQLITE_DONE) return Report(SqlError(rc, "save setting " + key));
  return OkStatus();
}

Result<std::optional<std::string>> TraceStore::GetSetting(const std::string& key) {
  auto reader = BeginRead();
  if (!reader) return reader.error();
  sqlite3* const db = (*reader)->db();
  Stmt s(db, "SELECT value FROM meta WHERE key = ?1");
  s.Text(1, "setting:" + key);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.ColText(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return Report(ErrorFor(db, rc, "load setting " + key));
}

uint64_t TraceStore::ApproximateBytes() {
  MutexLock lock(mu_);
  return ApproximateBytesLocked();
}

uint64_t TraceStore::ApproximateBytesLocked() {
  Stmt pc(db_, "PRAGMA page_count");
  Stmt ps(db_, "PRAGMA page_size");
  if (pc.Step() != SQLITE_ROW || ps.Step() != SQLITE_ROW) return 0;
  return static_cast<uint64_t>(sqlite3_column_int64(pc.get(), 0)) * static_cast<uint64_t>(sqlite3_column_int64(ps.get(), 0));
}

Result<int64_t> TraceStore::DeleteChunk(const std::string& where, double arg, int64_t limit) {
  MutexLock lock(mu_);
  int64_t deleted = 0;
  Status st = Exec("BEGIN IMMEDIATE");
  if (st) st = DeleteVictims(where, arg, limit, &deleted);
  if (st = Finish(std::move(st)); !st) return st.error();
  return deleted;
}

Status TraceStore::DeleteVictims(const std::string& where, double arg, int64_t limit, int64_t* deleted) {
  std::vector<int64_t> victims;
  std::set<int64_t> urls;  // their root URLs' ids
  std::set<int64_t> names, services;  // the names (user agent, root, annotations) and services they use
  {  // the victims' calls leave the rollups with them
    Stmt list(db_, ("SELECT tid, url_id, user_agent_id, root_name_id, root_origin_id FROM traces WHERE " + where +
                    " ORDER BY start_time LIMIT " + std::to_string(limit)).c_str());
    list.Real(1, arg);
    Stmt docs_of(db_, kDocsOfTrace);
    segment::Parser parser;
    segment::Rollup delta;
    int rc;
    while ((rc = list.Step()) == SQLITE_ROW) {
      victims.push_back(sqlite3_column_int64(list.get(), 0));
      if (const int64_t url = sqlite3_column_int64(list.get(), 1); url != 0) urls.insert(url);
      for (int col : {2, 3, 4})
        if (const int64_t name = sqlite3_column_int64(list.get(), col); name != 0) names.insert(name);
      if (auto st = RollupOfStoredTrace(db_, docs_of, dicts_, parser, victims.back(), -1, &delta); !st) return st;
    }
    if (rc != SQLITE_DONE) return SqlError(rc, "retention: list traces");
    if (auto st = ApplyRollup(db_, delta); !st) return st;
  }
  if (auto st = InternedIdsOf(victims, &names, &services); !st) return st;
  for (const char* table : {"segments", "annotations", "trace_services", "traces"}) {
    Stmt s(db_, (std::string("DELETE FROM ") + table + " WHERE tid=?1").c_str());
    for (const int64_t tid : victims)
      if (const int rc = s.Int(1, tid).Run(); rc != SQLITE_DONE)
        return SqlError(rc, std::string("retention: delete from ") + table);
  }
  *deleted = static_cast<int64_t>(victims.size());
  if (auto st = DeleteUnusedServices(services); !st) return st;
  if (auto st = DeleteUnusedNames(names); !st) return st;  // after services: a service's name is used
  return DeleteUnusedUrls(urls);
}

// The names of traces `tids`' annotations (keys, services) and their services, added to *names
// and *services.
Status TraceStore::InternedIdsOf(const std::vector<int64_t>& tids, std::set<int64_t>* names,
                                 std::set<int64_t>* services) {
  Stmt keys(db_, "SELECT key_id, service_id FROM annotations WHERE tid=?1");
  Stmt svcs(db_, "SELECT service_id, NULL FROM trace_services WHERE tid=?1");
  for (const int64_t tid : tids) {
    for (auto [s, out] : {std::pair{&keys, names}, std::pair{&svcs, services}}) {
      s->Int(1, tid);
      int rc;
      while ((rc = s->Step()) == SQLITE_ROW)
        for (int col : {0, 1})
          if (sqlite3_column_type(s->get(), col) != SQLITE_NULL) out->insert(sqlite3_column_int64(s->get(), col));
      s->Reset();
      if (rc != SQLITE_DONE) return SqlError(rc, "retention: list names");
    }
  }
  return OkStatus();
}

// The services of `ids` no stored trace has any more leave the services table (and the writer's cache).
Status TraceStore::DeleteUnusedServices(const std::set<int64_t>& ids) {
  Stmt used(db_, "SELECT 1 FROM trace_services WHERE service_id=?1 LIMIT 1");  // trace_services_by_service
  Stmt drop(db_, "DELETE FROM services WHERE id=?1 RETURNING name, type");
  for (const int64_t id : ids) {
    int rc = used.Int(1, id).Step();
    used.Reset();
    if (rc == SQLITE_ROW) continue;
    if (rc != SQLITE_DONE) return SqlError(rc, "retention: find service");
    drop.Int(1, id);
    if ((rc = drop.Step()) == SQLITE_ROW) {
      std::string key = drop.ColText(0);
      key.push_back('\0');
      key += drop.ColText(1);
      cache_->services.erase(key);
      rc = drop.Step();
    }
    drop.Reset();
    if (rc != SQLITE_DONE) return SqlError(rc, "retention: delete service");
  }
  return OkStatus();
}

// The names of `ids` (of deleted traces: user agents, root names and origins, annotations' keys and
// services) that nothing stored uses any more leave the names table (and the writer's cache). A
// name is kept while a trace has it as its user agent (traces_by_user_agent) or an annotation as its
// key (annotations_by_key_bucket_value: its first column), or
// while it is a stored service's name or type: root names and origins, and annotations' services,
// are the names and types of their trace's services (TraceDelta::Add puts every segment's
// (name, origin) among them), so that check covers them without an index. The empty name (an
// independent subsegment's annotations have no service) is always kept.
Status TraceStore::DeleteUnusedNames(const std::set<int64_t>& ids) {
  Stmt text(db_, "SELECT name FROM names WHERE id=?1");
  Stmt agent(db_, "SELECT 1 FROM traces WHERE user_agent_id=?1 LIMIT 1");
  Stmt key(db_, "SELECT 1 FROM annotations WHERE key_id=?1 LIMIT 1");
  Stmt service(db_, "SELECT 1 FROM services WHERE name=?1 UNION ALL SELECT 1 FROM services WHERE type=?1 LIMIT 1");
  Stmt drop(db_, "DELETE FROM names WHERE id=?1");
  for (const int64_t id : ids) {
    int rc = text.Int(1, id).Step();
    const std::string name = rc == SQLITE_ROW ? text.ColText(0) : std::string();
    text.Reset();
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && name.empty())) continue;
    if (rc != SQLITE_ROW) return SqlError(rc, "retention: read name");
    bool in_use = false;
    for (Stmt* s : {&agent, &key}) {
      rc = s->Int(1, id).Step();
      s->Reset();
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlError(rc, "retention: find name");
      in_use = in_use || rc == SQLITE_ROW;
    }
    rc = in_use ? SQLITE_ROW : service.TextRef(1, name).Step();
    service.Reset();
    if (rc == SQLITE_ROW) continue;
    if (rc != SQLITE_DONE) return SqlError(rc, "retention: find name");
    if (rc = drop.Int(1, id).Run(); rc != SQLITE_DONE) return SqlError(rc, "retention: delete name");
    cache_->names.erase(name);
  }
  return OkStatus();
}

// The URLs of `ids` that no stored trace has as its root URL any more leave urls and their
// trigram index (FTS5 external content: the index row is deleted with the text it indexed).
Status TraceStore::DeleteUnusedUrls(const std::set<int64_t>& ids) {
  // One seek per bucket of traces_by_bucket_url (store/trace_query.h).
  const std::string in_use =
      "SELECT 1 FROM traces WHERE " + detail::EveryBucket(options_.index_bucket_shift) + " AND url_id=?1 LIMIT 1";
  Stmt used(db_, in_use.c_str());
  Stmt text(db_, "SELECT url FROM urls WHERE id=?1");
  Stmt unindex(db_, "INSERT INTO url_trigrams(url_trigrams, rowid, url) VALUES('delete', ?1, ?2)");
  Stmt drop(db_, "DELETE FROM urls WHERE id=?1");
  for (const int64_t id : ids) {
    int rc = used.Int(1, id).Step();
    used.Reset();
    if (rc == SQLITE_ROW) continue;
    if (rc != SQLITE_DONE) return SqlError(rc, "retention: find url");
    if (rc = text.Int(1, id).Step(); rc != SQLITE_ROW) {
      text.Reset();
      if (rc == SQLITE_DONE) continue;
      return SqlError(rc, "retention: read url");
    }
    const std::string url = text.ColText(0);
    text.Reset();
    if (rc = unindex.Int(1, id).TextRef(2, url).Run(); rc != SQLITE_DONE) return SqlError(rc, "retention: unindex url");
    if (rc = drop.Int(1, id).Run(); rc != SQLITE_DONE) return SqlError(rc, "retention: delete url");
    cache_->urls.erase(url);
  }
  return OkStatus();
}

Result<int64_t> TraceStore::EnforceRetention(double now) {
  int64_t deleted = 0;
  // Deletes chunk after chunk while full chunks come back.
  auto sweep = [&](const std::string& where, double arg) -> Status {
    for (;;) {
      auto n = DeleteChunk(where, arg, kRetentionChunk);
      if (!n) return n.error();
      deleted += *n;
      if (*n < kRetentionChunk) return OkStatus();
    }
  };
  if (options_.retention_seconds > 0) {
    if (auto st = sweep("start_time < ?1", now - options_.retention_seconds); !st) return st.error();
  }
  if (auto st = sweep("start_time > ?1", segment::kMaxTime); !st) return st.error();
  if (options_.max_bytes == 0) return deleted;
  for (int round = 0; round < 100 && ApproximateBytes() > options_.max_bytes; ++round) {
    auto n = DeleteChunk("?1 = ?1", 0, kRetentionChunk);
    if (!n) return n.error();
    deleted += *n;
    {
      MutexLock lock(mu_);
      // Best effort, so not errors: the WAL shrinks and freed pages return at the next sweep if not now.
      if (auto st = Exec("PRAGMA wal_checkpoint(TRUNCATE)"); !st) XLOG_WARN("{}", st.error().message);
      if (auto st = Exec("PRAGMA incremental_vacuum"); !st) XLOG_WARN("{}", st.error().message);
    }
    if (*n == 0) break;
  }
  return deleted;
}

}  // namespace xrayd::store
