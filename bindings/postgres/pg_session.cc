#include "bindings/postgres/pg_session.h"

#include <stdlib.h>

#include <algorithm>
#include <functional>

#include "bindings/postgres/pg_conninfo.h"
#include "bindings/postgres/pg_route.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {

Result<PgConnectOptions> StepConnectOptions(StepContext& ctx, const std::string& name) {
  Result<Connection> conn = ctx.GetConnection(name);
  if (!conn.ok()) return conn.status();
  if (conn->type != "postgres") {
    return Status::Invalid("connection '" + name + "' is a " + conn->type +
                           " connection, not postgres");
  }
  for (const auto& secret : PgConfigSecrets(conn->config)) ctx.redactor().Add(secret);
  // via: a connection that routes (an ssh tunnel, a kube port-forward)
  if (Status s = RouteConnection(ctx, name, &conn->config); !s.ok()) return s;
  Result<PgConnectOptions> options = PgOptionsFromConfig(name, conn->config);
  if (!options.ok()) return options.status();
  options->application_name = "runbook/" + ctx.run_id() + "/" + ctx.step_id();
  return options;
}

Status WaitForInterruptedAttempt(StepContext& ctx, PgLease& lease) {
  // The server keeps at most 63 bytes of an application_name.
  const std::string app = "runbook/" + ctx.run_id() + "/" + ctx.step_id();
  for (bool logged = false;;) {
    Result<Value> rows = lease.Query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = left($1, 63) "
        "AND pid <> pg_backend_pid() AND state <> 'idle' ORDER BY pid",
        {app});
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return Status::Ok();
    const std::string pid = std::to_string((*rows)[0]["pid"].get<int64_t>());
    if (!logged) {
      ctx.Log(LogLevel::kWarn, "connection '" + lease.name() + "': waiting for session " + pid +
                                   ", still running a statement of the interrupted attempt");
      logged = true;
    }
    if (ctx.clock().Steady() + Millis(100) >= lease.deadline()) {
      return Status::Timeout("connection '" + lease.name() + "': session " + pid +
                             " still runs a statement of the interrupted attempt");
    }
    ctx.clock().Sleep(Millis(100));
  }
}

void ForwardNotices(StepContext& ctx, PgConnection& conn) {
  for (const auto& notice : conn.TakeNotices()) {
    bool warning = notice.rfind("WARNING", 0) == 0;
    ctx.Log(warning ? LogLevel::kWarn : LogLevel::kInfo,
            ctx.redactor().Redact("connection '" + conn.conn_name() + "': " + notice));
  }
}

Result<PgLease> LeaseConnection(StepContext& ctx, const std::string& name) {
  Result<PgConnectOptions> options = StepConnectOptions(ctx, name);
  if (!options.ok()) return options.status();
  // Keyed by name and configuration: runbooks included once per item (a
  // foreach over databases) declare the same name for different databases.
  Result<Connection> declared = ctx.GetConnection(name);
  if (!declared.ok()) return declared.status();
  const std::string key =
      "postgres:" + name + "#" + std::to_string(std::hash<std::string>{}(declared->config.dump()));
  Result<Resource*> res =
      ctx.resources().GetOrCreate(key, []() -> Result<std::unique_ptr<Resource>> {
        return std::unique_ptr<Resource>(std::make_unique<PgSession>());
      });
  if (!res.ok()) return res.status();
  auto* session = dynamic_cast<PgSession*>(*res);
  if (!session) return Status::Internal("resource " + key + " is not a PgSession");

  std::unique_lock<std::mutex> lock(session->mu);
  PgConnection& conn = session->conn;
  const SteadyTime deadline = ctx.deadline();
  if (conn.ok() && conn.in_transaction()) {
    ctx.Log(LogLevel::kWarn, "connection '" + name +
                                 "': rolling back a transaction an earlier "
                                 "call left open");
    if (!conn.Exec("ROLLBACK", {}, deadline).ok()) conn.Close();
  }
  if (conn.ok()) {
    // Also tells whether the server is still there: a connection that died
    // since the last step is noticed here, where reconnecting is safe.
    Status s = conn.SetApplicationName(options->application_name, deadline);
    if (!s.ok() && conn.ok()) return s;
  }
  if (!conn.ok()) {
    Status s = conn.Connect(*options, deadline);
    // Through a port-forward or tunnel, the first connection after the far
    // end went away (a restarted server, a replaced pod) can meet a forward
    // that has not noticed yet: it hands over a connection and closes it.
    // The forward notices and is restarted when the options are resolved again.
    for (int attempt = 1;
         !s.ok() && declared->config.contains("via") && attempt <= 4 &&
         s.message().find("closed the connection unexpectedly") != std::string::npos &&
         ctx.clock().Steady() + Millis(250 * attempt) < deadline;
         ++attempt) {
      ctx.clock().Sleep(Millis(250 * attempt));
      options = StepConnectOptions(ctx, name);
      if (!options.ok()) return options.status();
      s = conn.Connect(*options, deadline);
    }
    ForwardNotices(ctx, conn);
    if (!s.ok()) return ctx.dry_run() ? PlannedDatabaseOr(ctx, *options, s) : s;
  }
  if (Status s = PlannedDatabaseCheck(ctx, conn); !s.ok()) return s;
  return PgLease(std::move(lock), &conn, deadline);
}

Status PlannedDatabaseCheck(StepContext& ctx, PgConnection& conn) {
  RehearsalPlan* plan = PlanOf(ctx);
  if (!plan || plan->empty()) return Status::Ok();
  const std::string db = conn.database();
  const std::string key = PlannedDatabaseKey(conn.identity(ctx.deadline()), db);
  if (const std::string by = plan->GoneBy(key); !by.empty()) {
    return Status::Failed("connection '" + conn.conn_name() + "': database '" + db +
                          "' would not exist by now: step '" + by +
                          "' drops it earlier in this run (a real run would stop here)");
  }
  // Planned and there already: only after an earlier step drops it (a step
  // that would create a database notes it only when it is not there), so
  // this is not the database a real run would find.
  if (const std::string by = plan->StepFor(key); !by.empty()) {
    return Status::NotYet("connection '" + conn.conn_name() + "': database '" + db +
                          "' would be a new one by now: step '" + by +
                          "' creates it again after an earlier step drops it");
  }
  return Status::Ok();
}

std::vector<int> IdleRunSessionsOn(StepContext& ctx, PgLease& lease, const std::string& db,
                                   bool close) {
  // Collected under the resources' lock, asked outside it (a round trip to
  // each server would hold up every step that opens a resource). Sessions
  // live until the run ends.
  std::vector<PgSession*> sessions;
  ctx.resources().ForEach([&](const std::string&, Resource* r) {
    auto* session = dynamic_cast<PgSession*>(r);
    if (session && &session->conn != &lease.conn()) sessions.push_back(session);
  });
  std::vector<int> pids;
  const std::string server = lease.conn().identity(lease.deadline());
  for (PgSession* session : sessions) {
    std::unique_lock<std::mutex> in_use(session->mu, std::try_to_lock);
    if (!in_use.owns_lock()) continue;  // a step is using it now: not ours to close
    PgConnection& c = session->conn;
    if (!c.ok() || c.database() != db || c.identity(lease.deadline()) != server) continue;
    pids.push_back(c.backend_pid());
    if (close) c.Close();
  }
  return pids;
}

std::string PlannedDatabaseKey(const std::string& server, const std::string& database) {
  return "postgres:" + server + "/database:" + database;
}

std::string PlannedRefreshKey(const std::string& server, const std::string& database) {
  return "postgres:" + server + "/collation-refresh:" + database;
}

Status PlannedDatabaseOr(StepContext& ctx, const PgConnectOptions& options, Status failure) {
  RehearsalPlan* plan = PlanOf(ctx);
  if (!plan || plan->empty()) return failure;
  auto kw = options.keywords.find("dbname");
  std::string db = kw != options.keywords.end() ? kw->second : DsnValue(options.dsn, "dbname");
  if (db.empty()) {
    const char* env = getenv("PGDATABASE");
    db = env ? env : "";
  }
  if (db.empty()) return failure;  // libpq's default, the user's name: no step creates it
  // The server says so only once the host, pg_hba.conf and the credentials
  // accepted this very database: any other refusal a real run would meet too.
  if (failure.message().find("database \"" + db + "\" does not exist") == std::string::npos) {
    return failure;
  }
  for (const char* maintenance : {"postgres", "template1"}) {
    if (db == maintenance) return failure;
    PgConnectOptions probe_options = options;
    probe_options.keywords["dbname"] = maintenance;
    PgConnection probe;
    if (!probe.Connect(probe_options, ctx.deadline()).ok()) continue;
    Result<Value> rows =
        probe.Query("SELECT 1 FROM pg_database WHERE datname = $1", {db}, ctx.deadline());
    if (!rows.ok() || !rows->empty()) return failure;  // it exists: the failure is its own
    const std::string step = plan->StepFor(PlannedDatabaseKey(probe.identity(ctx.deadline()), db));
    if (step.empty()) return failure;
    return Status::NotYet(
        "connection '" + options.conn_name + "': database '" + db + "' does not exist yet: step '" +
        step + "' would create it (the server answered through database '" + maintenance + "')");
  }
  return failure;
}

Result<std::unique_ptr<PgConnection>> ConnectToDatabase(StepContext& ctx, const std::string& name,
                                                        const std::string& dbname) {
  Result<PgConnectOptions> options = StepConnectOptions(ctx, name);
  if (!options.ok()) return options.status();
  options->keywords["dbname"] = dbname;  // after the dsn, so it wins
  auto conn = std::make_unique<PgConnection>();
  Status s = conn->Connect(*options, ctx.deadline());
  ForwardNotices(ctx, *conn);
  if (!s.ok()) {
    s = s.Prefixed("database '" + dbname + "'");
    return ctx.dry_run() ? PlannedDatabaseOr(ctx, *options, s) : s;
  }
  if (Status dropped = PlannedDatabaseCheck(ctx, *conn); !dropped.ok()) return dropped;
  return conn;
}

}  // namespace runbook
