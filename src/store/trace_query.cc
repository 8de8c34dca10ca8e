#include "store/trace_query.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <optional>

#include "common/log.h"
#include "segment/segment.h"
#include "store/doc_codec.h"
#include "store/trace_store.h"

namespace xrayd::store {

IndexCondition IndexCondition::Annotation(std::string key, Value v) {
  IndexCondition c;
  c.kind = Kind::kAnnotation;
  c.key = std::move(key);
  c.value = std::move(v);
  return c;
}

IndexCondition IndexCondition::Service(std::string name, std::string type, Flag flag) {
  IndexCondition c;
  c.kind = Kind::kService;
  c.text = std::move(name);
  c.type = std::move(type);
  c.flag = flag;
  return c;
}

IndexCondition IndexCondition::UrlEquals(std::string url) {
  IndexCondition c;
  c.kind = Kind::kUrlEquals;
  c.text = std::move(url);
  return c;
}

IndexCondition IndexCondition::UrlContains(std::string part) {
  IndexCondition c;
  c.kind = Kind::kUrlContains;
  c.text = std::move(part);
  return c;
}

IndexCondition IndexCondition::TraceFlag(Flag flag) {
  IndexCondition c;
  c.kind = Kind::kFlag;
  c.flag = flag;
  return c;
}

IndexCondition IndexCondition::And(std::vector<IndexCondition> parts) {
  if (parts.size() == 1) return std::move(parts.front());
  IndexCondition c;
  c.kind = Kind::kAnd;
  c.all = std::move(parts);
  return c;
}

IndexCondition IndexCondition::Or(std::vector<IndexCondition> parts) {
  if (parts.size() == 1) return std::move(parts.front());
  IndexCondition c;
  c.kind = Kind::kOr;
  c.all = std::move(parts);
  return c;
}

namespace {

// The decoded JSON value of an annotation row's `column` (text, integer or real; booleans 1/0).
// The same text in the index and the producers' queries, so SQLite uses annotations_by_value.
std::string AnnotationValue(const std::string& column) {
  return "(CASE WHEN json_valid(" + column + ") THEN json_extract(" + column + ", '$') END)";
}

constexpr const char* kQueryIndexes = R"sql(
CREATE INDEX IF NOT EXISTS trace_services_by_service ON trace_services(service_id);
CREATE INDEX IF NOT EXISTS trace_services_error ON trace_services(service_id) WHERE has_error=1;
CREATE INDEX IF NOT EXISTS trace_services_fault ON trace_services(service_id) WHERE has_fault=1;
CREATE INDEX IF NOT EXISTS trace_services_throttle ON trace_services(service_id) WHERE has_throttle=1;
CREATE INDEX IF NOT EXISTS traces_by_user_agent ON traces(user_agent_id) WHERE user_agent_id != 0;
CREATE INDEX IF NOT EXISTS traces_error_by_start ON traces(start_time) WHERE has_error=1;
CREATE INDEX IF NOT EXISTS traces_fault_by_start ON traces(start_time) WHERE has_fault=1;
CREATE INDEX IF NOT EXISTS traces_throttle_by_start ON traces(start_time) WHERE has_throttle=1;
CREATE INDEX IF NOT EXISTS traces_error_by_id_time ON traces(trace_time) WHERE has_error=1;
CREATE INDEX IF NOT EXISTS traces_fault_by_id_time ON traces(trace_time) WHERE has_fault=1;
CREATE INDEX IF NOT EXISTS traces_throttle_by_id_time ON traces(trace_time) WHERE has_throttle=1;
CREATE VIRTUAL TABLE IF NOT EXISTS url_trigrams USING fts5(url, content='urls', content_rowid='id',
  tokenize='trigram case_sensitive 1');
)sql";

Status Exec(sqlite3* db, const char* sql, const char* what) {
  if (const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK)
    return detail::SqlErrorFor(db, rc, what);
  return OkStatus();
}

// The integer the one-row, one-column query `sql` returns (`none` without a row or for NULL).
Result<int64_t> QueryInt(sqlite3* db, const char* sql, int64_t none, const char* what) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(s);
  const int64_t v = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL ? sqlite3_column_int64(s, 0) : none;
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return detail::SqlErrorFor(db, rc, what);
  return v;
}

std::string Bucket(int shift) { return "(tid >> " + std::to_string(shift) + ")"; }

// The bucketed indexes (see trace_query.h), and the meta row saying which shift they are for.
constexpr const char* kBucketedIndexes[] = {"annotations_by_key_bucket_value", "traces_by_bucket_url"};
constexpr const char* kShiftKey = "index_bucket_shift";

// An index build in progress, logged every 10 s (sqlite3_progress_handler's context).
struct IndexBuild {
  using Clock = std::chrono::steady_clock;
  const char* name;
  Clock::time_point began = Clock::now(), logged = began;
  static int Tick(void* self) {
    auto* b = static_cast<IndexBuild*>(self);
    if (const auto now = Clock::now(); now - b->logged >= std::chrono::seconds(10)) {
      b->logged = now;
      XLOG_INFO("Trace store: still building index {} ({:.0f} s)", b->name, b->Seconds());
    }
    return 0;  // go on
  }
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - began).count(); }
};

// CREATE INDEX `name` ON `table_cols` when it does not exist, logged when over many rows.
Status CreateLogged(sqlite3* db, const char* name, const std::string& table_cols, const char* table) {
  const std::string exists = std::string("SELECT count(*) FROM sqlite_master WHERE name='") + name + "'";
  auto have = QueryInt(db, exists.c_str(), 0, "read schema");
  if (!have) return have.error();
  if (*have) return OkStatus();
  const std::string count = std::string("SELECT count(*) FROM ") + table;
  auto rows = QueryInt(db, count.c_str(), 0, "count rows");
  if (!rows) return rows.error();
  constexpr int64_t kLogRows = 100000;
  const bool log = *rows >= kLogRows;
  IndexBuild build{name};
  if (log) {
    XLOG_INFO("Trace store: building index {} over {} rows", name, *rows);
    sqlite3_progress_handler(db, 1000000, &IndexBuild::Tick, &build);
  }
  const std::string sql = std::string("CREATE INDEX ") + name + " ON " + table_cols;
  Status st = Exec(db, sql.c_str(), "create index");
  sqlite3_progress_handler(db, 0, nullptr, nullptr);
  if (st && log) XLOG_INFO("Trace store: index {} built in {:.1f} s", name, build.Seconds());
  return st;
}

// The shift meta records for the bucketed indexes, or `none` when it records none.
Result<int64_t> StoredShift(sqlite3* db, int64_t none) {
  const std::string get = std::string("SELECT CAST(value AS INTEGER) FROM meta WHERE key='") + kShiftKey + "'";
  return QueryInt(db, get.c_str(), none, "read index bucket shift");
}

// The bucketed indexes for `shift`: dropped first when built for another one (or none recorded).
Status EnsureBucketedIndexes(sqlite3* db, int shift) {
  auto stored = StoredShift(db, -1);
  if (!stored) return stored.error();
  if (*stored != shift) {
    if (*stored >= 0) XLOG_INFO("Trace store: index bucket shift {} -> {}: rebuilding its indexes", *stored, shift);
    for (const char* name : kBucketedIndexes)
      if (auto st = Exec(db, (std::string("DROP INDEX IF EXISTS ") + name).c_str(), "drop index"); !st) return st;
    const std::string put = std::string("INSERT OR REPLACE INTO meta(key, value) VALUES('") + kShiftKey + "', '" +
                            std::to_string(shift) + "')";
    if (auto st = Exec(db, put.c_str(), "save index bucket shift"); !st) return st;
  }
  const std::string b = Bucket(shift);
  if (auto st = CreateLogged(db, kBucketedIndexes[0], "annotations(key_id, " + b + ", " + AnnotationValue("value") + ")",
                             "annotations");
      !st)
    return st;
  return CreateLogged(db, kBucketedIndexes[1], "traces(" + b + ", url_id)", "traces");
}

}  // namespace

Result<int> detail::IndexBucketShift(sqlite3* db) {
  auto v = StoredShift(db, kDefaultIndexBucketShift);
  if (!v) return v.error();
  return static_cast<int>(std::clamp<int64_t>(*v, 0, 62));
}

std::string detail::EveryBucket(int shift) {
  const std::string s = std::to_string(shift);
  return Bucket(shift) + " IN (WITH RECURSIVE b(n) AS (SELECT (SELECT min(tid) FROM traces) >> " + s +
         " UNION ALL SELECT n + 1 FROM b WHERE n < (SELECT max(tid) FROM traces) >> " + s + ") SELECT n FROM b)";
}

Status EnsureQueryIndexes(sqlite3* db, int bucket_shift) {
  auto had_urls = QueryInt(db, "SELECT count(*) FROM sqlite_master WHERE name='url_trigrams'", 0, "read schema");
  if (!had_urls) return had_urls.error();  // the trigram index of the urls table (schema 6)
  if (auto st = Exec(db, "BEGIN IMMEDIATE", "begin query indexes"); !st) return st;
  Status st = EnsureBucketedIndexes(db, bucket_shift);
  if (st) st = Exec(db, kQueryIndexes, "create query indexes");
  // A store migrated to schema 6 (or whose index was dropped): the trigram index of its URLs.
  if (st && !*had_urls) st = Exec(db, "INSERT INTO url_trigrams(url_trigrams) VALUES('rebuild')", "index urls");
  if (st) st = Exec(db, "COMMIT", "commit query indexes");
  if (!st) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return st;
}

namespace {

// A statement's parameters by number: ?1..?9 are the caller's (?6, ?7: the time bounds of flagged
// traces' partial indexes), ?10 and up the condition's.
using Param = std::variant<std::string, double, int64_t>;

struct Params {
  std::vector<std::pair<int, Param>> values;
  int next = 10;
  std::string Add(Param p) {
    values.emplace_back(next, std::move(p));
    return "?" + std::to_string(next++);
  }
  void Set(int n, Param p) { values.emplace_back(n, std::move(p)); }
  // Binds those the statement has; false on a bind error.
  bool Bind(sqlite3_stmt* s) const {
    const int count = sqlite3_bind_parameter_count(s);
    for (const auto& [n, p] : values) {
      if (n > count) continue;
      int rc = SQLITE_OK;
      if (const auto* t = std::get_if<std::string>(&p))
        rc = sqlite3_bind_text(s, n, t->data(), static_cast<int>(t->size()), SQLITE_TRANSIENT);
      else if (const auto* d = std::get_if<double>(&p)) rc = sqlite3_bind_double(s, n, *d);
      else rc = sqlite3_bind_int64(s, n, std::get<int64_t>(p));
      if (rc != SQLITE_OK) return false;
    }
    return true;
  }
};

const char* FlagColumn(IndexCondition::Flag f) {
  switch (f) {
    case IndexCondition::Flag::kError: return "has_error";
    case IndexCondition::Flag::kFault: return "has_fault";
    case IndexCondition::Flag::kThrottle: return "has_throttle";
    case IndexCondition::Flag::kNone: break;
  }
  return nullptr;
}

// FTS5 string literal: the text in double quotes, inner quotes doubled (a phrase of trigrams).
std::string FtsPhrase(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

// The WHERE terms (on a row of `alias`, no leading AND) a leaf needs, with its parameters.
std::string LeafTerms(const IndexCondition& c, const std::string& alias, Params& p) {
  const std::string a = alias.empty() ? "" : alias + ".";
  switch (c.kind) {
    case IndexCondition::Kind::kAnnotation: {
      std::string sql = a + "key_id = (SELECT id FROM names WHERE name = " + p.Add(c.key) + ") AND " +
                        AnnotationValue(a + "value");
      if (const auto* s = std::get_if<std::string>(&c.value)) return sql + " = " + p.Add(*s);
      if (const auto* b = std::get_if<bool>(&c.value)) return sql + " = " + p.Add(int64_t{*b ? 1 : 0});
      // Both sides parse the number's text: allow for a last-digit difference.
      const double x = std::get<double>(c.value), slack = std::max(std::fabs(x) * 1e-9, 1e-300);
      return sql + " BETWEEN " + p.Add(x - slack) + " AND " + p.Add(x + slack);
    }
    case IndexCondition::Kind::kService: {
      std::string sql = a + "service_id IN (SELECT id FROM services WHERE name = " + p.Add(c.text);
      if (c.type == "service") sql += " AND type IN (" + p.Add(c.type) + ", '')";
      else if (!c.type.empty()) sql += " AND type = " + p.Add(c.type);
      sql += ")";
      if (const char* col = FlagColumn(c.flag)) sql += " AND " + a + col + " = 1";
      return sql;
    }
    case IndexCondition::Kind::kUrlEquals:  // url_id 0: no URL
      if (c.text.empty()) return a + "url_id = 0";
      return a + "url_id = (SELECT id FROM urls WHERE url = " + p.Add(c.text) + ")";
    case IndexCondition::Kind::kUrlContains:
      return "instr(coalesce((SELECT url FROM urls WHERE id = " + a + "url_id), ''), " + p.Add(c.text) + ") > 0";
    case IndexCondition::Kind::kFlag: return a + FlagColumn(c.flag) + " = 1";
    default: return "0";
  }
}

const char* LeafTable(IndexCondition::Kind k) {
  switch (k) {
    case IndexCondition::Kind::kAnnotation: return "annotations";
    case IndexCondition::Kind::kService: return "trace_services";
    default: return "traces";
  }
}

// A condition as a per-trace test of `outer`.tid: EXISTS probes on the tables' primary keys.
std::string Probe(const IndexCondition& c, Params& p, const std::string& outer = "c") {
  if (c.kind == IndexCondition::Kind::kAnd || c.kind == IndexCondition::Kind::kOr) {
    std::string sql = "(";
    for (size_t i = 0; i < c.all.size(); ++i)
      sql += (i ? (c.kind == IndexCondition::Kind::kAnd ? " AND " : " OR ") : "") + Probe(c.all[i], p, outer);
    return sql + ")";
  }
  return std::string("EXISTS(SELECT 1 FROM ") + LeafTable(c.kind) + " x WHERE x.tid = " + outer + ".tid AND " +
         LeafTerms(c, "x", p) + ")";
}

// The trace flag a leaf implies: a trace flag's own, or a service's own flag (the writer sets a
// service's flag only from an entity of the trace's documents, which sets the trace's flag too:
// both are ORs over the same entities, never cleared).
std::optional<IndexCondition::Flag> ImpliedTraceFlag(const IndexCondition& c) {
  if ((c.kind == IndexCondition::Kind::kFlag || c.kind == IndexCondition::Kind::kService) &&
      c.flag != IndexCondition::Flag::kNone)
    return c.flag;
  return std::nullopt;
}

// When the condition implies a trace flag (a flag, a service's flag, or an AND with one of them):
// the WHERE terms (on a row of `traces t`) that walk that flag's partial index in listing order and
// test the rest of the condition on each row.
std::optional<std::string> FlagWalk(const IndexCondition& c, Params& p) {
  const bool is_and = c.kind == IndexCondition::Kind::kAnd;
  const std::vector<IndexCondition> one{c};
  const std::vector<IndexCondition>& parts = is_and ? c.all : one;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto flag = ImpliedTraceFlag(parts[i]);
    if (!flag) continue;
    std::string sql = std::string(" AND t.") + FlagColumn(*flag) + " = 1";
    for (size_t k = 0; k < parts.size(); ++k)
      if (k != i || parts[k].kind != IndexCondition::Kind::kFlag) sql += " AND " + Probe(parts[k], p, "t");
    return sql;
  }
  return std::nullopt;
}

// A leaf as a producer of trace keys (tid), found by its index. Annotations and URLs: by their
// bucketed index (shift `shift`), one seek per bucket.
std::string LeafProducer(const IndexCondition& c, const std::string& time_col, int shift, Params& p) {
  const std::string buckets = " AND " + detail::EveryBucket(shift);
  if (c.kind == IndexCondition::Kind::kUrlContains)  // by the trigram index of the distinct URLs
    return "SELECT tid FROM traces WHERE url_id IN (SELECT rowid FROM url_trigrams WHERE url_trigrams MATCH " +
           p.Add(FtsPhrase(c.text)) + ")" + buckets;
  std::string sql = std::string("SELECT tid FROM ") + LeafTable(c.kind) + " WHERE " + LeafTerms(c, "", p);
  if (c.kind == IndexCondition::Kind::kAnnotation || c.kind == IndexCondition::Kind::kUrlEquals) sql += buckets;
  // Flagged traces by their partial index, within the range's bounds (?6 .. ?7).
  if (c.kind == IndexCondition::Kind::kFlag) sql += " AND " + time_col + " >= ?6 AND " + time_col + " <= ?7";
  return sql;
}

// Plans a condition as a producer of candidate trace keys whose row count is bounded by `count`.
class Planner {
 public:
  Planner(sqlite3* db, const std::string& time_col, int shift, int64_t bound, Params& p)
      : db_(db), time_col_(time_col), shift_(shift), cap_(std::max<int64_t>(0, bound) + 1), p_(p) {}

  struct Plan {
    std::string sql;  // SELECT tid ... (may repeat a key)
    int64_t count = 0;  // at most this many rows (capped at the bound + 1)
  };

  Result<Plan> Run(const IndexCondition& c) {
    switch (c.kind) {
      case IndexCondition::Kind::kAnd: return RunAnd(c);
      case IndexCondition::Kind::kOr: return RunOr(c);
      default: break;
    }
    Plan plan{LeafProducer(c, time_col_, shift_, p_), 0};
    auto n = Count(plan.sql);
    if (!n) return n.error();
    plan.count = *n;
    return plan;
  }

 private:
  // The most selective part produces; the others test each of its rows.
  Result<Plan> RunAnd(const IndexCondition& c) {
    std::optional<Plan> best;
    size_t best_at = 0;
    for (size_t i = 0; i < c.all.size(); ++i) {
      auto part = Run(c.all[i]);
      if (!part) return part;
      if (!best || part->count < best->count) best = std::move(*part), best_at = i;
      if (best->count == 0) break;
    }
    std::string probes;
    for (size_t i = 0; i < c.all.size(); ++i)
      if (i != best_at) probes += " AND " + Probe(c.all[i], p_);
    return Plan{"SELECT c.tid FROM (" + best->sql + ") c WHERE 1" + probes, best->count};
  }

  Result<Plan> RunOr(const IndexCondition& c) {
    Plan plan;
    for (size_t i = 0; i < c.all.size(); ++i) {
      auto part = Run(c.all[i]);
      if (!part) return part;
      plan.sql += (i ? " UNION ALL " : "") + ("SELECT tid FROM (" + part->sql + ")");
      plan.count = std::min(cap_, plan.count + part->count);
      if (plan.count >= cap_) break;  // too many already: the caller scans
    }
    return plan;
  }

  Result<int64_t> Count(const std::string& producer) {
    const std::string sql = "SELECT count(*) FROM (" + producer + " LIMIT " + std::to_string(cap_) + ")";
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr);
    if (rc == SQLITE_OK && !p_.Bind(s)) rc = SQLITE_RANGE;
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    const int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return detail::SqlErrorFor(db_, rc, "count index candidates");
    return n;
  }

  sqlite3* const db_;
  const std::string time_col_;
  const int shift_;  // of the bucketed indexes
  const int64_t cap_;
  Params& p_;
};

// ---- Cursor: hex of "<order>|<time key %.17g>|<trace key>", order T (trace-id epoch) or E (start
// time); the trace key (traces.tid) orders traces of the same time. Hex keeps it opaque and safe in
// any JSON or URL without escaping.

struct ListPosition {
  double key = 0;
  int64_t tid = 0;
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
  const std::string tid_text = text->substr(bar + 1);
  // Before schema 6 the last field was the trace id ("1-<8 hex>-<24 hex>").
  if (tid_text.size() == 35 && tid_text.starts_with("1-") && tid_text[10] == '-')
    return Error::InvalidArgument(std::string(kCursorBeforeUpgrade));
  char* tid_end = nullptr;
  errno = 0;
  const long long tid = std::strtoll(tid_text.c_str(), &tid_end, 10);
  if (errno != 0 || tid_end != tid_text.c_str() + tid_text.size() || tid_text[0] == '-' || tid_text[0] == '+')
    return bad;
  return std::optional<ListPosition>(ListPosition{key, static_cast<int64_t>(tid)});
}

}  // namespace

std::string ListCursorAfter(const ListQuery& q, const TraceSummaryRow& row) {
  const double key = q.by_trace_id_time ? static_cast<double>(segment::TraceIdEpoch(row.trace_id)) : row.start_time;
  char number[40];
  std::snprintf(number, sizeof number, "%.17g", key);
  return HexOf(std::string(q.by_trace_id_time ? "T|" : "E|") + number + "|" + std::to_string(row.key));
}

namespace {

// Candidates an index plan prefers to a flag walk.
constexpr int64_t kFewCandidates = 1000;

// ListTraces in reader `db`'s transaction, resuming after `after`.
Result<std::vector<TraceSummaryRow>> ListOn(sqlite3* db, const ListQuery& q, const std::optional<ListPosition>& after,
                                            ListPlan* plan) {
  const std::string time_col = q.by_trace_id_time ? "t.trace_time" : "t.start_time";
  const double start = q.by_trace_id_time ? std::floor(q.start_time) : q.start_time;
  // SQLite seeks the index with one lower bound only, so give it exactly one: the range start, or
  // on later pages the resume point (`after` >= start). With both bounds in the WHERE clause it once
  // picked the pagination bound of -inf and walked the index from the oldest trace: 0.4 s instead of
  // 1 ms for a first page over 1M traces.
  const bool resume = after && after->key >= start;
  const std::string lower = resume ? time_col + " >= ?1 AND (" + time_col + " > ?1 OR t.tid > ?4)"
                                   : time_col + " >= ?1";
  Params params;
  params.Set(1, resume ? after->key : start);
  params.Set(2, q.end_time);
  if (resume) params.Set(4, after->tid);
  params.Set(5, static_cast<int64_t>(q.limit));
  params.Set(6, resume ? after->key : start);
  params.Set(7, q.end_time);
  std::string from = "traces t", also;
  if (q.condition) {
    // A flag's partial index walked in order stops at the page: better than sorting many
    // candidates, worse than a few. With a walk possible, counting stops past those few.
    Params probe_params;
    const bool can_walk = FlagWalk(*q.condition, probe_params).has_value();
    const int64_t bound = can_walk ? std::min(q.max_index_candidates, kFewCandidates) : q.max_index_candidates;
    auto shift = detail::IndexBucketShift(db);
    if (!shift) return shift.error();
    // Candidates' time bounds (flag partial indexes) use the bare column name.
    Planner planner(db, q.by_trace_id_time ? "trace_time" : "start_time", *shift, bound, params);
    auto candidates = planner.Run(*q.condition);
    if (!candidates) return candidates.error();
    if (plan) plan->candidates = candidates->count;
    const bool prefer_walk = can_walk && candidates->count > kFewCandidates;
    if (candidates->count <= q.max_index_candidates && !prefer_walk) {
      if (plan) plan->by_index = true;
      // CROSS JOIN: SQLite reads the candidates first and looks each trace up by its key.
      from = "(SELECT DISTINCT tid FROM (" + candidates->sql + ")) cand CROSS JOIN traces t ON t.tid = cand.tid";
    } else if (auto walk = FlagWalk(*q.condition, params)) {
      // Many flagged traces: their partial index is in listing order, so a page reads about as
      // many index entries as the other parts need to find its rows.
      if (plan) plan->by_index = plan->flag_walk = true;
      also = *walk;
    }
  }
  // The page's trace ids first, then their summary columns: the columns (an EXISTS probe of the
  // segments among them) are computed for the `limit` rows kept, not for every candidate sorted.
  const std::string order = " ORDER BY " + time_col + ", t.tid";
  const std::string sql = std::string("SELECT ") + detail::kSummaryColumns + " FROM (SELECT t.tid FROM " + from +
                          " WHERE " + lower + " AND " + time_col + " <= ?2" + also + order +
                          " LIMIT ?5) page CROSS JOIN traces t ON t.tid = page.tid" + order;
  if (plan) plan->sql = sql;
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
  if (rc == SQLITE_OK && !params.Bind(s)) rc = SQLITE_RANGE;
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return detail::SqlErrorFor(db, rc, "prepare list");
  }
  auto rows = detail::LoadSummaries(db, s);
  sqlite3_finalize(s);
  return rows;
}

}  // namespace

Result<std::vector<TraceSummaryRow>> TraceStore::ListTraces(const ListQuery& q, ListPlan* plan) {
  auto after = DecodeCursor(q);
  if (!after) return after.error();
  Result<std::vector<TraceSummaryRow>> rows = std::vector<TraceSummaryRow>();
  auto st = Read([&](sqlite3* db) -> Status {
    rows = ListOn(db, q, *after, plan);
    return rows ? OkStatus() : Status(rows.error());
  });
  if (!st) return Report(st.error());
  return rows;
}

namespace {

// A trace's segments (SegmentsOf and SegmentsOfTraces), run once per trace on one connection.
constexpr const char* kSegmentsOfTrace =
    "SELECT s.id, s.parent_id, s.kind, s.doc, s.dict FROM traces t JOIN segments s ON s.tid = t.tid "
    "WHERE t.trace_id=?1 ORDER BY s.start_time, s.id";

// Reads trace `trace_id`'s segments with the prepared kSegmentsOfTrace `s` (reset afterwards).
Status ReadSegmentsOf(sqlite3* db, sqlite3_stmt* s, const std::string& trace_id, Dictionaries& dicts,
                      std::vector<StoredSegment>& out) {
  sqlite3_reset(s);
  if (const int rc = sqlite3_bind_text(s, 1, trace_id.data(), static_cast<int>(trace_id.size()), SQLITE_STATIC);
      rc != SQLITE_OK)
    return detail::SqlErrorFor(db, rc, "bind trace id");
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto doc = detail::ReadDocument(db, s, 3, dicts);
    if (!doc) return doc.error();
    auto text = [&](int i) {
      const auto* t = sqlite3_column_text(s, i);
      return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
    };
    out.push_back({text(0), text(1), sqlite3_column_int(s, 2) == 1, std::move(*doc)});
  }
  if (rc != SQLITE_DONE) return detail::SqlErrorFor(db, rc, "read segments");
  return OkStatus();
}

}  // namespace

Result<std::vector<std::vector<StoredSegment>>> TraceStore::SegmentsOfTraces(const std::vector<std::string>& trace_ids) {
  std::vector<std::vector<StoredSegment>> out(trace_ids.size());
  if (trace_ids.empty()) return out;
  auto st = Read([&](sqlite3* db) -> Status {
    sqlite3_stmt* s = nullptr;
    if (const int rc = sqlite3_prepare_v2(db, kSegmentsOfTrace, -1, &s, nullptr); rc != SQLITE_OK) {
      sqlite3_finalize(s);
      return detail::SqlErrorFor(db, rc, "prepare segments");
    }
    Status read = OkStatus();
    for (size_t i = 0; i < trace_ids.size() && read; ++i) read = ReadSegmentsOf(db, s, trace_ids[i], dicts_, out[i]);
    sqlite3_finalize(s);  // before the read transaction ends
    return read;
  });
  if (!st) return Report(st.error());
  return out;
}

namespace {

// The documents of the newest `max` traces of `window` (FROM ... WHERE over `traces t`), and
// whether it holds more.
Result<std::vector<std::string>> ReadWindow(sqlite3* db, Dictionaries& dicts, const std::string& window,
                                            const Params& params, size_t max, bool* truncated) {
  const std::string count_sql = "SELECT count(*) FROM (SELECT 1 FROM " + window + " LIMIT ?3 + 1)";
  const std::string docs_sql = "SELECT s.doc, s.dict FROM segments s JOIN (SELECT t.tid FROM " + window +
                               " ORDER BY t.start_time DESC LIMIT ?3) w ON s.tid = w.tid";
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db, count_sql.c_str(), -1, &s, nullptr);
  if (rc == SQLITE_OK && !params.Bind(s)) rc = SQLITE_RANGE;
  if (rc == SQLITE_OK) rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *truncated = static_cast<size_t>(sqlite3_column_int64(s, 0)) > max;
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW) return detail::SqlErrorFor(db, rc, "count window");
  rc = sqlite3_prepare_v2(db, docs_sql.c_str(), -1, &s, nullptr);
  if (rc == SQLITE_OK && !params.Bind(s)) rc = SQLITE_RANGE;
  std::vector<std::string> out;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    if ((rc = sqlite3_step(s)) != SQLITE_ROW) break;
    auto doc = detail::ReadDocument(db, s, 0, dicts);
    if (!doc) {
      sqlite3_finalize(s);
      return doc.error();
    }
    out.push_back(std::move(*doc));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return detail::SqlErrorFor(db, rc, "read window");
  return out;
}

}  // namespace

Result<double> detail::LongestTraceSeconds(sqlite3* db) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='longest_trace_seconds'", -1, &s, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(s);
  const double longest = rc == SQLITE_ROW ? sqlite3_column_double(s, 0) : 0;
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlErrorFor(db, rc, "load longest trace");
  return longest;
}

Result<std::vector<std::string>> TraceStore::CandidateDocumentsInRange(double start, double end, size_t max_traces,
                                                                       const IndexCondition& condition,
                                                                       bool* truncated, ListPlan* plan) {
  std::optional<std::vector<std::string>> docs;  // unset: too many candidates
  auto st = Read([&](sqlite3* db) -> Status {
    auto longest = detail::LongestTraceSeconds(db);
    if (!longest) return longest.error();
    // A trace overlapping [start, end] started at most the longest trace seen before `start`.
    const double earliest = start - *longest - 1;
    Params params;  // ?1 start, ?2 end, ?3 max, ?4 earliest; flags' partial indexes ?6 .. ?7
    params.Set(1, start);
    params.Set(2, end);
    params.Set(3, static_cast<int64_t>(max_traces));
    params.Set(4, earliest);
    params.Set(6, earliest);
    params.Set(7, end);
    auto shift = detail::IndexBucketShift(db);
    if (!shift) return shift.error();
    Planner planner(db, "start_time", *shift, kMaxIndexCandidates, params);
    auto candidates = planner.Run(condition);
    if (!candidates) return candidates.error();
    if (plan) plan->candidates = candidates->count;
    if (plan) plan->by_index = candidates->count <= kMaxIndexCandidates;
    if (candidates->count > kMaxIndexCandidates) return OkStatus();
    const std::string window = "(SELECT DISTINCT tid FROM (" + candidates->sql +
                               ")) cand CROSS JOIN traces t ON t.tid = cand.tid WHERE t.start_time >= ?4 "
                               "AND t.start_time <= ?2 AND t.end_time >= ?1";
    auto read = ReadWindow(db, dicts_, window, params, max_traces, truncated);
    if (!read) return read.error();
    docs = std::move(*read);
    return OkStatus();
  });
  if (!st) return Report(st.error());
  if (docs) return std::move(*docs);
  return DocumentsInRange(start, end, max_traces, truncated);
}

}  // namespace xrayd::store
