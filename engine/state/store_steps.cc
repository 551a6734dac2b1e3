// The state store: steps, events, approvals and recorded durations. Opening
// and runs are in store.cc.
#include <sqlite3.h>

#include "engine/state/sqlite_stmt.h"
#include "engine/state/sqlite_store.h"

namespace runbook {

using state_internal::ParseJson;
using state_internal::SqlError;
using state_internal::Stmt;
using state_internal::Transaction;

namespace {

const char kStepColumns[] =
    "run_id, step_id, seq, done_seq, status, attempts, started_ms, finished_ms, duration_ms, "
    "action_name, change, result, tables, error, undo, undo_error, item";

Status ReadStep(Stmt& q, StepRecord* step) {
  step->run_id = q.Text(0);
  step->step_id = q.Text(1);
  step->seq = q.Int(2);
  step->done_seq = q.Int(3);
  std::optional<StepStatus> status = ParseStepStatus(q.Text(4));
  if (!status) {
    return Status::Internal("unknown status '" + q.Text(4) + "' of step '" + step->step_id + "'");
  }
  step->status = *status;
  step->attempts = static_cast<int>(q.Int(5));
  step->started_ms = q.Int(6);
  step->finished_ms = q.Int(7);
  step->duration_ms = q.Int(8);
  step->action = q.Text(9);
  step->change = q.Text(10);
  step->error = q.Text(13);
  step->undo_error = q.Text(15);
  std::string what = "step '" + step->step_id + "' column ";
  Value undo;
  Status s = ParseJson(q.Text(11), what + "result", &step->result);
  if (s.ok()) s = ParseJson(q.Text(12), what + "tables", &step->tables);
  if (s.ok()) s = ParseJson(q.Text(14), what + "undo", &undo);
  if (s.ok()) s = ParseJson(q.Text(16), what + "item", &step->item);
  if (s.ok()) s = state_internal::UndoFromValue(undo, what + "undo", &step->undo);
  return s;
}

// Returns `sql` (one int64 column, parameter ?1 = run id) for `run_id`.
bool QueryInt(sqlite3* db, const char* sql, const std::string& run_id, int64_t* out) {
  Stmt q(db, sql);
  q.Bind(1, run_id);
  if (q.Step() != Stmt::kRow) return false;
  *out = q.Int(0);
  return true;
}

bool InsertEvent(sqlite3* db, const Event& e) {
  Stmt q(db,
         "INSERT INTO events(run_id, step_id, at_ms, kind, message) VALUES(?1, ?2, ?3, ?4, ?5)");
  q.Bind(1, e.run_id).Bind(2, e.step_id).Bind(3, e.at_ms).Bind(4, e.kind).Bind(5, e.message);
  return q.Exec();
}

bool UpsertStep(sqlite3* db, const StepRecord& s) {
  std::string sql =
      std::string("INSERT INTO steps(") + kStepColumns +
      ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
      " ON CONFLICT(run_id, step_id) DO UPDATE SET seq = excluded.seq,"
      " done_seq = excluded.done_seq, status = excluded.status,"
      " attempts = excluded.attempts, started_ms = excluded.started_ms,"
      " finished_ms = excluded.finished_ms, duration_ms = excluded.duration_ms,"
      " action_name = excluded.action_name, change = excluded.change,"
      " result = excluded.result, tables = excluded.tables, error = excluded.error,"
      " undo = excluded.undo, undo_error = excluded.undo_error, item = excluded.item";
  Stmt q(db, sql.c_str());
  q.Bind(1, s.run_id).Bind(2, s.step_id).Bind(3, s.seq).Bind(4, s.done_seq);
  q.Bind(5, StepStatusName(s.status)).Bind(6, int64_t{s.attempts}).Bind(7, s.started_ms);
  q.Bind(8, s.finished_ms).Bind(9, s.duration_ms).Bind(10, s.action).Bind(11, s.change);
  q.BindJson(12, s.result).BindJson(13, s.tables).Bind(14, s.error);
  q.BindJson(15, state_internal::UndoToValue(s.undo)).Bind(16, s.undo_error).BindJson(17, s.item);
  return q.Exec();
}

}  // namespace

namespace {
// synchronous=NORMAL for one transaction, FULL again afterwards (declared
// before the Transaction, so it is restored after the commit or rollback).
class RelaxedSync {
 public:
  RelaxedSync(sqlite3* db, bool relax) : db_(relax ? db : nullptr) {
    if (db_ && !state_internal::ExecSql(db_, "PRAGMA synchronous=NORMAL")) db_ = nullptr;
  }
  ~RelaxedSync() {
    if (db_) state_internal::ExecSql(db_, "PRAGMA synchronous=FULL");
  }
  RelaxedSync(const RelaxedSync&) = delete;
  RelaxedSync& operator=(const RelaxedSync&) = delete;

 private:
  sqlite3* db_;
};
}  // namespace

Status SqliteStateStore::PutStep(StepRecord* step, const Event* event, bool durable) {
  if (!step) return Status::Internal("PutStep: no step");
  std::lock_guard<std::mutex> lock(mu_);
  const std::string op = "cannot write step '" + step->step_id + "'";
  RelaxedSync relaxed(db_, !durable);
  Transaction txn(db_);
  if (!txn.Begin()) return SqlError(db_, path_, op);

  // The stored seq and done_seq win over the caller's: a step keeps the
  // place it first started at, and the order it first succeeded in.
  StepRecord row = *step;
  row.seq = 0;
  row.done_seq = 0;
  {
    Stmt q(db_, "SELECT seq, done_seq FROM steps WHERE run_id = ?1 AND step_id = ?2");
    q.Bind(1, step->run_id).Bind(2, step->step_id);
    int rc = q.Step();
    if (rc == Stmt::kRow) {
      row.seq = q.Int(0);
      row.done_seq = q.Int(1);
    } else if (rc != Stmt::kDone) {
      return SqlError(db_, path_, op);
    }
  }
  if (row.seq == 0 &&
      !QueryInt(db_, "SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?1", step->run_id,
                &row.seq)) {
    return SqlError(db_, path_, op);
  }
  if (row.status == StepStatus::kSucceeded && row.done_seq == 0 &&
      !QueryInt(db_, "SELECT COALESCE(MAX(done_seq), 0) + 1 FROM steps WHERE run_id = ?1",
                step->run_id, &row.done_seq)) {
    return SqlError(db_, path_, op);
  }
  if (!UpsertStep(db_, row)) return SqlError(db_, path_, op);
  if (event) {
    // An event written with a step belongs to it unless it says otherwise.
    Event e = *event;
    if (e.run_id.empty()) e.run_id = step->run_id;
    if (e.step_id.empty()) e.step_id = step->step_id;
    if (!InsertEvent(db_, e)) return SqlError(db_, path_, op + " (event '" + e.kind + "')");
  }
  if (!txn.Commit()) return SqlError(db_, path_, op);
  step->seq = row.seq;
  step->done_seq = row.done_seq;
  return Status::Ok();
}

Result<std::vector<StepRecord>> SqliteStateStore::GetSteps(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql =
      std::string("SELECT ") + kStepColumns + " FROM steps WHERE run_id = ?1 ORDER BY seq";
  Stmt q(db_, sql.c_str());
  q.Bind(1, run_id);
  std::vector<StepRecord> steps;
  int rc;
  while ((rc = q.Step()) == Stmt::kRow) {
    StepRecord step;
    Status s = ReadStep(q, &step);
    if (!s.ok()) return s.Prefixed("state store " + path_);
    steps.push_back(std::move(step));
  }
  if (rc != Stmt::kDone)
    return SqlError(db_, path_, "cannot read the steps of run '" + run_id + "'");
  return steps;
}

Result<std::optional<StepRecord>> SqliteStateStore::GetStep(const std::string& run_id,
                                                            const std::string& step_id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql =
      std::string("SELECT ") + kStepColumns + " FROM steps WHERE run_id = ?1 AND step_id = ?2";
  Stmt q(db_, sql.c_str());
  q.Bind(1, run_id).Bind(2, step_id);
  int rc = q.Step();
  if (rc == Stmt::kDone) return std::optional<StepRecord>();
  if (rc != Stmt::kRow) return SqlError(db_, path_, "cannot read step '" + step_id + "'");
  StepRecord step;
  Status s = ReadStep(q, &step);
  if (!s.ok()) return s.Prefixed("state store " + path_);
  return std::optional<StepRecord>(std::move(step));
}

Status SqliteStateStore::AppendEvent(const Event& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!InsertEvent(db_, e)) return SqlError(db_, path_, "cannot write event '" + e.kind + "'");
  return Status::Ok();
}

Result<std::vector<Event>> SqliteStateStore::GetEvents(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_,
         "SELECT id, run_id, step_id, at_ms, kind, message FROM events WHERE run_id = ?1"
         " ORDER BY id");
  q.Bind(1, run_id);
  std::vector<Event> events;
  int rc;
  while ((rc = q.Step()) == Stmt::kRow) {
    events.push_back(Event{q.Int(0), q.Text(1), q.Text(2), q.Int(3), q.Text(4), q.Text(5)});
  }
  if (rc != Stmt::kDone)
    return SqlError(db_, path_, "cannot read the events of run '" + run_id + "'");
  return events;
}

Status SqliteStateStore::RecordApproval(const Approval& a) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_,
         "INSERT INTO approvals(run_id, step_id, approved_by, at_ms) VALUES(?1, ?2, ?3, ?4)"
         " ON CONFLICT(run_id, step_id) DO UPDATE SET approved_by = excluded.approved_by,"
         " at_ms = excluded.at_ms");
  q.Bind(1, a.run_id).Bind(2, a.step_id).Bind(3, a.by).Bind(4, a.at_ms);
  if (!q.Exec())
    return SqlError(db_, path_, "cannot record the approval of step '" + a.step_id + "'");
  return Status::Ok();
}

Result<std::optional<Approval>> SqliteStateStore::GetApproval(const std::string& run_id,
                                                              const std::string& step_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_,
         "SELECT run_id, step_id, approved_by, at_ms FROM approvals"
         " WHERE run_id = ?1 AND step_id = ?2");
  q.Bind(1, run_id).Bind(2, step_id);
  int rc = q.Step();
  if (rc == Stmt::kDone) return std::optional<Approval>();
  if (rc != Stmt::kRow) {
    return SqlError(db_, path_, "cannot read the approval of step '" + step_id + "'");
  }
  return std::optional<Approval>(Approval{q.Text(0), q.Text(1), q.Text(2), q.Int(3)});
}

Result<std::map<std::string, int64_t>> SqliteStateStore::RecentDurations(
    const std::string& runbook_name) {
  std::lock_guard<std::mutex> lock(mu_);
  // Real runs first, then newest first; the first row of each step id wins.
  // A rehearsal's duration counts only for steps no real run finished: it
  // does not wait (sleep) or act (skipped commands), so it would understate.
  Stmt q(db_,
         "SELECT s.step_id, s.duration_ms FROM steps s JOIN runs r ON r.id = s.run_id"
         " WHERE r.runbook_name = ?1 AND s.status = ?2"
         " ORDER BY r.dry_run ASC, s.finished_ms DESC, r.created_ms DESC, r.id DESC");
  q.Bind(1, runbook_name).Bind(2, StepStatusName(StepStatus::kSucceeded));
  std::map<std::string, int64_t> durations;
  int rc;
  while ((rc = q.Step()) == Stmt::kRow) durations.emplace(q.Text(0), q.Int(1));
  if (rc != Stmt::kDone) {
    return SqlError(db_, path_, "cannot read the durations of runbook '" + runbook_name + "'");
  }
  return durations;
}

}  // namespace runbook
