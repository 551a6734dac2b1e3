// pg.terminate_connections and pg.wait_ready: the sessions around a change.
#include <algorithm>

#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "engine/core/duration.h"

namespace runbook {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Client sessions on a database other than our own. $1: the database.
constexpr const char* kSessionsSql =
    "SELECT pid, usename AS user, application_name, client_addr::text AS client_addr, state, "
    "backend_start::text AS backend_start%s FROM pg_stat_activity "
    "WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
    "ORDER BY pid";

std::string SessionsSql(bool terminate) {
  std::string sql = kSessionsSql;
  sql.replace(sql.find("%s"), 2, terminate ? ", pg_terminate_backend(pid) AS terminated" : "");
  return sql;
}

class PgTerminateConnections : public NamedPrimitive {
 public:
  PgTerminateConnections()
      : NamedPrimitive(
            "pg.terminate_connections",
            Schema{"Ends every other client session on a database (pg_terminate_backend).",
                   {PgConnArg("conn", "a connection to the server"),
                    Arg("database", ArgType::kString, true, "whose sessions to end")},
                   {},
                   ""},
            MapResult(
                {ListOfMaps(
                     "sessions", "the other client sessions on the database (pg_stat_activity)",
                     {Field("pid", FieldType::kInt, "the backend's process id"),
                      Optional(Field("user", FieldType::kString, "the role it logged in as")),
                      Field("application_name", FieldType::kString, "as the client set it"),
                      Optional(Field("client_addr", FieldType::kString,
                                     "the client's address; null over a Unix socket")),
                      Optional(Field("state", FieldType::kString, "active, idle, ...")),
                      Optional(Field("backend_start", FieldType::kString,
                                     "when it connected (timestamptz as text)")),
                      Optional(Field("terminated", FieldType::kBool,
                                     "pg_terminate_backend's answer; absent in a rehearsal"))}),
                 Field("terminated", FieldType::kInt, "sessions ended (0 in a rehearsal)"),
                 Optional(Field("would_terminate", FieldType::kInt,
                                "sessions a real run would end; only in a rehearsal"))})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return Irreversible(SessionsSql(true) + "\n-- $1 = '" + StrArg(args, "database") + "'",
                        "ended sessions are gone (their clients may reconnect)");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    // A rehearsal only lists them.
    Result<Value> rows = lease->Query(SessionsSql(!ctx.dry_run()), {StrArg(args, "database")});
    if (!rows.ok()) return rows.status();
    int64_t ended = 0;
    for (auto& row : *rows) {
      if (row.value("terminated", false)) ++ended;
    }
    Value out{{"sessions", *rows}, {"terminated", ended}};
    if (ctx.dry_run()) out["would_terminate"] = rows->size();
    return out;
  }
};

class PgWaitReady : public NamedPrimitive {
 public:
  PgWaitReady()
      : NamedPrimitive(
            "pg.wait_ready",
            Schema{"Waits until the server accepts a connection and answers SELECT 1.",
                   {PgConnArg("conn", "the server"),
                    Arg("timeout", ArgType::kDuration, false, "how long to wait (60s)"),
                    Arg("interval", ArgType::kDuration, false, "pause between attempts (500ms)")},
                   {},
                   ""},
            MapResult({Field("ready", FieldType::kBool, "always true: a timeout fails the step"),
                       Field("attempts", FieldType::kInt, "connection attempts made"),
                       Field("waited_ms", FieldType::kInt, "how long it waited, in milliseconds"),
                       Field("server_version", FieldType::kInt,
                             "the server's version number, e.g. 160002")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing("wait until '" + StrArg(args, "conn") + "' answers SELECT 1 (timeout " +
                          StrArg(args, "timeout", "60s") + ")");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<std::chrono::milliseconds> timeout =
        DurationArg(args, "timeout", std::chrono::seconds(60));
    if (!timeout.ok()) return timeout.status();
    Result<std::chrono::milliseconds> interval =
        DurationArg(args, "interval", std::chrono::milliseconds(500));
    if (!interval.ok()) return interval.status();
    const SteadyTime start = ctx.clock().Steady();
    const SteadyTime until = std::min(ctx.deadline(), start + *timeout);
    Result<PgConnectOptions> options = StepConnectOptions(ctx, StrArg(args, "conn"));
    if (!options.ok()) return options.status();
    Status last;
    for (int attempt = 1;; ++attempt) {
      PgConnection conn;
      last = conn.Connect(*options, until);
      if (last.ok()) last = conn.Exec("SELECT 1", {}, until);
      conn.TakeNotices();
      if (last.ok()) {
        auto waited = duration_cast<milliseconds>(ctx.clock().Steady() - start).count();
        return Value{{"ready", true}, {"attempts", attempt}, {"waited_ms", waited},
                     {"server_version", conn.server_version()}};
      }
      // Wrong credentials or a missing database do not get better by waiting.
      if (last.code() == Status::Code::kFailed) {
        return ctx.dry_run() ? PlannedDatabaseOr(ctx, *options, last) : last;
      }
      auto left = until - ctx.clock().Steady();
      if (left <= milliseconds(0)) break;
      ctx.clock().Sleep(std::min(duration_cast<milliseconds>(left), *interval));
    }
    return Status::Timeout("not ready after " + FormatDuration(*timeout) + ": " +
                           last.message());
  }
};

}  // namespace

void AddPgSessionPrimitives(Registry* r) {
  r->Add(std::make_unique<PgTerminateConnections>());
  r->Add(std::make_unique<PgWaitReady>());
}

}  // namespace runbook
