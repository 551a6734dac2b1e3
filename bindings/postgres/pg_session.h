// The run's live connections: one PgConnection per run and connection name,
// kept in ctx.resources() under "postgres:<name>" and reused across steps.
//
// A lease locks the session for one primitive call (one thread at a time),
// (re)connects when needed, and sets it up for the step: application_name
// runbook/<run_id>/<step_id>, and the step's deadline for every statement
// (statement_timeout plus a client-side cancel).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"
#include "engine/core/registry.h"

namespace runbook {

class PgSession : public Resource {
 public:
  std::mutex mu;
  PgConnection conn;  // guarded by mu
};

class PgLease {
 public:
  PgLease() = default;
  PgLease(std::unique_lock<std::mutex> lock, PgConnection* conn, SteadyTime deadline)
      : lock_(std::move(lock)), conn_(conn), deadline_(deadline) {}

  PgConnection& conn() { return *conn_; }
  PgConnection* operator->() { return conn_; }
  SteadyTime deadline() const { return deadline_; }
  const std::string& name() const { return conn_->conn_name(); }

  // The connection's calls with the step's deadline.
  Result<PgResult> Run(const std::string& sql, const PgParams& params = {}) {
    return conn_->Run(sql, params, deadline_);
  }
  Result<PgResult> RunScript(const std::string& sql) { return conn_->RunScript(sql, deadline_); }
  Result<Value> Query(const std::string& sql, const PgParams& params = {}) {
    return conn_->Query(sql, params, deadline_);
  }
  Status Exec(const std::string& sql, const PgParams& params = {}) {
    return conn_->Exec(sql, params, deadline_);
  }
  std::string Ident(const std::string& name) const { return conn_->QuoteIdent(name); }

 private:
  std::unique_lock<std::mutex> lock_;
  PgConnection* conn_ = nullptr;
  SteadyTime deadline_ = SteadyTime::max();
};

// The connect options of the runbook's connection `name` (type postgres),
// with application_name set for this step. Registers its secrets with the
// context's redactor.
Result<PgConnectOptions> StepConnectOptions(StepContext& ctx, const std::string& name);

// Leases the run's connection `name`, connected and set up for this step.
// A connection left inside a transaction by an earlier failure is rolled
// back first. Server warnings (a collation mismatch, say) go to ctx.Log.
Result<PgLease> LeaseConnection(StepContext& ctx, const std::string& name);

// Waits while another session carrying this step's application_name runs a
// statement. When the engine dies inside a step, the server runs the
// statement it was sent to its end (it notices the client is gone only when
// it next talks to it); a resume that checks or re-runs the step before then
// races it (a DROP DATABASE of the database the earlier DROP is dropping; two
// REINDEX CONCURRENTLY of one index deadlock). Call right after leasing, at
// the start of Apply and Check, before the step opens other connections.
Status WaitForInterruptedAttempt(StepContext& ctx, PgLease& lease);

// A separate, short-lived connection to database `dbname` on the server of
// connection `name` (for work that must happen inside each database).
Result<std::unique_ptr<PgConnection>> ConnectToDatabase(StepContext& ctx, const std::string& name,
                                                        const std::string& dbname);

// Keys of a server's things in the rehearsal plan (engine/core/
// rehearsal_plan.h); `server` is PgConnection::identity() (one server
// reached as localhost and as 127.0.0.1 is one server). A database an
// earlier rehearsed step would create (pg.create_database, pg.restore with
// create: true) or drop (pg.drop_database); one whose collation versions it
// would refresh (pg.refresh_collation).
std::string PlannedDatabaseKey(const std::string& server, const std::string& database);
std::string PlannedRefreshKey(const std::string& server, const std::string& database);

// In a rehearsal, after a connection with `options` failed with `failure`:
// when the server said the database does not exist (which it says only after
// pg_hba.conf and the credentials accepted that database) and an earlier
// rehearsed step would create it on that server, Status::NotYet naming that
// step. The server is found through its maintenance database (postgres, else
// template1), where the database's absence is checked too. Anything else (a
// real run, another failure, no such step) returns `failure`.
Status PlannedDatabaseOr(StepContext& ctx, const PgConnectOptions& options, Status failure);

// In a rehearsal, for a connection that reached its database: fails when
// an earlier rehearsed step would have dropped it by now (a real run could
// not connect to it); Status::NotYet when a step would have made it again
// since (what is there now is not what a real run would find).
// LeaseConnection and ConnectToDatabase check this.
Status PlannedDatabaseCheck(StepContext& ctx, PgConnection& conn);

// The backend pids of this run's own connections (kept for the run since an
// earlier step) to database `db` on `lease`'s server that no step is using
// now; with `close`, they are closed as well (a DROP DATABASE would find
// them "accessed by other users"; the next step that needs one reconnects).
std::vector<int> IdleRunSessionsOn(StepContext& ctx, PgLease& lease, const std::string& db,
                                   bool close);

// Passes the connection's pending server notices to the step's log.
void ForwardNotices(StepContext& ctx, PgConnection& conn);

// Runs `body` inside BEGIN [READ ONLY] ... ROLLBACK: nothing it does is kept.
template <typename Fn>
auto InRolledBackTransaction(PgLease& lease, bool read_only, Fn body) -> decltype(body()) {
  Status begin = lease.Exec(read_only ? "BEGIN READ ONLY" : "BEGIN");
  if (!begin.ok()) return begin;
  auto result = body();
  if (lease->ok() && lease->in_transaction()) {
    Status rollback = lease.Exec("ROLLBACK");
    if (!rollback.ok()) lease->Close();  // never leave the rehearsal's work pending
  }
  return result;
}

}  // namespace runbook
