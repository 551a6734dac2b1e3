// Internal to engine/state: a prepared SQLite statement with bound
// parameters, and the helpers that turn SQLite failures and JSON columns into
// Status values (the JSON column helpers serve the PostgreSQL store too).
// Nothing here throws.
//
// Not thread-safe by itself: callers hold SqliteStateStore::mu_, which also keeps
// sqlite3_errmsg() meaning the statement that just failed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/status.h"
#include "engine/core/value.h"
#include "engine/state/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace runbook::state_internal {

class Stmt {
 public:
  // Prepares `sql`; check ok() (a failed prepare makes every Step() fail).
  Stmt(sqlite3* db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return stmt_ != nullptr; }

  // Parameters are 1-based, as in SQLite.
  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, const std::string& v);
  // Values are stored as JSON text.
  Stmt& BindJson(int i, const Value& v);

  // Returns SQLITE_ROW, SQLITE_DONE or an error code.
  int Step();
  // Steps a statement that returns no rows; false on error.
  bool Exec() { return Step() == kDone; }

  int64_t Int(int col) const;
  std::string Text(int col) const;

  static const int kRow;
  static const int kDone;

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int prepare_rc_ = 0;
};

// Dumps a Value for a JSON column. Invalid UTF-8 is replaced instead of
// throwing, so a stray byte in a command's output cannot abort a write.
std::string DumpJson(const Value& v);

// Parses a JSON column; a corrupt column becomes Status::Internal naming
// `what` (e.g. "step 'copy' column result").
Status ParseJson(const std::string& text, const std::string& what, Value* out);

// A step's undo entries as its JSON column holds them, and back; a corrupt
// column becomes Status::Internal naming `what`.
Value UndoToValue(const std::vector<UndoEntry>& undo);
Status UndoFromValue(const Value& list, const std::string& what, std::vector<UndoEntry>* undo);

// "state store PATH: OPERATION: <sqlite message>".
Status SqlError(sqlite3* db, const std::string& path, const std::string& operation);

// Runs a statement without parameters or rows (BEGIN, COMMIT, DDL).
bool ExecSql(sqlite3* db, const char* sql);

// A write transaction (BEGIN IMMEDIATE, so the write lock is taken up front
// and busy_timeout applies) that rolls back unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction();
  bool Begin();
  bool Commit();

 private:
  sqlite3* db_;
  bool open_ = false;
};

}  // namespace runbook::state_internal
