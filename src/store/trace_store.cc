#include "store/trace_store.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

namespace xrayd::store {
namespace {

constexpr const char* kSchema = R"sql(
PRAGMA page_size=16384;  -- new stores only (an existing file keeps its size): fewer splits, ~+15 % ingest
PRAGMA auto_vacuum=INCREMENTAL;
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
PRAGMA cache_size=-65536;
PRAGMA mmap_size=268435456;
PRAGMA temp_store=MEMORY;
PRAGMA wal_autocheckpoint=4000;  -- pages: checkpoint per ~64 MiB of WAL, not per 4 MiB
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
INSERT OR IGNORE INTO meta VALUES('schema_version', '3');
CREATE TABLE IF NOT EXISTS segments(
  trace_id TEXT NOT NULL, id TEXT NOT NULL, parent_id TEXT NOT NULL, kind INTEGER NOT NULL,
  start_time REAL NOT NULL, end_time REAL, in_progress INTEGER NOT NULL, doc TEXT NOT NULL,
  stored_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS segments_by_trace ON segments(trace_id, id);
CREATE TABLE IF NOT EXISTS traces(
  trace_id TEXT PRIMARY KEY, trace_time INTEGER NOT NULL, start_time REAL NOT NULL, end_time REAL NOT NULL,
  root_start REAL, root_end REAL, root_name TEXT NOT NULL DEFAULT '', root_origin TEXT NOT NULL DEFAULT '',
  http_url TEXT NOT NULL DEFAULT '', http_status INTEGER, http_method TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '', client_ip TEXT NOT NULL DEFAULT '', user TEXT NOT NULL DEFAULT '',
  has_error INTEGER NOT NULL DEFAULT 0, has_fault INTEGER NOT NULL DEFAULT 0, has_throttle INTEGER NOT NULL DEFAULT 0,
  revision INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_by_start ON traces(start_time, trace_id);
CREATE INDEX IF NOT EXISTS traces_by_id_time ON traces(trace_time, trace_id);
CREATE TABLE IF NOT EXISTS annotations(
  trace_id TEXT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY(trace_id, key, service, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_services(
  trace_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
  has_error INTEGER NOT NULL DEFAULT 0, has_fault INTEGER NOT NULL DEFAULT 0, has_throttle INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(trace_id, name, type)) WITHOUT ROWID;
)sql";

// Schema 3 gave each service of a trace its own error/fault/throttle flags (for service(...) { fault }).
// A schema 2 file gets the columns, all 0: its older traces then only match on trace-level flags.
constexpr const char* kServiceFlagColumns[] = {"has_error", "has_fault", "has_throttle"};

// RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return s_; }
  Stmt& Text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Real(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& Int(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  int Step() { return sqlite3_step(s_); }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::string ColText(int i) {
    const auto* t = sqlite3_column_text(s_, i);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, i)) : std::string();
  }
  std::optional<double> ColRealOpt(int i) {
    if (sqlite3_column_type(s_, i) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_double(s_, i);
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

Error DbError(sqlite3* db, const std::string& what) { return Error::Io(what + ": " + sqlite3_errmsg(db)); }

struct CalledService {
  std::string name, type;
  bool error = false, fault = false, throttle = false;  // the calling subsegment's flags
};

// What one document contributes to its trace's summary.
struct Extract {
  std::string trace_id, id, parent_id, name, origin;
  bool independent_subsegment = false, in_progress = false;
  double start = 0;
  std::optional<double> end;
  bool error = false, fault = false, throttle = false;
  std::string http_url, http_method, user_agent, client_ip, user;
  std::optional<int> http_status;
  std::vector<std::pair<std::string, std::string>> annotations;  // key, value JSON
  std::vector<std::string> embedded_complete_ids;  // nested subsegments that carry an end_time
  // Services this document calls, as the service graph names them when they send no segment of their
  // own (remote: "remote", aws: "AWS::<name>"), so filters such as service(id(name:..., type:...))
  // find the traces behind an inferred node. A callee that does send segments is listed under its
  // own name and origin as well; the extra entry only adds a type no graph node will show.
  std::vector<CalledService> called_services;
  bool own_error = false, own_fault = false, own_throttle = false;  // the document's top-level flags
};

std::string JsonScalar(simdjson::dom::element v) {
  switch (v.type()) {
    case simdjson::dom::element_type::STRING: {
      return simdjson::minify(v);
    }
    case simdjson::dom::element_type::BOOL: return v.get_bool().value() ? "true" : "false";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE: return simdjson::minify(v);
    default: return {};
  }
}

// Walks a (sub)segment object: flags anywhere in the tree, annotations at every level.
void Walk(simdjson::dom::object o, Extract& e, int depth) {
  if (depth > 64) return;
  bool b = false;
  if (o["error"].get(b) == simdjson::SUCCESS && b) e.error = true;
  if (o["fault"].get(b) == simdjson::SUCCESS && b) e.fault = true;
  if (o["throttle"].get(b) == simdjson::SUCCESS && b) e.throttle = true;
  simdjson::dom::object ann;
  if (o["annotations"].get(ann) == simdjson::SUCCESS) {
    for (auto field : ann) {
      std::string v = JsonScalar(field.value);
      if (!v.empty()) e.annotations.emplace_back(std::string(field.key), std::move(v));
    }
  }
  simdjson::dom::array subs;
  if (o["subsegments"].get(subs) == simdjson::SUCCESS) {
    for (auto sub : subs) {
      simdjson::dom::object so;
      if (sub.get(so) != simdjson::SUCCESS) continue;
      std::string_view id;
      bool still_running = false;
      if (so["id"].get(id) == simdjson::SUCCESS && so["end_time"].is_number() &&
          !(so["in_progress"].get(still_running) == simdjson::SUCCESS && still_running))
        e.embedded_complete_ids.emplace_back(id);
      std::string_view ns, name;
      if (so["namespace"].get(ns) == simdjson::SUCCESS && (ns == "remote" || ns == "aws") &&
          so["name"].get(name) == simdjson::SUCCESS && !name.empty()) {
        CalledService called{std::string(name), ns == "aws" ? "AWS::" + std::string(name) : "remote"};
        bool flag = false;
        called.error = so["error"].get(flag) == simdjson::SUCCESS && flag;
        called.fault = so["fault"].get(flag) == simdjson::SUCCESS && flag;
        called.throttle = so["throttle"].get(flag) == simdjson::SUCCESS && flag;
        e.called_services.push_back(std::move(called));
      }
      Walk(so, e, depth + 1);
    }
  }
}

std::optional<Extract> ExtractDoc(simdjson::dom::parser& parser, const std::string& doc, std::string* why) {
  simdjson::dom::object o;
  if (parser.parse(doc).get(o) != simdjson::SUCCESS) {
    *why = "not a JSON object";
    return std::nullopt;
  }
  Extract e;
  std::string_view sv;
  if (o["trace_id"].get(sv) != simdjson::SUCCESS) {
    *why = "missing trace_id";
    return std::nullopt;
  }
  e.trace_id = sv;
  if (o["id"].get(sv) != simdjson::SUCCESS) {
    *why = "missing id";
    return std::nullopt;
  }
  e.id = sv;
  if (o["parent_id"].get(sv) == simdjson::SUCCESS) e.parent_id = sv;
  if (o["name"].get(sv) == simdjson::SUCCESS) e.name = sv;
  if (o["origin"].get(sv) == simdjson::SUCCESS) e.origin = sv;
  if (o["type"].get(sv) == simdjson::SUCCESS && sv == "subsegment") e.independent_subsegment = true;
  double d = 0;
  if (o["start_time"].get(d) != simdjson::SUCCESS) {
    *why = "missing start_time";
    return std::nullopt;
  }
  e.start = d;
  if (o["end_time"].get(d) == simdjson::SUCCESS) e.end = d;
  bool b = false;
  if (o["in_progress"].get(b) == simdjson::SUCCESS && b) e.in_progress = true;
  if (o["user"].get(sv) == simdjson::SUCCESS) e.user = sv;
  e.own_error = o["error"].get(b) == simdjson::SUCCESS && b;
  e.own_fault = o["fault"].get(b) == simdjson::SUCCESS && b;
  e.own_throttle = o["throttle"].get(b) == simdjson::SUCCESS && b;
  simdjson::dom::object http;
  if (o["http"].get(http) == simdjson::SUCCESS) {
    simdjson::dom::object req, resp;
    if (http["request"].get(req) == simdjson::SUCCESS) {
      if (req["url"].get(sv) == simdjson::SUCCESS) e.http_url = sv;
      if (req["method"].get(sv) == simdjson::SUCCESS) e.http_method = sv;
      if (req["user_agent"].get(sv) == simdjson::SUCCESS) e.user_agent = sv;
      if (req["client_ip"].get(sv) == simdjson::SUCCESS) e.client_ip = sv;
    }
    int64_t status = 0;
    if (http["response"].get(resp) == simdjson::SUCCESS && resp["status"].get(status) == simdjson::SUCCESS)
      e.http_status = static_cast<int>(status);
  }
  Walk(o, e, 0);
  return e;
}

int64_t TraceIdEpoch(const std::string& trace_id) {
  if (trace_id.size() < 10) return 0;
  try {
    return std::stoll(trace_id.substr(2, 8), nullptr, 16);
  } catch (...) {
    return 0;
  }
}

}  // namespace

Result<std::unique_ptr<TraceStore>> TraceStore::Open(const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Error::Io("cannot create data dir " + options.data_dir + ": " + ec.message());
  const std::string path = options.data_dir + "/traces.db";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    Error e = DbError(db, "cannot open " + path);
    sqlite3_close(db);
    return e;
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<TraceStore> store(new TraceStore(db, options));
  if (auto st = store->Exec(kSchema); !st) return st.error();
  if (auto st = store->AddServiceFlagColumns(); !st) return st.error();
  {
    Stmt longest(db, "SELECT value FROM meta WHERE key='longest_trace_seconds'");
    if (longest.Step() == SQLITE_ROW) {
      store->longest_trace_seconds_ = sqlite3_column_double(longest.get(), 0);
    } else {  // a store written before this was kept: measure it once
      Stmt measure(db, "SELECT coalesce(max(end_time - start_time), 0) FROM traces");
      if (measure.Step() == SQLITE_ROW) store->longest_trace_seconds_ = sqlite3_column_double(measure.get(), 0);
    }
  }
  return store;
}

TraceStore::~TraceStore() { sqlite3_close(db_); }

Status TraceStore::AddServiceFlagColumns() {
  std::set<std::string> have;
  Stmt info(db_, "PRAGMA table_info(trace_services)");
  while (info.Step() == SQLITE_ROW) have.insert(info.ColText(1));
  for (const char* column : kServiceFlagColumns) {
    if (have.count(column)) continue;
    const std::string sql = std::string("ALTER TABLE trace_services ADD COLUMN ") + column + " INTEGER NOT NULL DEFAULT 0";
    if (auto st = Exec(sql.c_str()); !st) return st.error();
  }
  return Exec("INSERT OR REPLACE INTO meta VALUES('schema_version', '3')");
}

Status TraceStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    return Error::Io(std::string("sqlite: ") + msg);
  }
  return OkStatus();
}

Result<std::vector<std::pair<size_t, std::string>>> TraceStore::Append(const std::vector<std::string>& docs) {
  std::vector<std::pair<size_t, std::string>> rejected;
  simdjson::dom::parser parser;
  std::lock_guard lock(mu_);
  if (auto st = Exec("BEGIN IMMEDIATE"); !st) return st.error();
  // A complete document is never replaced by an in-progress one for the same id.
  Stmt put(db_,
           "INSERT INTO segments(trace_id,id,parent_id,kind,start_time,end_time,in_progress,doc,stored_at) "
           "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,strftime('%s','now')) ON CONFLICT(trace_id,id) DO UPDATE SET "
           "parent_id=excluded.parent_id, kind=excluded.kind, start_time=excluded.start_time, "
           "end_time=excluded.end_time, in_progress=excluded.in_progress, doc=excluded.doc, stored_at=excluded.stored_at "
           "WHERE excluded.in_progress = 0 OR segments.in_progress = 1");
  Stmt trace(db_,
             "INSERT INTO traces(trace_id,trace_time,start_time,end_time,has_error,has_fault,has_throttle,revision) "
             "VALUES(?1,?2,?3,?4,?5,?6,?7,1) ON CONFLICT(trace_id) DO UPDATE SET "
             "start_time=min(start_time,excluded.start_time), end_time=max(end_time,excluded.end_time), "
             "has_error=has_error|excluded.has_error, has_fault=has_fault|excluded.has_fault, "
             "has_throttle=has_throttle|excluded.has_throttle, revision=revision+1 RETURNING start_time, end_time");
  Stmt root(db_,
            "UPDATE traces SET root_start=?2, root_end=?3, root_name=?4, root_origin=?5, http_url=?6, http_status=?7, "
            "http_method=?8, user_agent=?9, client_ip=?10, user=?11 WHERE trace_id=?1");
  Stmt ann(db_, "INSERT OR IGNORE INTO annotations(trace_id,service,key,value) VALUES(?1,?2,?3,?4)");
  Stmt svc(db_,
           "INSERT INTO trace_services(trace_id,name,type,has_error,has_fault,has_throttle) VALUES(?1,?2,?3,?4,?5,?6) "
           "ON CONFLICT(trace_id,name,type) DO UPDATE SET has_error=has_error|excluded.has_error, "
           "has_fault=has_fault|excluded.has_fault, has_throttle=has_throttle|excluded.has_throttle");
  // An in-progress subsegment streamed on its own is superseded once its finished copy arrives
  // embedded in its parent: drop the stub so the trace is no longer partial.
  Stmt superseded(db_, "DELETE FROM segments WHERE trace_id=?1 AND id=?2 AND kind=1 AND in_progress=1");
  if (!superseded.ok() || !put.ok() || !trace.ok() || !root.ok() || !ann.ok() || !svc.ok()) {
    Error e = DbError(db_, "prepare");
    (void)Exec("ROLLBACK");  // best effort: the error being returned is the one that matters
    return e;
  }
  double longest = longest_trace_seconds_;
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string why;
    auto e = ExtractDoc(parser, docs[i], &why);
    if (!e) {
      rejected.emplace_back(i, why);
      continue;
    }
    put.Text(1, e->trace_id).Text(2, e->id).Text(3, e->parent_id).Int(4, e->independent_subsegment ? 1 : 0).Real(5, e->start);
    if (e->end) put.Real(6, *e->end); else put.Null(6);
    put.Int(7, e->in_progress ? 1 : 0).Text(8, docs[i]);
    if (put.Step() != SQLITE_DONE) {
      Error err = DbError(db_, "insert segment");
      put.Reset();
      (void)Exec("ROLLBACK");  // best effort: the error being returned is the one that matters
      return err;
    }
    put.Reset();
    if (sqlite3_changes(db_) == 0) continue;  // an in-progress copy of a completed segment: ignored
    const double end = e->end.value_or(e->start);
    trace.Text(1, e->trace_id).Int(2, TraceIdEpoch(e->trace_id)).Real(3, e->start).Real(4, end)
        .Int(5, e->error).Int(6, e->fault).Int(7, e->throttle);
    if (trace.Step() == SQLITE_ROW) {
      longest = std::max(longest, sqlite3_column_double(trace.get(), 1) - sqlite3_column_double(trace.get(), 0));
      trace.Step();  // SQLITE_DONE
    }
    trace.Reset();
    const std::string service = e->independent_subsegment ? std::string() : e->name;
    if (!e->independent_subsegment && e->parent_id.empty()) {
      root.Text(1, e->trace_id).Real(2, e->start);
      if (e->end) root.Real(3, *e->end); else root.Null(3);
      root.Text(4, e->name).Text(5, e->origin).Text(6, e->http_url);
      if (e->http_status) root.Int(7, *e->http_status); else root.Null(7);
      root.Text(8, e->http_method).Text(9, e->user_agent).Text(10, e->client_ip).Text(11, e->user);
      root.Step();
      root.Reset();
    }
    for (const auto& id : e->embedded_complete_ids) {
      superseded.Text(1, e->trace_id).Text(2, id);
      superseded.Step();
      superseded.Reset();
    }
    if (!e->independent_subsegment) {
      svc.Text(1, e->trace_id).Text(2, e->name).Text(3, e->origin);
      svc.Int(4, e->own_error).Int(5, e->own_fault).Int(6, e->own_throttle);
      svc.Step();
      svc.Reset();
    }
    for (const auto& called : e->called_services) {
      svc.Text(1, e->trace_id).Text(2, called.name).Text(3, called.type);
      svc.Int(4, called.error).Int(5, called.fault).Int(6, called.throttle);
      svc.Step();
      svc.Reset();
    }
    for (const auto& [k, v] : e->annotations) {
      ann.Text(1, e->trace_id).Text(2, service).Text(3, k).Text(4, v);
      ann.Step();
      ann.Reset();
    }
  }
  if (longest > longest_trace_seconds_) {
    Stmt save(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('longest_trace_seconds', ?1)");
    save.Real(1, longest);
    save.Step();
  }
  if (auto st = Exec("COMMIT"); !st) {
    (void)Exec("ROLLBACK");  // best effort: the error being returned is the one that matters
    return st.error();
  }
  longest_trace_seconds_ = longest;
  return rejected;
}

Result<std::vector<TraceSummaryRow>> TraceStore::LoadSummaries(sqlite3_stmt* raw) {
  std::vector<TraceSummaryRow> out;
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
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return DbError(db_, "list traces");
  if (out.empty()) return out;
  // Annotations and services for the whole page in two queries, not two per trace.
  std::map<std::string, TraceSummaryRow*> by_id;
  std::string in = "(";
  for (size_t i = 0; i < out.size(); ++i) {
    by_id[out[i].trace_id] = &out[i];
    in += i ? ",?" : "?";
  }
  in += ")";
  Stmt ann(db_, ("SELECT trace_id, key, service, value FROM annotations WHERE trace_id IN " + in +
                 " ORDER BY trace_id, key, service, value").c_str());
  Stmt svc(db_, ("SELECT trace_id, name, type, has_error, has_fault, has_throttle FROM trace_services WHERE trace_id IN " + in +
                 " ORDER BY trace_id, name, type").c_str());
  for (size_t i = 0; i < out.size(); ++i) {
    ann.Text(static_cast<int>(i + 1), out[i].trace_id);
    svc.Text(static_cast<int>(i + 1), out[i].trace_id);
  }
  while (ann.Step() == SQLITE_ROW) by_id[ann.ColText(0)]->annotations.push_back({ann.ColText(1), ann.ColText(2), ann.ColText(3)});
  while (svc.Step() == SQLITE_ROW) {
    TraceSummaryRow* row = by_id[svc.ColText(0)];
    row->services.emplace_back(svc.ColText(1), svc.ColText(2));
    row->service_flags.push_back({sqlite3_column_int(svc.get(), 3) != 0, sqlite3_column_int(svc.get(), 4) != 0,
                                  sqlite3_column_int(svc.get(), 5) != 0});
  }
  return out;
}

namespace {
constexpr const char* kSummaryColumns =
    "t.trace_id, t.start_time, t.end_time, t.root_start, t.root_end, t.root_name, t.root_origin, t.http_url, "
    "t.http_status, t.http_method, t.user_agent, t.client_ip, t.user, t.has_error, t.has_fault, t.has_throttle, "
    "t.revision, EXISTS(SELECT 1 FROM segments s WHERE s.trace_id=t.trace_id AND s.in_progress=1)";
}  // namespace

// Cursor: hex of "<order>|<time key %.17g>|<trace id>", order T (trace-id epoch) or E (start time).
// Hex keeps it opaque and safe in any JSON or URL without escaping.
namespace {

struct ListPosition {
  double key = 0;
  std::string trace_id;
};

std::string HexOf(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::optional<std::string> FromHex(std::string_view hex) {
  auto nibble = [](char c) { return c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1); };
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

Result<std::optional<ListPosition>> DecodeCursor(const ListQuery& q) {
  if (q.cursor.empty()) return std::optional<ListPosition>();
  const Error bad = Error::InvalidArgument("invalid listing cursor");
  auto text = q.cursor.size() <= 512 ? FromHex(q.cursor) : std::nullopt;
  if (!text || text->size() < 4 || (*text)[0] != (q.by_trace_id_time ? 'T' : 'E') || (*text)[1] != '|') return bad;
  const size_t bar = text->find('|', 2);
  if (bar == std::string::npos || bar + 1 == text->size()) return bad;
  const std::string number = text->substr(2, bar - 2);
  char* used = nullptr;
  const double key = std::strtod(number.c_str(), &used);
  if (number.empty() || used != number.c_str() + number.size() || !std::isfinite(key)) return bad;
  return std::optional<ListPosition>(ListPosition{key, text->substr(bar + 1)});
}

}  // namespace

std::string ListCursorAfter(const ListQuery& q, const TraceSummaryRow& row) {
  const double key = q.by_trace_id_time ? static_cast<double>(TraceIdEpoch(row.trace_id)) : row.start_time;
  char number[40];
  std::snprintf(number, sizeof number, "%.17g", key);
  return HexOf(std::string(q.by_trace_id_time ? "T|" : "E|") + number + "|" + row.trace_id);
}

Result<std::vector<TraceSummaryRow>> TraceStore::ListTraces(const ListQuery& q) {
  auto after = DecodeCursor(q);
  if (!after) return after.error();
  std::lock_guard lock(mu_);
  const std::string time_col = q.by_trace_id_time ? "t.trace_time" : "t.start_time";
  const double start = q.by_trace_id_time ? std::floor(q.start_time) : q.start_time;
  // SQLite seeks the index with one lower bound only, so give it exactly one: the range start, or
  // on later pages the resume point (`after` >= start). With both bounds in the WHERE clause it once
  // picked the pagination bound of -inf and walked the index from the oldest trace: 0.4 s instead of
  // 1 ms for a first page over 1M traces.
  const bool resume = *after && (*after)->key >= start;
  const std::string lower = resume ? time_col + " >= ?1 AND (" + time_col + " > ?1 OR t.trace_id > ?4)"
                                   : time_col + " >= ?1";
  const std::string sql = std::string("SELECT ") + kSummaryColumns + " FROM traces t WHERE " + lower + " AND " +
                          time_col + " <= ?2 ORDER BY " + time_col + ", t.trace_id LIMIT ?5";
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return DbError(db_, "prepare list");
  s.Real(1, resume ? (*after)->key : start).Real(2, q.end_time);
  if (resume) s.Text(4, (*after)->trace_id);
  s.Int(5, static_cast<int64_t>(q.limit));
  return LoadSummaries(s.get());
}

Result<std::optional<TraceSummaryRow>> TraceStore::Summary(const std::string& trace_id) {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("SELECT ") + kSummaryColumns + " FROM traces t WHERE t.trace_id = ?1";
  Stmt s(db_, sql.c_str());
  s.Text(1, trace_id);
  auto rows = LoadSummaries(s.get());
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<TraceSummaryRow>();
  return std::optional<TraceSummaryRow>(std::move(rows->front()));
}

Result<std::vector<StoredSegment>> TraceStore::SegmentsOf(const std::string& trace_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, parent_id, kind, doc FROM segments WHERE trace_id=?1 ORDER BY start_time, id");
  if (!s.ok()) return DbError(db_, "prepare segments");
  s.Text(1, trace_id);
  std::vector<StoredSegment> out;
  while (s.Step() == SQLITE_ROW)
    out.push_back({s.ColText(0), s.ColText(1), sqlite3_column_int(s.get(), 2) == 1, s.ColText(3)});
  return out;
}

Result<std::vector<std::string>> TraceStore::DocumentsInRange(double start, double end, size_t max_traces,
                                                              bool* truncated) {
  std::lock_guard lock(mu_);
  // A trace overlapping [start, end] started at most the longest trace seen before `start` (?4): that
  // lower bound keeps the index scan to the window instead of everything older than its end.
  const double earliest = start - longest_trace_seconds_ - 1;
  Stmt count(db_,
             "SELECT count(*) FROM (SELECT 1 FROM traces WHERE start_time >= ?4 AND start_time <= ?2 AND end_time >= ?1 "
             "LIMIT ?3 + 1)");
  count.Real(1, start).Real(2, end).Int(3, static_cast<int64_t>(max_traces)).Real(4, earliest);
  *truncated = count.Step() == SQLITE_ROW && static_cast<size_t>(sqlite3_column_int64(count.get(), 0)) > max_traces;
  Stmt s(db_,
         "SELECT s.doc FROM segments s JOIN (SELECT trace_id FROM traces WHERE start_time >= ?4 AND start_time <= ?2 "
         "AND end_time >= ?1 ORDER BY start_time DESC LIMIT ?3) t ON s.trace_id = t.trace_id");
  if (!s.ok()) return DbError(db_, "prepare range");
  s.Real(1, start).Real(2, end).Int(3, static_cast<int64_t>(max_traces)).Real(4, earliest);
  std::vector<std::string> out;
  while (s.Step() == SQLITE_ROW) out.push_back(s.ColText(0));
  return out;
}

Status TraceStore::PutSetting(const std::string& key, const std::string& value) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  s.Text(1, "setting:" + key).Text(2, value);
  if (s.Step() != SQLITE_DONE) return DbError(db_, "save setting " + key);
  return OkStatus();
}

Result<std::optional<std::string>> TraceStore::GetSetting(const std::string& key) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?1");
  s.Text(1, "setting:" + key);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.ColText(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return DbError(db_, "load setting " + key);
}

uint64_t TraceStore::ApproximateBytes() {
  std::lock_guard lock(mu_);
  Stmt pc(db_, "PRAGMA page_count");
  Stmt ps(db_, "PRAGMA page_size");
  if (pc.Step() != SQLITE_ROW || ps.Step() != SQLITE_ROW) return 0;
  return static_cast<uint64_t>(sqlite3_column_int64(pc.get(), 0)) * static_cast<uint64_t>(sqlite3_column_int64(ps.get(), 0));
}

Result<int64_t> TraceStore::EnforceRetention(double now) {
  int64_t deleted = 0;
  auto delete_where = [&](const std::string& cond, double arg, int64_t limit) -> Status {
    std::lock_guard lock(mu_);
    if (auto st = Exec("BEGIN IMMEDIATE"); !st) return st;
    const std::string victims = "SELECT trace_id FROM traces WHERE " + cond + " ORDER BY start_time LIMIT " + std::to_string(limit);
    for (const char* table : {"segments", "annotations", "trace_services"}) {
      Stmt s(db_, (std::string("DELETE FROM ") + table + " WHERE trace_id IN (" + victims + ")").c_str());
      s.Real(1, arg);
      s.Step();
    }
    Stmt t(db_, ("DELETE FROM traces WHERE trace_id IN (" + victims + ")").c_str());
    t.Real(1, arg);
    t.Step();
    deleted += sqlite3_changes(db_);
    return Exec("COMMIT");
  };
  if (options_.retention_seconds > 0) {
    if (auto st = delete_where("start_time < ?1", now - options_.retention_seconds, 1000000000); !st) return st.error();
  }
  if (options_.max_bytes > 0) {
    for (int round = 0; round < 100 && ApproximateBytes() > options_.max_bytes; ++round) {
      const int64_t before = deleted;
      if (auto st = delete_where("?1 = ?1", 0, 1000); !st) return st.error();
      {
        std::lock_guard lock(mu_);
        (void)Exec("PRAGMA wal_checkpoint(TRUNCATE)");  // best effort: shrinks the WAL
        (void)Exec("PRAGMA incremental_vacuum");  // best effort: returns freed pages
      }
      if (deleted == before) break;
    }
  }
  return deleted;
}

}  // namespace xrayd::store
