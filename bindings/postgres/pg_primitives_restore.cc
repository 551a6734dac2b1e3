// pg.restore: an archive written by pg_dump into a database, through
// pg_restore (custom, directory) or psql (plain). See pg_tools.h.
//
// The archive is verified before anything touches the target. Rollback drops
// what the restore created: the database when it created it, otherwise the
// relations and schemas of the archive that did not exist before (the list
// is journaled before the restore starts).
#include <algorithm>
#include <filesystem>
#include <set>

#include "bindings/postgres/pg_database_checks.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_tools.h"
#include "bindings/postgres/pg_undo_guard.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {

namespace fs = std::filesystem;
namespace {

// Drop order: dependents first, schemas last.
const char* const kDropKinds[] = {"VIEW",  "MATERIALIZED VIEW", "FOREIGN TABLE",
                                  "TABLE", "SEQUENCE",          "SCHEMA"};

Result<int64_t> DatabaseOid(PgLease& lease, const std::string& name) {
  Result<Value> rows =
      lease.Query("SELECT oid::int8 AS oid FROM pg_database WHERE datname = $1", {name});
  if (!rows.ok()) return rows.status();
  return rows->empty() ? int64_t{0} : (*rows)[0]["oid"].get<int64_t>();
}

std::vector<std::string> RestoreArgv(const Value& args, const std::string& format,
                                     const std::string& dbname) {
  const std::string bin = StrArg(args, "bin_dir"), file = StrArg(args, "file");
  if (format == "plain") {
    return {ToolPath(bin, "psql"),
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "--no-password",
            "--single-transaction",
            "--quiet",
            "--dbname=" + dbname,
            "--file=" + file};
  }
  std::vector<std::string> argv{ToolPath(bin, "pg_restore"), "--exit-on-error", "--no-password"};
  if (args.contains("jobs")) {
    argv.push_back("--jobs=" + StrArg(args, "jobs"));
  } else {
    argv.push_back("--single-transaction");  // cannot be combined with --jobs
  }
  if (BoolArg(args, "no_owner", false)) argv.push_back("--no-owner");
  argv.push_back("--dbname=" + dbname);
  argv.push_back("--");  // the archive is never an option, whatever its name
  argv.push_back(file);
  return argv;
}

// The archive's table of contents; fails if pg_restore cannot read it.
Result<std::vector<TocEntry>> VerifyArchive(StepContext& ctx, const Value& args,
                                            const std::string& where, const std::string& format) {
  const std::string file = StrArg(args, "file");
  if (format == "plain") {
    Result<std::vector<TocEntry>> toc = ReadPlainToc(file);
    if (!toc.ok()) return toc.status().Prefixed(where + ": archive is not usable");
    return toc;
  }
  Result<std::string> list =
      RunTool(ctx, where + ": archive " + file + " is not usable (pg_restore --list)",
              {ToolPath(StrArg(args, "bin_dir"), "pg_restore"), "--list", "--", file});
  if (!list.ok()) return list.status();
  return ParseTocList(*list);
}

// The archive's relations and schemas that do not exist in `db` now.
Result<Value> NewObjects(PgConnection& db, const std::vector<TocEntry>& toc, SteadyTime deadline) {
  Result<Value> rows = db.Query(
      "SELECT n.nspname AS s, c.relname AS n FROM pg_class c JOIN pg_namespace n "
      "ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','v','m','S','f') "
      "UNION ALL SELECT nspname, NULL FROM pg_namespace",
      {}, deadline);
  if (!rows.ok()) return rows.status();
  std::set<std::pair<std::string, std::string>> existing;
  for (const auto& r : *rows) {
    existing.insert({r["s"].get<std::string>(), r["n"].is_null() ? "" : r["n"].get<std::string>()});
  }
  Value out = Value::array();
  for (const auto& e : toc) {
    if (e.type == "TABLE DATA") continue;
    auto key = e.type == "SCHEMA" ? std::make_pair(e.name, std::string())
                                  : std::make_pair(e.schema, e.name);
    if (existing.count(key)) continue;
    out.push_back(Value{{"type", e.type}, {"schema", e.schema}, {"name", e.name}});
  }
  return out;
}

// DROP DATABASE after ending its sessions; only the database this step made.
Status DropCreatedDatabase(StepContext& ctx, PgLease& lease, const std::string& name,
                           const Value& undo) {
  Result<int64_t> oid = DatabaseOid(lease, name);
  if (!oid.ok()) return oid.status();
  if (*oid == 0) return Status::Ok();
  if (undo.contains("oid") && undo["oid"].get<int64_t>() != *oid) {
    return Status::Failed("connection '" + lease.name() + "': database '" + name +
                          "' was dropped and created again since this step created it; "
                          "not dropping it");
  }
  Status s = lease.Exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = $1 AND pid <> pg_backend_pid()",
      {name});
  if (!s.ok()) return s;
  const bool force = lease->server_version() >= 130000;
  s = lease.Exec("DROP DATABASE IF EXISTS " + lease.Ident(name) + (force ? " WITH (FORCE)" : ""));
  ForwardNotices(ctx, lease.conn());
  return s;
}

class PgRestore : public NamedPrimitive {
 public:
  PgRestore()
      : NamedPrimitive(
            "pg.restore",
            Schema{"Restores a pg_dump archive (custom, directory or plain) into a database. "
                   "Rollback drops what it created, unless someone else wrote there since "
                   "(refused).",
                   {PgConnArg("conn", "a connection to the server"),
                    Arg("database", ArgType::kString, true, "the database to restore into"),
                    Arg("file", ArgType::kString, true, "the archive file or directory"),
                    Arg("jobs", ArgType::kInt, false, "parallel jobs (custom, directory)"),
                    Arg("create", ArgType::kBool, false, "create the database first"),
                    Arg("clean", ArgType::kBool, false,
                        "not supported: dropping existing objects could not be undone"),
                    Arg("no_owner", ArgType::kBool, false, "skip ownership (pg_restore -O)"),
                    Arg("bin_dir", ArgType::kString, false,
                        "directory of pg_restore and psql (default: PATH)")},
                   {},
                   ""},
            MapResult(
                {Field("database", FieldType::kString, "the database restored into"),
                 Field("tables", FieldType::kInt,
                       "tables with data in the archive (TABLE DATA entries); UNKNOWN in a "
                       "rehearsal of an archive an earlier pg.dump step would write"),
                 Field("file", FieldType::kString, "the archive"),
                 Field("format", FieldType::kString,
                       "custom, directory or plain; unknown in a rehearsal of an archive an "
                       "earlier pg.dump step would write"),
                 Optional(Field("sha256", FieldType::kString,
                                "of the archive (of a directory: of its files' sha256 lines); "
                                "absent in a rehearsal")),
                 Optional(ListField("notes", FieldType::kString,
                                    "notes on CREATE DATABASE's preconditions; only in a "
                                    "rehearsal with create: true, when there are any")),
                 Optional(Field("rehearsal", FieldType::kString,
                                "what the rehearsal did; only in a rehearsal"))})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  PlanEffect Plan(const Value& args) const override {
    const std::string db = StrArg(args, "database"), file = StrArg(args, "file");
    std::string format =
        file.size() > 4 && file.substr(file.size() - 4) == ".sql" ? "plain" : "custom";
    std::string text =
        format == "plain"
            ? "check that " + file + " ends with pg_dump's \"dump complete\" line"
            : FormatToolArgv({ToolPath(StrArg(args, "bin_dir"), "pg_restore"), "--list", "--", file});
    if (BoolArg(args, "create", false))
      text += "\nCREATE DATABASE \"" + db + "\" TEMPLATE template0";
    text +=
        "\n" + FormatToolArgv(RestoreArgv(
                   args, format, "<connection " + StrArg(args, "conn") + ", database " + db + ">"));
    if (format == "plain") text += "   # a .sql file is plain format";
    return {text, UndoKind::kUndoes,
            BoolArg(args, "create", false)
                ? "DROP DATABASE \"" + db + "\" WITH (FORCE) (only if this step created it)"
                : "drop the archive's tables, views, sequences and schemas that did not exist "
                  "before"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string conn = StrArg(args, "conn"), database = StrArg(args, "database");
    const std::string file = StrArg(args, "file");
    const std::string where = "connection '" + conn + "': pg.restore";
    const bool create = BoolArg(args, "create", false);
    if (BoolArg(args, "clean", false)) {
      return Status::Invalid(where +
                             ": clean: true is not supported (objects it dropped could "
                             "not be brought back by rollback); restore into a new database");
    }
    // In a rehearsal the archive may be one an earlier pg.dump step would write.
    RehearsalPlan* plan = PlanOf(ctx);
    std::error_code exists_error;
    const std::string dumped_by = plan && !fs::exists(file, exists_error)
                                      ? plan->StepFor(PlannedFileKey(file))
                                      : std::string();
    const bool pending = !dumped_by.empty();
    Result<std::string> format =
        pending ? Result<std::string>(std::string("unknown")) : DetectArchiveFormat(file);
    if (!format.ok()) return format.status().Prefixed(where);
    if (*format == "plain" && args.contains("jobs")) {
      return Status::Invalid(where + ": jobs needs a custom or directory archive; " + file +
                             " is plain SQL");
    }
    Result<std::vector<TocEntry>> toc = pending
                                            ? Result<std::vector<TocEntry>>(std::vector<TocEntry>{})
                                            : VerifyArchive(ctx, args, where, *format);
    if (!toc.ok()) return toc.status();
    Result<PgLease> lease = LeaseConnection(ctx, conn);
    if (!lease.ok()) return lease.status();
    Result<int64_t> oid = DatabaseOid(*lease, database);
    if (!oid.ok()) return oid.status();
    const Value previous = ctx.PreviousUndo();
    const bool ours = previous.is_object() && previous.value("created_database", false);
    // In a rehearsal, the database as earlier rehearsed steps would leave it.
    const std::string planned_key =
        plan ? PlannedDatabaseKey(lease->conn().identity(lease->deadline()), database) : "";
    const std::string made_by = plan ? plan->StepFor(planned_key) : "";
    const std::string dropped_by = plan ? plan->GoneBy(planned_key) : "";
    if (create && ((*oid != 0 && !ours && dropped_by.empty()) || !made_by.empty())) {
      return Status::Failed(where + ": database '" + database + "' already exists (create: true)" +
                            (made_by.empty() ? "" : ": step '" + made_by + "' creates it"));
    }
    if (!create && !made_by.empty() && *oid == 0) {
      return Status::NotYet(where + ": database '" + database + "' does not exist yet: step '" +
                            made_by + "' would create it");
    }
    if (!create && (*oid == 0 || !dropped_by.empty())) {
      return Status::Failed(where + ": database '" + database +
                            (dropped_by.empty() ? "' does not exist"
                                                : "' would not exist by now: step '" + dropped_by +
                                                      "' drops it earlier in this run") +
                            "; set create: true to create it");
    }
    // pg_restore writes to the server this session reads (whose transaction
    // ids the undo guard counts as the run's), whatever a host list or DNS
    // would pick now.
    Result<PgConnectOptions> at = LeaseEndpoint(ctx, *lease);
    if (!at.ok()) return at.status();
    Result<PgToolTarget> target = PgToolConnect(*at, database);
    if (!target.ok()) return target.status();
    target->conn_name = conn;
    Value out{{"database", database},
              {"tables", pending ? MakeUnknown("the archive is written by step '" + dumped_by + "'")
                                 : Value(CountType(*toc, "TABLE DATA"))},
              {"file", file},
              {"format", *format}};
    if (ctx.dry_run()) {
      if (create) {
        std::vector<std::string> notes;
        Status s = CheckCreateDatabase(*lease, database, "template0", "", !dropped_by.empty(), plan,
                                       &notes);
        if (!s.ok()) return s;
        if (!notes.empty()) out["notes"] = notes;
        // Checked above; claimed here at once, as another step may have since.
        if (const std::string by = plan ? plan->Claim(planned_key, ctx.step_id()) : "";
            !by.empty()) {
          return Status::Failed(where + ": database '" + database +
                                "' already exists (create: true): step '" + by + "' creates it");
        }
      } else {
        Result<std::unique_ptr<PgConnection>> db = ConnectToDatabase(ctx, conn, database);
        if (!db.ok()) return db.status();
      }
      out["rehearsal"] = "archive listed, target checked; nothing restored";
      return out;
    }
    Result<PathDigest> digest = DigestPath(file);
    if (!digest.ok()) return digest.status().Prefixed(where);
    // Rows younger than `since` are the tool's (noted as the run's own
    // below) or someone else's: the undo's guard tells them apart.
    Result<std::string> next = NextXid(lease->conn(), lease->deadline());
    if (!next.ok()) return next.status();
    const std::string since =
        previous.is_object() && previous.contains("since") ? StrArg(previous, "since") : *next;
    Status prepared = create ? CreateTarget(ctx, *lease, database, previous, since)
                             : RecordNewObjects(ctx, conn, database, *toc, previous, since);
    if (!prepared.ok()) return prepared;
    std::vector<std::string> argv = RestoreArgv(args, *format, target->conninfo);
    ctx.Log(LogLevel::kInfo, ctx.redactor().Redact(FormatToolArgv(argv)));
    // The tool's transactions are the run's: noted open before it starts
    // (a crash leaves it open), closed once it is done.
    Result<std::string> first = NextXid(lease->conn(), lease->deadline());
    if (!first.ok()) return first.status();
    if (Status s = NoteOwnXidRange(ctx, lease->conn(), lease->deadline(), *first, ""); !s.ok()) {
      return s;
    }
    { PgLease release = std::move(*lease); }  // the tool opens its own sessions
    Result<std::string> run = RunTool(ctx, where, argv, target->env);
    // Closed whether the tool succeeded or not: what it wrote is the run's.
    Result<PgLease> after = LeaseConnection(ctx, conn);
    if (!after.ok()) return run.ok() ? after.status() : run.status();
    Result<std::string> end = NextXid(after->conn(), after->deadline());
    if (!end.ok()) return run.ok() ? end.status() : run.status();
    if (Status s = NoteOwnXidRange(ctx, after->conn(), after->deadline(), *first, *end); !s.ok()) {
      return s;
    }
    if (!run.ok()) return run.status();
    out["sha256"] = digest->sha256;
    return out;
  }

  // The undo drops the database it created, or the tables it created: not
  // when they hold rows someone else wrote since (an application switched
  // to the restored database).
  Status CheckUndo(StepContext& ctx, const Value& args, const Value& undo) override {
    if (!undo.is_object() || !undo.contains("since")) return Status::Ok();
    const std::string conn = StrArg(args, "conn");
    const std::string database = StrArg(undo, "database", StrArg(args, "database"));
    std::vector<TableName> tables;
    if (undo.value("created_database", false)) {
      Result<PgLease> lease = LeaseConnection(ctx, conn);
      if (!lease.ok()) return lease.status();
      Result<int64_t> oid = DatabaseOid(*lease, database);
      if (!oid.ok()) return oid.status();
      if (*oid == 0) return Status::Ok();
      if (undo.contains("oid") && undo["oid"].get<int64_t>() != *oid) return Status::Ok();
    } else {
      for (const auto& o : undo.value("drop", Value::array())) {
        if (o.value("type", "") == "TABLE") {
          tables.push_back(TableName{o.value("schema", ""), o.value("name", "")});
        }
      }
      if (tables.empty()) return Status::Ok();
    }
    Result<std::unique_ptr<PgConnection>> db = ConnectToDatabase(ctx, conn, database);
    if (!db.ok()) return db.status();
    Result<std::vector<ForeignRows>> foreign =
        FindForeignRows(ctx, **db, ctx.deadline(), undo["since"].get<std::string>(),
                        undo.value("created_database", false) ? nullptr : &tables);
    if (!foreign.ok()) return foreign.status();
    if (foreign->empty()) return Status::Ok();
    return Status::Failed("what pg.restore created in database '" + database +
                          "' (connection '" + conn + "') holds rows this run did not write: " +
                          DescribeForeignRows(*foreign) + "; dropping it would lose them");
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& undo) override {
    if (!undo.is_object()) return NothingToUndo(ctx);
    const std::string conn = StrArg(args, "conn");
    const std::string database = StrArg(undo, "database", StrArg(args, "database"));
    if (undo.value("created_database", false)) {
      Result<PgLease> lease = LeaseConnection(ctx, conn);
      if (!lease.ok()) return lease.status();
      return DropCreatedDatabase(ctx, *lease, database, undo);
    }
    if (!undo.contains("drop") || undo["drop"].empty()) return Status::Ok();
    Result<std::unique_ptr<PgConnection>> db = ConnectToDatabase(ctx, conn, database);
    if (!db.ok()) return db.status();
    PgConnection& c = **db;
    std::string sql = "BEGIN;\n";
    for (const char* kind : kDropKinds) {
      for (const auto& o : undo["drop"]) {
        if (o.value("type", "") != kind) continue;
        std::string name = c.QuoteIdent(o.value("name", ""));
        if (std::string(kind) != "SCHEMA") name = c.QuoteIdent(o.value("schema", "")) + "." + name;
        sql += std::string("DROP ") + kind + " IF EXISTS " + name + " CASCADE;\n";
      }
    }
    sql += "COMMIT;";
    Result<PgResult> r = c.RunScript(sql, ctx.deadline());
    ForwardNotices(ctx, c);
    return r.ok() ? Status::Ok() : r.status();
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value& undo) override {
    if (!undo.is_object() || !undo.value("created_database", false)) return {};
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return {};
    Result<int64_t> oid = DatabaseOid(*lease, StrArg(args, "database"));
    if (oid.ok() && *oid == 0) return {CheckOutcome::kNotDone, Value()};
    return {};  // it exists; whether the restore finished cannot be told
  }

 private:
  // create: true. A retry finds the database an earlier attempt created
  // (perhaps half restored): it is dropped and created again.
  static Status CreateTarget(StepContext& ctx, PgLease& lease, const std::string& database,
                             const Value& previous, const std::string& since) {
    if (previous.is_object() && previous.value("created_database", false)) {
      if (Status s = DropCreatedDatabase(ctx, lease, database, previous); !s.ok()) return s;
    }
    Status s = ctx.RecordUndo(
        Value{{"created_database", true}, {"database", database}, {"since", since}});
    if (!s.ok()) return s;
    s = lease.Exec("CREATE DATABASE " + lease.Ident(database) + " TEMPLATE template0");
    ForwardNotices(ctx, lease.conn());
    if (!s.ok()) {
      ctx.RecordUndo(Value{{"created_database", false}, {"database", database}});
      return s;
    }
    Result<int64_t> oid = DatabaseOid(lease, database);
    if (!oid.ok()) return oid.status();
    return ctx.RecordUndo(Value{
        {"created_database", true}, {"database", database}, {"oid", *oid}, {"since", since}});
  }

  // create: false. Journals the archive's objects that do not exist yet (a
  // retry keeps the earlier attempt's list: those objects exist by now).
  static Status RecordNewObjects(StepContext& ctx, const std::string& conn,
                                 const std::string& database, const std::vector<TocEntry>& toc,
                                 const Value& previous, const std::string& since) {
    Result<std::unique_ptr<PgConnection>> db = ConnectToDatabase(ctx, conn, database);
    if (!db.ok()) return db.status();
    Result<Value> fresh = NewObjects(**db, toc, ctx.deadline());
    if (!fresh.ok()) return fresh.status();
    Value drop = *fresh;
    if (previous.is_object() && previous.contains("drop")) {
      for (const auto& o : previous["drop"]) {
        if (std::find(drop.begin(), drop.end(), o) == drop.end()) drop.push_back(o);
      }
    }
    return ctx.RecordUndo(Value{
        {"created_database", false}, {"database", database}, {"drop", drop}, {"since", since}});
  }
};

}  // namespace

void AddPgRestorePrimitives(Registry* r) { r->Add(std::make_unique<PgRestore>()); }

}  // namespace runbook
