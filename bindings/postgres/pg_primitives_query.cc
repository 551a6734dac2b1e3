// pg.query and pg.exec: SQL the runbook writes itself.
//
// Rehearsal: pg.query runs inside BEGIN READ ONLY ... ROLLBACK; pg.exec inside
// BEGIN ... ROLLBACK (with a short lock_timeout, so a rehearsal against a live
// database cannot queue behind the application's locks). SQL that cannot run
// in a transaction block, or whose effect would survive the rollback
// (setval, pg_terminate_backend, COMMIT, ...), is not rehearsed: skip, with
// the reason.
//
// Lock-safe DDL: a statement that waits for a table lock makes every later
// query of that table wait behind it (PostgreSQL's lock queue), so a
// migration stuck behind one long transaction stops the application. pg.exec
// runs SQL that takes table locks (ALTER, CREATE, DROP, TRUNCATE, LOCK, ...)
// with SET LOCAL lock_timeout (2s unless the runbook says otherwise), and on
// SQLSTATE 55P03 (lock_not_available) rolls back and tries again after a
// pause that doubles (500ms, 1s, 2s, ... at most 10s), lock_retries times
// (5): the application waits at most lock_timeout at a time, and the
// migration gets in between its queries.
#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>

#include "bindings/postgres/pg_database_checks.h"
#include "bindings/postgres/pg_lint.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_undo_guard.h"
#include "engine/core/duration.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {
namespace {

constexpr const char* kRehearsalLockTimeout = "SET LOCAL lock_timeout = '5s'";

std::string SkipReason(const std::string& sql, bool check_transaction) {
  if (HasTemplate(sql)) return "";  // decided when Apply sees the expanded SQL
  std::string why = check_transaction ? NonTransactionalReason(sql) : "";
  if (why.empty()) why = EscapesRollbackReason(sql);
  return why;
}

// One CREATE DATABASE or DROP DATABASE (it cannot run in a rolled-back
// transaction, nor with other statements): a rehearsal checks it against
// the server and the run's plan instead (RehearseDatabaseStatement).
bool DatabaseStatementOnly(const std::string& sql, DatabaseStatement* out = nullptr) {
  bool only = false;
  std::vector<DatabaseStatement> st = DatabaseStatements(sql, &only);
  if (!only || st.size() != 1 || st[0].kind == DatabaseStatement::Kind::kRename ||
      !EscapesRollbackReason(sql).empty()) {
    return false;
  }
  if (out) *out = st[0];
  return true;
}

// In a rehearsal: CREATE or DROP DATABASE as a real run would meet it by
// then, checked as pg.create_database and pg.drop_database check theirs,
// and noted in the run's plan for the steps after.
Result<Value> RehearseDatabaseStatement(StepContext& ctx, PgLease& lease,
                                        const DatabaseStatement& st) {
  const std::string where = "connection '" + lease.name() + "': database '" + st.name + "'";
  Value out{{"command", MakeUnknown("not run in a rehearsal")},
            {"rows_affected", MakeUnknown("not run in a rehearsal")},
            {"rows", Value::array()},
            {"rehearsal",
             "not run (it cannot run in a rolled-back transaction): checked "
             "against the server as earlier steps would leave it"}};
  if (st.kind == DatabaseStatement::Kind::kDrop) {
    if (lease.conn().database() == st.name) {
      return Status::Failed(where +
                            " is the connection's own: DROP DATABASE cannot drop the "
                            "currently open database (a real run would stop here)");
    }
    // A real run closes the run's own idle connections to it first (below).
    Result<Value> r = RehearseDropDatabase(ctx, lease, st.name, st.force, st.if_exists,
                                           IdleRunSessionsOn(ctx, lease, st.name, false));
    if (!r.ok()) return r.status();
    if (r->contains("notes")) {
      for (const auto& n : (*r)["notes"])
        ctx.Log(LogLevel::kWarn, where + ": " + n.get<std::string>());
    }
    return out;
  }
  RehearsalPlan* plan = PlanOf(ctx);
  const std::string server = lease.conn().identity(lease.deadline());
  const std::string key = PlannedDatabaseKey(server, st.name);
  if (const std::string by = plan ? plan->StepFor(key) : ""; !by.empty()) {
    return Status::Failed(where + " would exist already: step '" + by +
                          "' creates it (a real run would stop here)");
  }
  const std::string templ = st.templ.empty() ? "template1" : st.templ;
  std::vector<std::string> notes;
  Status s = CheckCreateDatabase(lease, st.name, templ, st.owner,
                                 plan && !plan->GoneBy(key).empty(), plan, &notes, st.options);
  if (!s.ok()) return s;
  for (const auto& n : notes) ctx.Log(LogLevel::kWarn, where + ": " + n);
  // Checked above; claimed here at once, as another step may have since.
  if (const std::string by = plan ? plan->Claim(key, ctx.step_id()) : ""; !by.empty()) {
    return Status::Failed(where + " would exist already: step '" + by +
                          "' creates it (a real run would stop here)");
  }
  return out;
}

// In a rehearsal, ALTER DATABASE ... RENAME TO as a real run would meet it:
// before the script runs (rolled back), a database an earlier step drops
// fails, and so does a new name an earlier step creates; one an earlier
// step creates, or a new name one drops, is not probed; after it ran, the
// steps after find it renamed (the new name claimed: two steps cannot both
// make it).
Status PlanRenames(StepContext& ctx, PgLease& lease, const std::string& sql, bool ran) {
  RehearsalPlan* plan = PlanOf(ctx);
  if (!plan) return Status::Ok();
  bool only = false;
  const std::vector<DatabaseStatement> statements = DatabaseStatements(sql, &only);
  if (statements.empty()) return Status::Ok();
  const std::string server = lease.conn().identity(lease.deadline());
  if (ran) {
    // In the script's order (a TO b; c TO a). If another step took a new
    // name meanwhile, the script fails whole (one transaction): what it
    // noted is taken back, as it changed nothing (what the step's other
    // calls noted, a Lua step's, stays).
    std::vector<std::string> noted;
    for (const DatabaseStatement& st : statements) {
      if (st.kind != DatabaseStatement::Kind::kRename) continue;
      const std::string old_key = PlannedDatabaseKey(server, st.name);
      const std::string new_key = PlannedDatabaseKey(server, st.new_name);
      plan->NoteGone(old_key, ctx.step_id());
      noted.push_back(old_key);
      bool claimed = false;
      if (const std::string by = plan->Claim(new_key, ctx.step_id(), &claimed); !by.empty()) {
        for (auto k = noted.rbegin(); k != noted.rend(); ++k) plan->Unnote(*k, ctx.step_id());
        return Status::Failed("connection '" + lease.name() + "': database '" + st.new_name +
                              "' would exist already: step '" + by +
                              "' creates it (a real run would stop here)");
      }
      if (claimed) noted.push_back(new_key);
    }
    return Status::Ok();
  }
  // What a real run would certainly stop at first, across the script; only
  // then what cannot be probed yet. The new name must be free as the
  // earlier steps leave it: one they make is taken; one they drop is free,
  // though the server (which the rolled-back script asks) still has it.
  for (const DatabaseStatement& st : statements) {
    if (st.kind != DatabaseStatement::Kind::kRename) continue;
    if (const std::string by = plan->StepFor(PlannedDatabaseKey(server, st.new_name));
        !by.empty()) {
      return Status::Failed("connection '" + lease.name() + "': database '" + st.new_name +
                            "' would exist already: step '" + by +
                            "' creates it (a real run would stop here)");
    }
    if (const std::string by = plan->GoneBy(PlannedDatabaseKey(server, st.name)); !by.empty()) {
      return Status::Failed("connection '" + lease.name() + "': database '" + st.name +
                            "' would not exist by now: step '" + by +
                            "' drops it earlier in this run (a real run would stop here)");
    }
  }
  for (const DatabaseStatement& st : statements) {
    if (st.kind != DatabaseStatement::Kind::kRename) continue;
    if (const std::string by = plan->GoneBy(PlannedDatabaseKey(server, st.new_name)); !by.empty()) {
      return Status::NotYet("connection '" + lease.name() + "': database '" + st.new_name +
                            "' is free only once step '" + by + "' has dropped it");
    }
    if (const std::string by = plan->StepFor(PlannedDatabaseKey(server, st.name)); !by.empty()) {
      return Status::NotYet("connection '" + lease.name() + "': database '" + st.name +
                            "' does not exist yet: step '" + by + "' would create it");
    }
  }
  return Status::Ok();
}

// Read-only statements only: safe to run again after a crash.
bool ReadOnlySql(const std::string& sql) {
  if (!EscapesRollbackReason(sql).empty()) return false;
  for (const auto& st : SplitSql(sql)) {
    const auto& w = st.words;
    if (w.empty()) continue;
    const std::string& first = w[0];
    bool reads = first == "SELECT" || first == "SHOW" || first == "VALUES" || first == "TABLE" ||
                 first == "WITH" || (first == "EXPLAIN" && w.size() > 1 && w[1] != "ANALYZE");
    if (!reads) return false;
    for (const char* write : {"INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "FOR"}) {
      if (std::find(w.begin(), w.end(), write) != w.end()) return false;  // FOR UPDATE, SELECT INTO
    }
  }
  return true;
}

Result<PgResult> RunSql(PgLease& lease, const std::string& sql, const PgParams& params) {
  return params.empty() ? lease.RunScript(sql) : lease.Run(sql, params);
}

// Statements that take a lock other queries of a table wait for.
bool TakesTableLocks(const std::string& sql) {
  for (const auto& st : SplitSql(sql)) {
    if (st.words.empty()) continue;
    for (const char* ddl : {"ALTER", "CREATE", "DROP", "TRUNCATE", "LOCK", "REINDEX", "CLUSTER",
                            "REFRESH", "COMMENT", "GRANT", "REVOKE", "SECURITY"}) {
      if (st.words[0] == ddl) return true;
    }
  }
  return false;
}

// How pg.exec waits for locks: lock_timeout 0 waits as long as it takes.
struct LockPolicy {
  std::chrono::milliseconds timeout{0};
  int retries = 0;
  std::string Sql() const {
    return "SET LOCAL lock_timeout = '" + std::to_string(timeout.count()) + "ms'";
  }
};

constexpr std::chrono::milliseconds kDdlLockTimeout{2000};
constexpr int kDdlLockRetries = 5;

// The runbook's lock_timeout / lock_retries, or for SQL that takes table
// locks the defaults; nothing for other SQL. Only inside a transaction: SQL
// that runs without one (CREATE INDEX CONCURRENTLY, VACUUM) takes no lock
// that stops the application's queries, and a statement of it cut short can
// leave a half-built object behind (an invalid index).
Result<LockPolicy> LockPolicyOf(const Value& args, const std::string& sql, bool transaction) {
  LockPolicy p;
  if (!transaction) return p;
  const bool ddl = TakesTableLocks(sql);
  Result<std::chrono::milliseconds> t =
      DurationArg(args, "lock_timeout", ddl ? kDdlLockTimeout : std::chrono::milliseconds(0));
  if (!t.ok()) return t.status();
  p.timeout = *t;
  std::optional<int64_t> n = IntArg(args, "lock_retries");
  p.retries = p.timeout.count() > 0
                  ? static_cast<int>(std::clamp<int64_t>(n.value_or(kDdlLockRetries), 0, 100))
                  : 0;
  return p;
}

bool IsLockTimeout(const Status& s) {
  return s.message().find("(SQLSTATE 55P03)") != std::string::npos;
}

Value ExecResult(const PgResult& r) {
  return Value{{"command", r.command}, {"rows_affected", r.affected}, {"rows", r.rows}};
}

class PgQuery : public NamedPrimitive {
 public:
  PgQuery()
      : NamedPrimitive("pg.query",
                       Schema{"Runs a query; the result is its rows, a list of {column: value}.",
                              {PgConnArg("conn", "the database"),
                               Arg("sql", ArgType::kString, true, "the query"),
                               Arg("params", ArgType::kList, false, "values for $1, $2, ...")},
                              {},
                              ""},
                       ListResult("one per row, {column: value} (of the last statement that "
                                  "returns rows)",
                                  {}, /*open=*/true)) {}

  Rehearsal rehearsal(const Value& args) const override {
    return SkipReason(StrArg(args, "sql"), false).empty() ? Rehearsal::kProbe : Rehearsal::kSkip;
  }
  std::string skip_reason(const Value& args) const override {
    return SkipReason(StrArg(args, "sql"), false);
  }
  bool idempotent(const Value& args) const override { return ReadOnlySql(StrArg(args, "sql")); }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing(PlanSql(StrArg(args, "sql"), ParamsArg(args)), "a query");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string sql = StrArg(args, "sql");
    const PgParams params = ParamsArg(args);
    if (ctx.dry_run()) {
      std::string why = EscapesRollbackReason(sql);
      if (!why.empty()) return MakeUnknown("not rehearsed: " + why);
    }
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    Result<PgResult> r = ctx.dry_run()
                             ? InRolledBackTransaction(*lease, true,
                                                       [&] { return RunSql(*lease, sql, params); })
                             : RunSql(*lease, sql, params);
    ForwardNotices(ctx, lease->conn());
    if (!r.ok()) return r.status();
    return std::move(r->rows);
  }
};

class PgExec : public NamedPrimitive {
 public:
  PgExec()
      : NamedPrimitive(
            "pg.exec",
            Schema{"Runs SQL that changes things, in a transaction unless it cannot run in one.",
                   {PgConnArg("conn", "the database"),
                    Arg("sql", ArgType::kString, true, "one or more statements"),
                    Arg("params", ArgType::kList, false, "values for $1, $2, ... (one statement)"),
                    Arg("rollback_sql", ArgType::kString, false, "SQL that undoes it"),
                    Arg("transaction", ArgType::kBool, false,
                        "run inside BEGIN ... COMMIT (default true; statements such as VACUUM "
                        "or CREATE DATABASE run without one)"),
                    Arg("lock_timeout", ArgType::kDuration, false,
                        "how long a statement may wait for a lock before the transaction is "
                        "rolled back and tried again (2s for SQL that takes table locks: "
                        "ALTER, CREATE, DROP, TRUNCATE, LOCK, ...; 0s: wait as long as it "
                        "takes)"),
                    Arg("lock_retries", ArgType::kInt, false,
                        "how many times to try again after a lock timeout, pausing 500ms, "
                        "1s, 2s, ... at most 10s (5)")},
                   {},
                   ""},
            MapResult({Field("command", FieldType::kString,
                             "the command tag of the last statement, e.g. UPDATE 3"),
                       Field("rows_affected", FieldType::kInt,
                             "rows the statements affected (or returned), summed"),
                       ListOfMaps("rows",
                                  "rows of the last statement that returns rows (RETURNING, "
                                  "SELECT), {column: value}; empty if none does",
                                  {}, /*open=*/true),
                       Optional(Field("rehearsal", FieldType::kString,
                                      "how it was rehearsed; only in a rehearsal"))})) {}

  Rehearsal rehearsal(const Value& args) const override {
    const std::string sql = StrArg(args, "sql");
    return SkipReason(sql, true).empty() || DatabaseStatementOnly(sql) ? Rehearsal::kSimulate
                                                                       : Rehearsal::kSkip;
  }
  std::string skip_reason(const Value& args) const override {
    std::string why = SkipReason(StrArg(args, "sql"), true);
    return why.empty() ? "" : why + ", so it cannot be rehearsed in a rolled-back transaction";
  }

  PlanEffect Plan(const Value& args) const override {
    const std::string sql = PlanSql(StrArg(args, "sql"), ParamsArg(args));
    const std::string undo = StrArg(args, "rollback_sql");
    Result<bool> use = UseTransaction(args);
    bool txn = use.ok() && *use;
    PlanEffect e;
    e.text = txn ? "BEGIN;\n" + sql + "\nCOMMIT;" : sql;
    Result<LockPolicy> lock = LockPolicyOf(args, StrArg(args, "sql"), txn);
    if (lock.ok() && lock->timeout.count() > 0) {
      e.text = "BEGIN;\n" + lock->Sql() + ";\n" + sql + "\nCOMMIT;";
      if (lock->retries > 0) {
        e.text += "\n(on a lock timeout: rolled back and tried again, up to " +
                  std::to_string(lock->retries) + " more times)";
      }
    }
    e.undo_kind = undo.empty() ? UndoKind::kIrreversible : UndoKind::kUndoes;
    e.undo = undo.empty() ? "no rollback_sql (pg.exec is undone only by its rollback_sql)" : undo;
    return e;
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string sql = StrArg(args, "sql");
    const PgParams params = ParamsArg(args);
    Result<bool> txn = UseTransaction(args);
    if (!txn.ok()) return txn.status();
    Result<LockPolicy> lock = LockPolicyOf(args, sql, *txn);
    if (!lock.ok()) return lock.status();
    DatabaseStatement database_statement;
    const bool checked_only = ctx.dry_run() && !SkipReason(sql, true).empty();
    if (checked_only && !DatabaseStatementOnly(sql, &database_statement)) {
      return MakeUnknown("not rehearsed: " + SkipReason(sql, true));
    }
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    if (checked_only) return RehearseDatabaseStatement(ctx, *lease, database_statement);
    // A DROP DATABASE would find the run's own connections to it (kept since
    // an earlier step) "accessed by other users": those no step uses now are
    // closed first, as pg.drop_database does.
    if (!ctx.dry_run() && DatabaseStatementOnly(sql, &database_statement) &&
        database_statement.kind == DatabaseStatement::Kind::kDrop) {
      IdleRunSessionsOn(ctx, *lease, database_statement.name, true);
    }
    Result<PgResult> r = Status::Ok();
    if (ctx.dry_run()) {
      if (Status s = PlanRenames(ctx, *lease, sql, false); !s.ok()) return s;
      r = InRolledBackTransaction(*lease, false, [&]() -> Result<PgResult> {
        Status s = lease->Exec(kRehearsalLockTimeout);
        if (!s.ok()) return s;
        return RunSql(*lease, sql, params);
      });
      // ALTER DATABASE ... RENAME ran and was rolled back: the steps after
      // find it renamed.
      if (r.ok()) {
        if (Status s = PlanRenames(ctx, *lease, sql, true); !s.ok()) return s;
      }
    } else {
      const std::string undo = StrArg(args, "rollback_sql");
      if (!undo.empty()) {
        Status s = ctx.RecordUndo(Value{{"rollback_sql", undo}});
        if (!s.ok()) return s;
      }
      bool commit_sent = false;
      // The transaction's id is noted before its COMMIT: an undo that
      // guards rows written since (pg.copy's) knows this run wrote them.
      // The server's key is read first: a failed query inside the
      // transaction would abort it.
      const std::string key = *txn ? ServerWriteKey(lease->conn(), lease->deadline()) : "";
      // The transaction's id is noted before its COMMIT; once it committed,
      // the range of ids after it: the rows of its subtransactions (a
      // SAVEPOINT, a plpgsql EXCEPTION block) carry their own, younger ids.
      // A crash in between loses only the range (a refusal, never a loss).
      std::string top;
      auto note = [&]() -> Status {
        if (key.empty()) return Status::Ok();
        Result<Value> x = lease->Query(
            "SELECT (txid_current_if_assigned() % 4294967296)::text AS x");
        if (!x.ok()) return x.status();
        if ((*x)[0]["x"].is_null()) return Status::Ok();  // it wrote nothing
        top = (*x)[0]["x"].get<std::string>();
        return ctx.NoteOwnWrite(key, top);
      };
      r = *txn
              ? WithLockRetries(
                    ctx, *lock,
                    [&]() { return InTransaction(*lease, sql, params, &commit_sent, note, *lock); })
              : RunSql(*lease, sql, params);
      if (!r.ok() && *txn && !commit_sent && !undo.empty()) {
        // The transaction never committed: nothing of it stays, so there is
        // nothing for rollback_sql to undo (running it would fail half-way).
        Status s = ctx.RecordUndo(Value());
        if (!s.ok()) return s;
      }
      if (r.ok() && !top.empty()) {
        Result<std::string> end = NextXid(lease->conn(), lease->deadline());
        if (!end.ok()) return end.status();
        if (Status s = ctx.NoteOwnWrite(key, top + "-" + *end); !s.ok()) return s;
      }
    }
    ForwardNotices(ctx, lease->conn());
    if (!r.ok()) return r.status();
    Value out = ExecResult(*r);
    if (ctx.dry_run()) out["rehearsal"] = "ran in a transaction that was rolled back";
    return out;
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& undo_state) override {
    std::string undo = StrArg(undo_state, "rollback_sql", StrArg(args, "rollback_sql"));
    if (undo.empty()) return Status::Failed("pg.exec has no rollback_sql: it cannot be undone");
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    Result<PgResult> r = Status::Ok();
    bool sent = false;  // its COMMIT, or a script outside a transaction: it may have acted
    if (NonTransactionalReason(undo).empty()) {
      Result<LockPolicy> lock = LockPolicyOf(args, undo, true);
      if (!lock.ok()) return lock.status();
      r = WithLockRetries(ctx, *lock,
                          [&]() { return InTransaction(*lease, undo, {}, &sent, nullptr, *lock); });
    } else {
      sent = true;
      r = lease->RunScript(undo);
    }
    ForwardNotices(ctx, lease->conn());
    if (!r.ok() && sent && r.status().code() == Status::Code::kUnavailable) {
      // The user's SQL need not be safe to run twice: a rollback does not
      // run it again by itself once it may have taken effect.
      return Status::Failed("rollback_sql: " + r.status().message() +
                            " (after it was sent: it may have taken effect; check before "
                            "rolling back again)");
    }
    return r.status().Prefixed("rollback_sql");
  }

 private:
  // Runs `attempt` (one whole transaction) until it does not fail on a lock
  // timeout, at most 1 + lock.retries times, pausing in between (never past
  // the step's deadline).
  static Result<PgResult> WithLockRetries(StepContext& ctx, const LockPolicy& lock,
                                          const std::function<Result<PgResult>()>& attempt) {
    std::chrono::milliseconds pause{500};
    for (int n = 1;; ++n) {
      Result<PgResult> r = attempt();
      if (r.ok() || !IsLockTimeout(r.status())) return r;
      const bool last = n > lock.retries || (ctx.deadline() != SteadyTime::max() &&
                                             ctx.clock().Steady() + pause >= ctx.deadline());
      if (last) {
        return Status::Failed(
            "could not take its locks within lock_timeout " + FormatDuration(lock.timeout) +
            " in " + std::to_string(n) + (n == 1 ? " attempt" : " attempts") +
            ", each rolled back, so nothing was changed (another transaction holds a "
            "conflicting lock: find it in pg_locks / pg_stat_activity, or raise lock_timeout "
            "or lock_retries): " +
            r.status().message());
      }
      ctx.Log(LogLevel::kWarn,
              "attempt " + std::to_string(n) + " of " + std::to_string(lock.retries + 1) +
                  " waited lock_timeout " + FormatDuration(lock.timeout) +
                  " for a lock and was rolled back; trying again in " + FormatDuration(pause));
      ctx.clock().Sleep(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(10000));
    }
  }

  // transaction: true by default; false for SQL that cannot run in one, and
  // an error when such SQL is explicitly asked to run in one.
  static Result<bool> UseTransaction(const Value& args) {
    const std::string why = NonTransactionalReason(StrArg(args, "sql"));
    bool asked = args.is_object() && args.contains("transaction") &&
                 args["transaction"].is_boolean();
    if (!asked) return why.empty();
    bool txn = args["transaction"].get<bool>();
    if (txn && !why.empty()) return Status::Invalid(why + ": set transaction: false");
    return txn;
  }

  // `commit_sent` (if given) tells whether COMMIT went out: a failure before
  // it left nothing behind; a failed COMMIT may or may not have committed.
  // `before_commit` (if given) runs last inside the transaction.
  static Result<PgResult> InTransaction(PgLease& lease, const std::string& sql,
                                        const PgParams& params, bool* commit_sent = nullptr,
                                        const std::function<Status()>& before_commit = nullptr,
                                        const LockPolicy& lock = LockPolicy()) {
    Status s = lease.Exec("BEGIN");
    if (s.ok() && lock.timeout.count() > 0) s = lease.Exec(lock.Sql());
    if (!s.ok()) return s;
    Result<PgResult> r = RunSql(lease, sql, params);
    if (r.ok() && before_commit) {
      if (Status b = before_commit(); !b.ok()) r = b;
    }
    if (!r.ok()) {
      if (lease->ok() && lease->in_transaction()) lease.Exec("ROLLBACK");
      return r;
    }
    if (commit_sent) *commit_sent = true;
    s = lease.Exec("COMMIT");
    if (!s.ok()) return s.Prefixed("COMMIT");
    return r;
  }
};

}  // namespace

void AddPgQueryPrimitives(Registry* r) {
  r->Add(std::make_unique<PgQuery>());
  r->Add(std::make_unique<PgExec>());
}

}  // namespace runbook
