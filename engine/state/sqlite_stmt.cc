#include "engine/state/sqlite_stmt.h"

#include <sqlite3.h>

namespace runbook::state_internal {

const int Stmt::kRow = SQLITE_ROW;
const int Stmt::kDone = SQLITE_DONE;

Stmt::Stmt(sqlite3* db, const char* sql) {
  prepare_rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  if (prepare_rc_ != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::Bind(int i, int64_t v) {
  if (stmt_) sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Stmt& Stmt::Bind(int i, const std::string& v) {
  if (stmt_) sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::BindJson(int i, const Value& v) { return Bind(i, DumpJson(v)); }

int Stmt::Step() {
  if (!stmt_) return prepare_rc_ == SQLITE_OK ? SQLITE_ERROR : prepare_rc_;
  return sqlite3_step(stmt_);
}

int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (!p) return "";
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::string DumpJson(const Value& v) {
  return v.dump(-1, ' ', false, Value::error_handler_t::replace);
}

Status ParseJson(const std::string& text, const std::string& what, Value* out) {
  try {
    *out = Value::parse(text);
    return Status::Ok();
  } catch (const nlohmann::json::exception& e) {
    return Status::Internal("corrupt JSON in " + what + ": " + e.what());
  }
}

Value UndoToValue(const std::vector<UndoEntry>& undo) {
  Value list = Value::array();
  for (const UndoEntry& e : undo) {
    Value v{{"primitive", e.primitive}, {"args", e.args}, {"state", e.state}};
    if (e.changed) v["changed"] = *e.changed;
    list.push_back(std::move(v));
  }
  return list;
}

Status UndoFromValue(const Value& list, const std::string& what, std::vector<UndoEntry>* undo) {
  if (!list.is_array()) return Status::Internal("corrupt " + what + ": not an array");
  try {
    for (const Value& v : list) {
      UndoEntry e;
      e.primitive = v.at("primitive").get<std::string>();
      e.args = v.value("args", Value());
      e.state = v.value("state", Value());
      if (v.contains("changed")) e.changed = v.at("changed").get<bool>();
      undo->push_back(std::move(e));
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::Internal("corrupt " + what + ": " + e.what());
  }
  return Status::Ok();
}

Status SqlError(sqlite3* db, const std::string& path, const std::string& operation) {
  const char* msg = db ? sqlite3_errmsg(db) : "out of memory";
  return Status::Internal("state store " + path + ": " + operation + ": " + msg);
}

bool ExecSql(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

Transaction::~Transaction() {
  if (open_) ExecSql(db_, "ROLLBACK");
}

bool Transaction::Begin() {
  open_ = ExecSql(db_, "BEGIN IMMEDIATE");
  return open_;
}

bool Transaction::Commit() {
  if (!ExecSql(db_, "COMMIT")) return false;  // the destructor rolls back
  open_ = false;
  return true;
}

}  // namespace runbook::state_internal
