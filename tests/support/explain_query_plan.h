// Test helper: SQLite's EXPLAIN QUERY PLAN of a statement, so store tests can assert that a query
// seeks the index it was written for instead of scanning.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

namespace xrayd::testing {

// The plan's details, one per line, for `sql` prepared on `db` (parameters unbound). A statement
// that does not prepare fails the calling test and gives "".
inline std::string ExplainQueryPlan(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &s, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  std::string details;
  while (s && sqlite3_step(s) == SQLITE_ROW)
    details += reinterpret_cast<const char*>(sqlite3_column_text(s, 3)) + std::string("\n");
  sqlite3_finalize(s);
  return details;
}

}  // namespace xrayd::testing
