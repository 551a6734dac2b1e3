// Helpers shared by the state store and run lock tests, and the sites a
// store test runs on: STORE_TEST_CASE runs one body on a fresh SQLite file
// (offline) and on a fresh database of the test PostgreSQL server
// ([postgres]), so both stores keep one contract.
#pragma once

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/state/pg_store.h"
#include "engine/state/store.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::testing {

// A fresh directory under /tmp, removed with everything in it.
struct StoreDir {
  StoreDir() {
    char tmpl[] = "/tmp/runbook-state-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~StoreDir() { std::filesystem::remove_all(path); }
  std::string path;
};

inline mode_t ModeOf(const std::string& path) {
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

inline std::unique_ptr<StateStore> OpenStore(const std::string& path) {
  auto store = StateStore::Open(path);
  INFO(store.status().message());
  REQUIRE(store.ok());
  return std::move(*store);
}

inline RunRecord MakeRun(const std::string& id, const std::string& name = "upgrade",
                         int64_t created_ms = 1000) {
  RunRecord run;
  run.id = id;
  run.runbook_name = name;
  run.runbook_path = "/srv/runbooks/" + name + ".yaml";
  run.digest = "abc123";
  run.sources = {{"/srv/runbooks/" + name + ".yaml", "steps: []\n"}};
  run.params = {{"db", "main"}, {"password", "***"}};
  run.params_digest = "def456";
  run.lock_key = "db:main";
  run.created_ms = created_ms;
  run.updated_ms = created_ms;
  run.options = {{"yes", true}};
  return run;
}

inline StepRecord MakeStep(const std::string& run_id, const std::string& step_id,
                           StepStatus status = StepStatus::kRunning) {
  StepRecord step;
  step.run_id = run_id;
  step.step_id = step_id;
  step.status = status;
  return step;
}

// Where a store test opens its store.
class StoreSite {
 public:
  virtual ~StoreSite() = default;
  virtual std::string Location() const = 0;
  std::unique_ptr<StateStore> Open() const { return OpenStore(Location()); }
};

class SqliteSite : public StoreSite {
 public:
  std::string Location() const override { return dir_.path + "/state.db"; }

 private:
  StoreDir dir_;
};

// "postgresql://postgres:PASSWORD@127.0.0.1:PORT/DB" of a test database
// (the password percent-encoded).
inline std::string PostgresUri(const PgTestDb& db, const std::string& password) {
  std::string pw;
  for (unsigned char c : password) {
    if (isalnum(c)) {
      pw += static_cast<char>(c);
    } else {
      char hex[4];
      snprintf(hex, sizeof(hex), "%%%02X", c);
      pw += hex;
    }
  }
  return "postgresql://" + db.server().superuser + ":" + pw + "@" + db.server().host + ":" +
         std::to_string(db.server().port) + "/" + db.name();
}
inline std::string PostgresUri(const PgTestDb& db) { return PostgresUri(db, db.server().password); }

class PostgresSite : public StoreSite {
 public:
  std::string Location() const override { return PostgresUri(db_); }
  const PgTestDb& db() const { return db_; }

 private:
  PgTestDb db_{BlueServer(), "state"};
};

#define STORE_TEST_CASE_NAMED(title, fn)                       \
  static void fn(const ::runbook::testing::StoreSite& site);   \
  TEST_CASE("sqlite store: " title, "[state]") {               \
    ::runbook::testing::SqliteSite site;                       \
    fn(site);                                                  \
  }                                                            \
  TEST_CASE("postgresql store: " title, "[state][postgres]") { \
    ::runbook::testing::PostgresSite site;                     \
    fn(site);                                                  \
  }                                                            \
  static void fn(const ::runbook::testing::StoreSite& site)
#define STORE_TEST_CASE_CAT2(a, b) a##b
#define STORE_TEST_CASE_CAT(a, b) STORE_TEST_CASE_CAT2(a, b)
// A test case whose body uses `site` (a StoreSite&) to open its store.
#define STORE_TEST_CASE(title) \
  STORE_TEST_CASE_NAMED(title, STORE_TEST_CASE_CAT(StoreTestBody, __LINE__))

// Runs `sql` on a second connection and returns the first column of its row.
inline std::string QueryOther(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK);
  std::string out;
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  REQUIRE((rc == SQLITE_ROW || rc == SQLITE_DONE));
  return out;
}

}  // namespace runbook::testing
