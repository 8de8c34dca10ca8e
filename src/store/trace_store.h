// TraceStore: the embedded trace store behind `xrayd serve` (SQLite in WAL mode, one file).
//
// On-disk format (schema version 3, file DATA_DIR/traces.db; older files are upgraded on open):
//   segments(trace_id, id, parent_id, kind, start_time, end_time, in_progress, doc, stored_at)
//       one row per segment or independent subsegment document; a later document with the same
//       (trace_id, id) replaces the earlier one unless the earlier one is complete and the later
//       one is still in progress (so in-progress → complete converges in any arrival order).
//   traces(trace_id, ...)  a per-trace summary kept up to date on every Append: time bounds, the
//       root segment's HTTP fields, user and name, error/fault/throttle flags.
//   annotations(trace_id, service, key, value_json)  for summaries and filter expressions.
//   trace_services(trace_id, name, type, has_error, has_fault, has_throttle)  every service that sent
//       a segment (type = its origin) and every one it only called (remote/aws subsegments, typed as
//       the service graph infers them), with that service's own flags, for service()/edge() filters.
//   meta(key, value)  schema_version, longest_trace_seconds (bounds range scans) and settings
//       (sampling rules, groups).
// Retention deletes whole traces by age (start time) and, past a size bound, oldest first.
//
// Thread-safe: one mutex serialises access to the single connection; Append() commits before it
// returns, so an acknowledged segment survives a restart.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace xrayd::store {

struct StoreOptions {
  std::string data_dir;
  double retention_seconds = 7 * 24 * 3600;
  uint64_t max_bytes = 0;  // 0: no size bound
};

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

// A listing: traces in (time, trace_id) order, time being the trace id's epoch (by_trace_id_time,
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
};

// The cursor that resumes `query`'s listing after `row` (a row ListTraces returned for it).
std::string ListCursorAfter(const ListQuery& query, const TraceSummaryRow& row);

class TraceStore {
 public:
  static Result<std::unique_ptr<TraceStore>> Open(const StoreOptions& options);
  ~TraceStore();

  // Stores already-validated segment documents; per-document failures are returned by index
  // (a document that is not a JSON object with trace_id and id).
  Result<std::vector<std::pair<size_t, std::string>>> Append(const std::vector<std::string>& docs);

  Result<std::vector<TraceSummaryRow>> ListTraces(const ListQuery& query);
  Result<std::vector<StoredSegment>> SegmentsOf(const std::string& trace_id);
  Result<std::optional<TraceSummaryRow>> Summary(const std::string& trace_id);
  // Every document of the traces that overlap [start, end], at most `max_traces` traces (newest
  // first); for service graphs. `truncated` tells whether traces were left out.
  Result<std::vector<std::string>> DocumentsInRange(double start, double end, size_t max_traces, bool* truncated);

  // Small named settings kept with the traces (sampling rules, groups), as JSON text.
  Status PutSetting(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> GetSetting(const std::string& key);

  // Deletes traces older than the retention and, past max_bytes, the oldest; returns how many.
  Result<int64_t> EnforceRetention(double now_epoch_seconds);
  uint64_t ApproximateBytes();

 private:
  TraceStore(sqlite3* db, StoreOptions options) : db_(db), options_(std::move(options)) {}
  Status Exec(const char* sql);
  Status AddServiceFlagColumns();  // schema 2 -> 3, idempotent
  Result<std::vector<TraceSummaryRow>> LoadSummaries(sqlite3_stmt* stmt);

  std::mutex mu_;
  sqlite3* db_;  // guarded by mu_
  const StoreOptions options_;
  // The longest end - start of any trace stored (never lowered by retention: a safe bound), so range
  // scans can start at `window start - longest` instead of the oldest trace. Guarded by mu_; kept in
  // meta as longest_trace_seconds.
  double longest_trace_seconds_ = 0;
};

}  // namespace xrayd::store
