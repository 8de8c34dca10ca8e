// The trace store tests' common ground (src/store/*_test.cc): times, trace ids, batches of
// documents, and a fixture that opens a real store in its own temporary folder and captures the
// writer's SQLite connection (tests reach into it to make SQLite fail or to hold a transaction).
// Header-only; for tests.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/trace_store.h"

namespace xrayd::store::testing {

// Times in store tests are offsets from kT0 (2017-07-14): stored times must be epoch seconds
// between 2000 and 9999 (segment/segment.h).
inline constexpr double kT0 = 1500000000;

inline std::string TraceId(int i) {
  char id[40];
  std::snprintf(id, sizeof id, "1-5759e988-%024x", i);
  return id;
}

// One root segment per trace i in [first, first + n) starting at kT0 + i, annotated n = i, with
// `pad` bytes of metadata each, and (with_call) a remote call to "db".
inline std::vector<std::string> Batch(int first, int n, size_t pad = 0, bool with_call = false) {
  using nlohmann::json;
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) {
    json d = {{"trace_id", TraceId(i)}, {"id", "aaaaaaaaaaaaaaa1"}, {"name", "web"},
              {"start_time", kT0 + i}, {"end_time", kT0 + i + 0.5}, {"annotations", {{"n", i}}}};
    if (with_call)
      d["subsegments"] = json::array({{{"id", "bbbbbbbbbbbbbbb1"}, {"name", "db"}, {"namespace", "remote"},
                                       {"start_time", kT0 + i}, {"end_time", kT0 + i + 0.1}}});
    if (pad) d["metadata"] = {{"pad", std::string(pad, 'x')}};
    out.push_back(d.dump());
  }
  return out;
}

// A store in a fresh folder per test (removed after it). Open() captures the store's writer
// connection: the connection most recently opened in this process right after TraceStore::Open,
// caught with sqlite3_auto_extension (SQLite's hook for every new connection).
class StoreFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { sqlite3_auto_extension(reinterpret_cast<void (*)()>(&Capture)); }
  static void TearDownTestSuite() { sqlite3_reset_auto_extension(); }

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("xrayd-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_suite()->name() + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // (Re)opens the store on dir_ with `o` (its data_dir set here); sets writer_.
  void Open(StoreOptions o = {}) {
    store_.reset();
    o.data_dir = dir_.string();
    LastConnection() = nullptr;
    auto s = TraceStore::Open(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    writer_ = LastConnection();
    ASSERT_NE(writer_, nullptr);
  }

  std::filesystem::path dir_;
  std::unique_ptr<TraceStore> store_;
  sqlite3* writer_ = nullptr;  // the store's own writer connection (valid while store_ is open)

 private:
  static sqlite3*& LastConnection() {
    static sqlite3* last = nullptr;
    return last;
  }
  static int Capture(sqlite3* db, const char**, const void*) {
    LastConnection() = db;
    return SQLITE_OK;
  }
};

}  // namespace xrayd::store::testing
