// Listing queries of the trace store: the time-ordered listing behind GetTraceSummaries, and
// the indexes that let a selective filter find its traces without walking the time range.
//
// An IndexCondition is a *necessary* condition of the caller's filter, made of what the store can
// answer by index: an annotation's value, a service a trace went through (optionally with that
// service's own error/fault/throttle flag), the root's http.url (equal, or containing a substring
// of at least 3 characters), a trace-level flag, and AND/OR of those. The caller (api/
// filter_expression.h, the one home of the filter rules) derives it from the parsed filter and
// still evaluates the whole filter on every row it gets: a condition only narrows which rows the
// store reads, never which the caller keeps, so listings with and without it agree.
//
// Plans. With a condition, ListTraces first counts the traces the condition's indexes name
// (stopping at kMaxIndexCandidates + 1). At most that many: the "index" plan reads just those
// traces' summaries, keeps those in the query's range and cursor, in listing order. More: the
// "scan" plan, the time-ordered walk of the range as without a condition (an unselective filter
// fills its pages quickly; NextToken resumes as before). Either way the rows are those of the
// range after the cursor in (time, tid) order, skipping only rows the condition excludes, so
// a cursor from one plan resumes the other. One refinement of "scan": when the condition implies a
// trace flag (a trace flag, a service's own flag — the writer never sets one without the trace's —
// or an AND with one), the walk is of that flag's partial index instead of the whole range, testing
// the condition on each row ("flag walk"); it is also preferred to the candidates when they are more
// than 1,000 (sorting them would cost more than walking in order), and counting stops there.
// Either way the page's rows are chosen first and their summary columns read for those rows only.
//
// Indexes (created idempotently at open; see EnsureQueryIndexes). Tables name traces by their
// integer key (tid, assigned in arrival order: trace_store.h). The two indexes of high-cardinality
// values are time-clustered ("bucketed", schema 7): the trace's bucket, tid >> S (S: meta
// index_bucket_shift, StoreOptions::index_bucket_shift, 16 = 65,536 traces per bucket), comes
// right after the equality key, so the entries of new traces all land in the newest bucket's
// few pages whatever their value (an index ordered by value alone takes every insert on a random
// leaf of a B-tree far bigger than the page cache: ingest fell by half from 0.5M to 3M segments).
// Their producers seek every bucket, min(tid) >> S .. max(tid) >> S (EveryBucket), with the value:
//   annotations_by_key_bucket_value  annotations(key_id, tid >> S, JSON value decoded: text,
//                          integer/real, 1/0 for booleans)
//   traces_by_bucket_url   traces(tid >> S, url_id)
//   trace_services_by_service trace_services(service_id); trace_services_{error,fault,throttle}: the
//                          same, partial: only rows with that service's flag
//   traces_{error,fault,throttle}_by_{start,id_time}  partial indexes of flagged traces, by time (and tid)
//   url_trigrams (FTS5 external content of urls(id, url), trigram, case-sensitive): every distinct
//       root URL, written by the Append that first stores it (TraceStore's Writer: a cache or one
//       unique-index probe per root segment; the trigram row only for a new URL); the index of
//       CONTAINS. Retention deletes a URL (and its trigram row) with the last trace that has it.
// Conditions name interned values by subquery (`key_id = (SELECT id FROM names WHERE name = ?)`,
// `service_id IN (SELECT id FROM services WHERE ...)`, `url_id = (SELECT id FROM urls ...)`).
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace xrayd::store {

struct TraceSummaryRow;
class Dictionaries;

// Traces an index plan reads at most (ListQuery::max_index_candidates); past it, the listing
// scans the range.
inline constexpr int64_t kMaxIndexCandidates = 20000;

struct IndexCondition {
  enum class Kind { kAnnotation, kService, kUrlEquals, kUrlContains, kFlag, kAnd, kOr };
  enum class Flag { kNone, kError, kFault, kThrottle };
  using Value = std::variant<std::string, double, bool>;

  Kind kind = Kind::kAnd;
  std::string key;    // kAnnotation: the key
  Value value;        // kAnnotation: equals this value (a number within 1e-9 relative, for rounding)
  std::string text;   // kService: the name (never empty); kUrl*: the URL or the substring (>= 3 chars)
  std::string type;   // kService: the wanted type; "" any, "service" also matches a service without origin
  Flag flag = Flag::kNone;  // kFlag: the trace's; kService: that service's own (kNone: any)
  std::vector<IndexCondition> all;  // kAnd, kOr: two or more

  static IndexCondition Annotation(std::string key, Value v);
  static IndexCondition Service(std::string name, std::string type, Flag flag = Flag::kNone);
  static IndexCondition UrlEquals(std::string url);
  static IndexCondition UrlContains(std::string part);
  static IndexCondition TraceFlag(Flag flag);
  static IndexCondition And(std::vector<IndexCondition> parts);
  static IndexCondition Or(std::vector<IndexCondition> parts);
};

// How ListTraces answered (for tests and logs).
struct ListPlan {
  bool by_index = false;   // an index plan: the candidates', or the flag walk
  bool flag_walk = false;  // too many candidates, but a flag's partial index walked in listing order
  int64_t candidates = 0;  // traces the condition's indexes named (at most the bound + 1)
  std::string sql;         // the listing's statement (for EXPLAIN QUERY PLAN in tests)
};

// The InvalidArgument error message of a listing cursor an xrayd before schema 6 issued (it named
// the trace by its id, not its key). Such a cursor cannot resume exactly (traces of the same
// second were ordered by id then, by key now), so it is refused with this text, never guessed.
inline constexpr std::string_view kCursorBeforeUpgrade =
    "a listing cursor from before the store's upgrade to schema 6: list again from the first page";

// The bucket shift of a new store (see Indexes above).
inline constexpr int kDefaultIndexBucketShift = 16;

// Creates the indexes above if missing (and fills urls from the stored traces when it is new).
// The bucketed two are built for `bucket_shift`: when meta's index_bucket_shift differs (or is
// missing: a store migrated from schema 6), they are dropped, rebuilt and the new shift recorded.
// Building them over a big store takes seconds (measured: 5 s for a 1M-segment store, 1.4M
// annotations and 0.4M traces, on a loaded 2-core machine), logged with progress. Runs on
// the writer at open, in the caller's (autocommit) context.
Status EnsureQueryIndexes(sqlite3* db, int bucket_shift);

namespace detail {

// Shared with trace_store.cc (which owns the connections and the summary row format).
Error SqlErrorFor(sqlite3* db, int rc, const std::string& what);
extern const char* const kSummaryColumns;  // columns of `traces t` LoadSummaries reads
// Rows of a prepared kSummaryColumns query with their annotations and services (one snapshot).
Result<std::vector<TraceSummaryRow>> LoadSummaries(sqlite3* db, sqlite3_stmt* raw);
// The document in columns `col` (doc) and `col + 1` (dict) of a segments row, decompressed.
Result<std::string> ReadDocument(sqlite3* db, sqlite3_stmt* raw, int col, Dictionaries& dicts);
// The longest trace's span as the reader's snapshot sees it (0 when none stored yet).
Result<double> LongestTraceSeconds(sqlite3* db);
// The bucket shift the store's bucketed indexes were built for, in `db`'s snapshot.
Result<int> IndexBucketShift(sqlite3* db);
// The WHERE term (no leading AND) "the row's trace is in one of the stored buckets", on a table
// with a tid column (traces, annotations): with an equality on the column before it and one after
// it, SQLite seeks a bucketed index once per bucket (a recursive CTE lists them: this SQLite has
// no generate_series). Always true for a stored row, so it never changes a result, only the plan.
std::string EveryBucket(int shift);

}  // namespace detail
}  // namespace xrayd::store
