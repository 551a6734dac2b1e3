// pg.create_database, pg.drop_database: databases as units of a runbook.
#include "bindings/postgres/pg_database_checks.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_undo_guard.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {
namespace {

std::string CreateSql(const Value& args, const std::function<std::string(const std::string&)>& q) {
  std::string sql = "CREATE DATABASE " + q(StrArg(args, "name"));
  if (!StrArg(args, "owner").empty()) sql += " OWNER " + q(StrArg(args, "owner"));
  if (!StrArg(args, "template").empty()) sql += " TEMPLATE " + q(StrArg(args, "template"));
  return sql;
}

std::string DropSql(const std::string& name, bool if_exists, bool force,
                    const std::function<std::string(const std::string&)>& q) {
  return std::string("DROP DATABASE ") + (if_exists ? "IF EXISTS " : "") + q(name) +
         (force ? " WITH (FORCE)" : "");
}

// The result fields only a rehearsal sets.
FieldSpec RehearsedField() {
  return Optional(
      Field("rehearsal", FieldType::kString, "only in a rehearsal: preconditions checked"));
}
FieldSpec RehearsalNotesField() {
  return Optional(ListField("notes", FieldType::kString,
                            "what the rehearsal's checks noted; only in a rehearsal, absent "
                            "when none"));
}

// The database's oid, or 0 when there is none of that name.
Result<int64_t> DatabaseOid(PgLease& lease, const std::string& name) {
  Result<Value> rows = lease.Query("SELECT oid::int8 AS oid FROM pg_database WHERE datname = $1",
                                   {name});
  if (!rows.ok()) return rows.status();
  return rows->empty() ? int64_t{0} : (*rows)[0]["oid"].get<int64_t>();
}

class PgCreateDatabase : public NamedPrimitive {
 public:
  PgCreateDatabase()
      : NamedPrimitive(
            "pg.create_database",
            Schema{"Creates a database. Rollback drops it, only if this step created "
                   "it and no one else wrote to it since (refused).",
                   {PgConnArg("conn", "a connection to the server (any database)"),
                    Arg("name", ArgType::kString, true, "the new database"),
                    Arg("template", ArgType::kString, false, "template (template1)"),
                    Arg("owner", ArgType::kString, false, "owning role"),
                    Arg("if_not_exists", ArgType::kBool, false,
                        "succeed without change if it exists")},
                   {},
                   ""},
            MapResult({Field("created", FieldType::kBool,
                             "this step created it (false: it existed, with if_not_exists); "
                             "true in a rehearsal"),
                       Field("name", FieldType::kString, "the database"),
                       Optional(Field("oid", FieldType::kInt, "its oid; absent in a rehearsal")),
                       RehearsedField(), RehearsalNotesField()})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value& args) const override {
    return BoolArg(args, "if_not_exists", false);
  }
  PlanEffect Plan(const Value& args) const override {
    return {CreateSql(args, QuoteIdentPlain), UndoKind::kUndoes,
            DropSql(StrArg(args, "name"), true, true, QuoteIdentPlain) +
                " (only if this step created it, and no one else wrote to it since)"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string name = StrArg(args, "name");
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    const bool if_not_exists = BoolArg(args, "if_not_exists", false);
    if (ctx.dry_run()) {
      const std::string templ = StrArg(args, "template", "template1");
      RehearsalPlan* plan = PlanOf(ctx);
      const std::string server = lease->conn().identity(lease->deadline());
      const std::string key = PlannedDatabaseKey(server, name);
      // An earlier rehearsed step drops it: by now the name is free again.
      const bool dropped = plan && !plan->GoneBy(key).empty();
      std::vector<std::string> notes;
      Status s = CheckCreateDatabase(*lease, name, templ, StrArg(args, "owner"),
                                     if_not_exists || dropped, plan, &notes);
      if (!s.ok()) return s;
      // Later steps of this rehearsal that connect to it find it planned.
      Result<int64_t> oid = DatabaseOid(*lease, name);
      if (!oid.ok()) return oid.status();
      if (plan && (*oid == 0 || dropped)) {
        // Two steps creating one database (two foreach items side by
        // side too): a real run fails at the second.
        if (const std::string first = plan->Claim(key, ctx.step_id());
            !first.empty() && !if_not_exists) {
          return Status::Failed("connection '" + lease->name() + "': database '" + name +
                                "' would exist already: step '" + first + "' creates it first");
        }
      }
      Value out{{"created", true}, {"name", name}, {"rehearsal", "preconditions checked"}};
      if (!notes.empty()) out["notes"] = notes;
      return out;
    }
    // A CREATE DATABASE of a killed attempt may still be copying the template.
    if (Status s = WaitForInterruptedAttempt(ctx, *lease); !s.ok()) return s;
    Result<int64_t> oid = DatabaseOid(*lease, name);
    if (!oid.ok()) return oid.status();
    Value previous = ctx.PreviousUndo();
    if (*oid != 0 && previous.is_object() && previous.value("created", false)) {
      // An earlier attempt of this step created it: keep that record.
      return Value{{"created", true}, {"name", name}, {"oid", *oid}};
    }
    if (*oid != 0 && if_not_exists) return Value{{"created", false}, {"name", name}, {"oid", *oid}};
    // Every row of the new database is younger than this (the template's
    // are older): the undo's guard counts those the run did not write.
    Result<std::string> since = NextXid(lease->conn(), lease->deadline());
    if (!since.ok()) return since.status();
    // Recorded before acting: a crash right after CREATE still rolls back.
    Status s = ctx.RecordUndo(Value{{"created", true}, {"name", name}, {"since", *since}});
    if (!s.ok()) return s;
    const std::string sql = CreateSql(args, [&](const std::string& n) { return lease->Ident(n); });
    s = lease->Exec(sql);
    ForwardNotices(ctx, lease->conn());
    if (!s.ok()) {
      // Not ours: a rollback must never drop a database someone else made.
      ctx.RecordUndo(Value{{"created", false}, {"name", name}});
      return s;
    }
    oid = DatabaseOid(*lease, name);
    if (!oid.ok()) return oid.status();
    ctx.RecordUndo(Value{{"created", true}, {"name", name}, {"oid", *oid}, {"since", *since}});
    return Value{{"created", true}, {"name", name}, {"oid", *oid}};
  }

  // Dropping the database drops every row in it: refused when some were
  // written by someone other than the run (an application switched to it)
  // and no later step vouched for them (pg.fallback's reverse cutover).
  // Tables a pg.copy or pg.replicate of the run created are left to theirs.
  Status CheckUndo(StepContext& ctx, const Value& args, const Value& undo_state) override {
    if (!undo_state.is_object() || !undo_state.value("created", false) ||
        !undo_state.contains("since")) {
      return Status::Ok();
    }
    const std::string conn = StrArg(args, "conn");
    const std::string name = StrArg(undo_state, "name", StrArg(args, "name"));
    {
      Result<PgLease> lease = LeaseConnection(ctx, conn);
      if (!lease.ok()) return lease.status();
      Result<int64_t> oid = DatabaseOid(*lease, name);
      if (!oid.ok()) return oid.status();
      if (*oid == 0) return Status::Ok();  // gone: nothing to lose
      if (undo_state.contains("oid") && undo_state["oid"].get<int64_t>() != *oid) {
        return Status::Ok();  // not ours any more: the undo leaves it
      }
    }
    Result<std::unique_ptr<PgConnection>> db = ConnectToDatabase(ctx, conn, name);
    if (!db.ok()) return db.status();
    Result<std::vector<ForeignRows>> foreign = FindForeignRows(
        ctx, **db, ctx.deadline(), undo_state["since"].get<std::string>(), nullptr);
    if (!foreign.ok()) return foreign.status();
    if (foreign->empty()) return Status::Ok();
    return Status::Failed("database '" + name + "' (connection '" + conn +
                          "') holds rows this run did not write, written since it was created: " +
                          DescribeForeignRows(*foreign) + "; dropping it would lose them");
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& undo_state) override {
    if (!undo_state.is_object() || !undo_state.value("created", false)) return NothingToUndo(ctx);
    const std::string name = StrArg(undo_state, "name", StrArg(args, "name"));
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    Result<int64_t> oid = DatabaseOid(*lease, name);
    if (!oid.ok()) return oid.status();
    if (*oid == 0) return NothingToUndo(ctx);  // already gone (an undo that ran before)
    if (undo_state.contains("oid") && undo_state["oid"].get<int64_t>() != *oid) {
      return Status::Failed("connection '" + lease->name() + "': database '" + name +
                            "' was dropped and created again since this step created it; "
                            "not dropping it");
    }
    // FORCE: the run's own connections to it (other steps) must not block the undo.
    bool force = lease->conn().server_version() >= 130000;
    Status s = lease->Exec(DropSql(name, true, force,
                                   [&](const std::string& n) { return lease->Ident(n); }));
    ForwardNotices(ctx, lease->conn());
    return s;
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value&) override {
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok() || !WaitForInterruptedAttempt(ctx, *lease).ok()) return {};
    Result<int64_t> oid = DatabaseOid(*lease, StrArg(args, "name"));
    if (!oid.ok()) return {};
    if (*oid == 0) return {CheckOutcome::kNotDone, Value()};
    return {CheckOutcome::kDone,
            Value{{"created", true}, {"name", StrArg(args, "name")}, {"oid", *oid}}};
  }
};

class PgDropDatabase : public NamedPrimitive {
 public:
  PgDropDatabase()
      : NamedPrimitive(
            "pg.drop_database",
            Schema{"Drops a database. Irreversible.",
                   {PgConnArg("conn", "a connection to the server (another database)"),
                    Arg("name", ArgType::kString, true, "the database to drop"),
                    Arg("terminate", ArgType::kBool, false,
                        "end other sessions on it first (WITH (FORCE))"),
                    Arg("if_exists", ArgType::kBool, false, "succeed if it does not exist")},
                   {},
                   ""},
            MapResult({Field("dropped", FieldType::kBool,
                             "it existed and was dropped (false: absent, with if_exists); in "
                             "a rehearsal: it would be"),
                       Field("name", FieldType::kString, "the database"), RehearsedField(),
                       RehearsalNotesField()})) {}

  // DROP DATABASE cannot run inside a transaction: a rehearsal checks what
  // a real run would meet (the database there, or made by an earlier step;
  // the right to drop it; sessions on it) and notes it gone for later steps.
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value& args) const override { return BoolArg(args, "if_exists", false); }
  PlanEffect Plan(const Value& args) const override {
    return Irreversible(DropSql(StrArg(args, "name"), BoolArg(args, "if_exists", false),
                                BoolArg(args, "terminate", false), QuoteIdentPlain),
                        "the database and its data are gone");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string name = StrArg(args, "name");
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    if (Status s = WaitForInterruptedAttempt(ctx, *lease); !s.ok()) return s;
    if (lease->conn().database() == name) {
      return Status::Invalid("connection '" + lease->name() + "' is connected to database '" +
                             name + "' itself; drop it through a connection to another "
                             "database (dbname: postgres)");
    }
    const bool terminate = BoolArg(args, "terminate", false);
    // This run's own connections to it (an earlier step's, kept for the
    // run) that no step is using now are closed first, in a real run; a
    // rehearsal leaves them out of the sessions it counts.
    const std::vector<int> own = IdleRunSessionsOn(ctx, *lease, name, !ctx.dry_run());
    if (ctx.dry_run()) {
      return RehearseDropDatabase(ctx, *lease, name, terminate, BoolArg(args, "if_exists", false),
                                  own);
    }
    const bool force = terminate && lease->conn().server_version() >= 130000;
    if (terminate && !force) {
      Status s = lease->Exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE datname = $1 AND pid <> pg_backend_pid()", {name});
      if (!s.ok()) return s;
    }
    if (!terminate) {
      // DROP DATABASE would wait 5 s for them and then fail: say who at once
      // (another role's session shows no backend_type to a role without
      // pg_read_all_stats; the run's own, just closed, may linger a moment).
      Result<Value> others = lease->Query(
          "SELECT count(*) AS n, string_agg(DISTINCT coalesce(nullif(application_name, ''), "
          "usename), ', ') AS who FROM pg_stat_activity WHERE datname = $1 "
          "AND pid <> pg_backend_pid() AND pid <> ALL($2::int[]) AND " +
              ClientSessionSql(""),
          {name, PgIntArray(own)});
      if (!others.ok()) return others.status();
      int64_t n = (*others)[0]["n"].get<int64_t>();
      if (n > 0) {
        return Status::Failed("connection '" + lease->name() + "': database '" + name +
                              "' is being accessed by other users (" + std::to_string(n) +
                              " session(s): " + (*others)[0]["who"].get<std::string>() +
                              "); set terminate: true to end them");
      }
    }
    Result<int64_t> before = DatabaseOid(*lease, name);
    if (!before.ok()) return before.status();
    Status s = lease->Exec(DropSql(name, BoolArg(args, "if_exists", false), force,
                                   [&](const std::string& n) { return lease->Ident(n); }));
    ForwardNotices(ctx, lease->conn());
    if (!s.ok()) return s;
    return Value{{"dropped", *before != 0}, {"name", name}};
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value&) override {
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok() || !WaitForInterruptedAttempt(ctx, *lease).ok()) return {};
    Result<int64_t> oid = DatabaseOid(*lease, StrArg(args, "name"));
    if (!oid.ok()) return {};
    if (*oid != 0) return {CheckOutcome::kNotDone, Value()};
    return {CheckOutcome::kDone, Value{{"dropped", true}, {"name", StrArg(args, "name")}}};
  }
};

}  // namespace

void AddPgDatabasePrimitives(Registry* r) {
  r->Add(std::make_unique<PgCreateDatabase>());
  r->Add(std::make_unique<PgDropDatabase>());
}

}  // namespace runbook
