// pg.replicate, pg.wait_caught_up, pg.sync_sequences: logical replication
// from a source database into a target (a publication on the source, the
// schema on the target through pg_dump pre-data/post-data | psql as pg.copy
// does it, a subscription on the target), waiting for it to catch up, and
// carrying sequences over (logical replication does not replicate them).
//
// The slot is always created on the source first
// (pg_create_logical_replication_slot) and the subscription made with
// create_slot = false: CREATE SUBSCRIPTION creating its own slot hangs when
// source and target are databases of one cluster. The source's conninfo
// (with its password) only ever goes to the target server; every message we
// produce passes the redactor.
#include <algorithm>
#include <cctype>

#include "bindings/postgres/pg_copy.h"
#include "bindings/postgres/pg_copy_catalog.h"
#include "bindings/postgres/pg_counts.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_replication.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_tools.h"
#include "bindings/postgres/pg_value.h"
#include "bindings/postgres/pg_undo_guard.h"

namespace runbook {
namespace {

struct ReplArgs {
  std::string source, target, name, bin_dir;
  std::string source_dsn;  // how the target server reaches the source, if not as we do
  std::vector<std::string> tables;
  bool all = false, copy_data = true;
  OwnersChoice owners;
};

ReplArgs ReadArgs(const Value& args) {
  ReplArgs a;
  a.source = StrArg(args, "source");
  a.target = StrArg(args, "target");
  a.name = StrArg(args, "name");
  a.source_dsn = StrArg(args, "source_dsn");
  a.bin_dir = StrArg(args, "bin_dir");
  a.tables = StrListArg(args, "tables");
  a.all = BoolArg(args, "all", false);
  a.copy_data = BoolArg(args, "copy_data", true);
  a.owners = {args.is_object() && args.contains("keep_owners"), BoolArg(args, "keep_owners", false),
              a.all};
  return a;
}

// Every failure leaves through here: the source's password may be in it.
Status Redacted(StepContext& ctx, const Status& s) {
  if (s.ok()) return s;
  std::string msg = ctx.redactor().Redact(s.message());
  if (s.code() == Status::Code::kTimeout) return Status::Timeout(msg);
  if (s.code() == Status::Code::kInvalid) return Status::Invalid(msg);
  if (s.code() == Status::Code::kNotYet) return Status::NotYet(msg);  // a rehearsal's plan
  return Status::Failed(msg);
}

std::string Join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// A conninfo value, quoted for libpq ('...' with \ and ' escaped).
std::string ConnValue(const char* v) {
  std::string out = "'";
  for (const char* p = v ? v : ""; *p; ++p) {
    if (*p == '\'' || *p == '\\') out += '\\';
    out += *p;
  }
  return out + "'";
}

// How the target reaches the source: what the live source connection used,
// or `source_dsn` (key=value pairs; they win over ours, as libpq keeps the
// last of a repeated keyword). The engine's own address may be a port-forward
// or tunnel that the target server cannot use and that ends with the run:
// in a cluster, green reaches blue by a Service name the engine cannot.
std::string SourceConninfo(PgConnection& src, const std::string& source_dsn) {
  PGconn* c = src.native();
  std::string s = "dbname=" + ConnValue(PQdb(c)) + " user=" + ConnValue(PQuser(c));
  const char* pw = PQpass(c);
  if (pw && *pw) s += " password=" + ConnValue(pw);
  if (!source_dsn.empty()) return s + " " + source_dsn;
  return "host=" + ConnValue(PQhost(c)) + " port=" + ConnValue(PQport(c)) + " " + s;
}

Result<bool> Exists(PgLease& lease, const std::string& sql, const std::string& name) {
  Result<Value> r = lease.Query("SELECT EXISTS (" + sql + ") AS e", {name});
  if (!r.ok()) return r.status();
  return (*r)[0]["e"].get<bool>();
}

// Everything that would make the replication fail, checked before anything
// is created (and all a rehearsal does).
Status Probe(const ReplArgs& a, const std::string& name, PgLease& src, PgLease& dst,
             const std::vector<CopyTable>& tables) {
  Result<Value> s = src.Query(
      "SELECT current_setting('wal_level') AS wal_level, "
      "(SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user) AS repl, "
      "current_setting('max_replication_slots')::int - "
      "(SELECT count(*) FROM pg_replication_slots)::int AS free_slots");
  if (!s.ok()) return s.status();
  const Value& row = (*s)[0];
  if (row["wal_level"] != "logical") {
    return Status::Failed("connection '" + a.source + "': wal_level is " +
                          row["wal_level"].get<std::string>() +
                          ", logical replication needs wal_level = logical on the source "
                          "(a server restart); nothing was done");
  }
  if (!row["repl"].get<bool>()) {
    return Status::Failed("connection '" + a.source +
                          "': the user has neither REPLICATION nor "
                          "superuser; nothing was done");
  }
  if (row["free_slots"].get<int64_t>() <
      1 + static_cast<int64_t>(std::min<size_t>(tables.size(), 2))) {
    return Status::Failed("connection '" + a.source +
                          "': not enough free replication slots "
                          "(max_replication_slots); nothing was done");
  }
  Result<Value> su = dst.Query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user");
  if (!su.ok()) return su.status();
  if (!(*su)[0]["rolsuper"].get<bool>()) {
    return Status::Failed("connection '" + a.target +
                          "': CREATE SUBSCRIPTION needs a superuser "
                          "on the target; nothing was done");
  }
  std::vector<std::string> no_identity;
  for (const auto& t : tables) {
    Result<Value> r = src.Query(
        "SELECT c.relreplident = 'f' OR (c.relreplident = 'i') OR (c.relreplident = 'd' AND "
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) AS ok "
        "FROM pg_class c WHERE c.oid = $1::regclass",
        {t.Quoted()});
    if (!r.ok()) return r.status();
    if (!r->empty() && !(*r)[0]["ok"].get<bool>()) no_identity.push_back(t.key);
  }
  if (!no_identity.empty()) {
    return Status::Failed("connection '" + a.source + "': " + Join(no_identity) + " ha" +
                          (no_identity.size() == 1 ? "s" : "ve") +
                          " no primary key or replica identity (UPDATE and DELETE could not be "
                          "replicated); nothing was done");
  }
  struct Taken {
    PgLease* lease;
    const char* sql;
    const char* what;
    const std::string* conn;
  };
  for (const Taken& t :
       {Taken{&src, "SELECT 1 FROM pg_publication WHERE pubname = $1", "publication", &a.source},
        Taken{&src, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", "replication slot",
              &a.source},
        Taken{&dst, "SELECT 1 FROM pg_subscription WHERE subname = $1", "subscription",
              &a.target}}) {
    Result<bool> e = Exists(*t.lease, t.sql, name);
    if (!e.ok()) return e.status();
    if (*e) {
      return Status::Failed("connection '" + *t.conn + "': a " + t.what + " named " + name +
                            " already exists; nothing was done");
    }
  }
  return Status::Ok();
}

Status DeferUncheckedConstraints(StepContext& ctx, PgLease& dst,
                                 const std::vector<const CopyTable*>& tables);  // below

// Creates on the target the tables it lacks: pg_dump pre-data + post-data
// of exactly those tables, each applied by psql in one transaction. `whole`
// (all: true and the target has none of the tables): the whole database's
// schema, so that what the tables use comes too: sequences their defaults
// call (owned by a column or not), types, functions, other schemas, views.
Status CreateSchema(StepContext& ctx, const ReplArgs& a, PgLease& src, PgLease& dst,
                    const std::vector<const CopyTable*>& create, bool whole) {
  if (create.empty()) return Status::Ok();
  std::vector<std::string> schemas;
  for (const CopyTable* t : whole ? std::vector<const CopyTable*>{} : create) {
    if (std::find(schemas.begin(), schemas.end(), t->name.schema) != schemas.end()) continue;
    schemas.push_back(t->name.schema);
    if (Status s = dst.Exec("CREATE SCHEMA IF NOT EXISTS " + dst.Ident(t->name.schema)); !s.ok()) {
      return s;
    }
  }
  const std::vector<std::string> psql = {
      ToolPath(a.bin_dir, "psql"), "--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1",
      "--single-transaction", "-f", "-"};
  for (const char* section : {"pre-data", "post-data"}) {
    // --no-subscriptions: the target must not subscribe to what the source
    // does (the source's own publications come, as the rest of its schema).
    std::vector<std::string> argv = {ToolPath(a.bin_dir, "pg_dump"), "--no-password",
                                     "--schema-only", "--no-subscriptions",
                                     std::string("--section=") + section};
    if (!a.owners.keep) {
      argv.push_back("--no-owner");
      argv.push_back("--no-privileges");
    }
    for (const CopyTable* t : whole ? std::vector<const CopyTable*>{} : create) {
      argv.push_back("-t");
      argv.push_back(t->Quoted());
    }
    Result<std::string> dump = RunStepPgTool(ctx, src, argv);
    if (!dump.ok()) return dump.status();
    Result<std::string> applied = RunStepPgTool(ctx, dst, psql, *dump);
    if (!applied.ok()) return applied.status().Prefixed(std::string("applying ") + section);
  }
  return DeferUncheckedConstraints(ctx, dst, create);
}

// CHECK constraints the source holds NOT VALID (it has rows that break
// them): the initial copy would fail on those rows, so they are dropped from
// the new tables here and added back, NOT VALID, by pg.sync_unreplicated at
// the cutover (pg.compare reports them missing until then).
Status DeferUncheckedConstraints(StepContext& ctx, PgLease& dst,
                                 const std::vector<const CopyTable*>& tables) {
  std::vector<std::string> schemas, names;
  for (const CopyTable* t : tables) {
    schemas.push_back(t->name.schema);
    names.push_back(t->name.name);
  }
  Result<Value> rows = dst.Query(
      "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS "
      "drop, format('%s.%s', c.conrelid::regclass, c.conname) AS name FROM pg_constraint c "
      "JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace "
      "JOIN unnest($1::text[], $2::text[]) u(s, t) ON u.s = n.nspname AND u.t = r.relname "
      "WHERE c.contype = 'c' AND NOT c.convalidated",
      {PgTextArray(schemas), PgTextArray(names)});
  if (!rows.ok()) return rows.status();
  for (const auto& r : *rows) {
    if (Status s = dst.Exec(r["drop"].get<std::string>()); !s.ok()) return s;
    ctx.Log(LogLevel::kInfo, "CHECK constraint " + r["name"].get<std::string>() +
                                 " is NOT VALID on the source: left out until the cutover "
                                 "(pg.sync_unreplicated adds it back)");
  }
  return Status::Ok();
}

Value TableKeys(const std::vector<CopyTable>& tables) {
  Value v = Value::array();
  for (const auto& t : tables) v.push_back(t.key);
  return v;
}

class PgReplicate : public NamedPrimitive {
 public:
  PgReplicate()
      : NamedPrimitive(
            "pg.replicate",
            Schema{"Starts logical replication of tables from source to target: a publication "
                   "and a slot on the source, the missing tables' schema on the target, a "
                   "subscription on the target. Rollback drops all of it, unless the "
                   "target's tables hold rows the source does not (refused).",
                   {PgConnArg("source", "the database to replicate from (wal_level = logical)"),
                    PgConnArg("target", "the database to replicate into"),
                    Arg("tables", ArgType::kList, false, "tables (table or schema.table)"),
                    Arg("all", ArgType::kBool, false, "every table (FOR ALL TABLES)"),
                    Arg("name", ArgType::kString, false,
                        "publication, slot and subscription name (default from the run id)"),
                    Arg("copy_data", ArgType::kBool, false, "copy existing rows first (true)"),
                    Arg("source_dsn", ArgType::kString, false,
                        "how the TARGET server reaches the source, as key=value conninfo "
                        "(e.g. host=blue.db.svc port=5432); default: the address the engine "
                        "used, which a port-forward or tunnel makes unusable for the server"),
                    Arg("bin_dir", ArgType::kString, false,
                        "directory of pg_dump and psql (default: PATH)"),
                    Arg("keep_owners", ArgType::kBool, false,
                        "true: the schema keeps owners and grants (the roles must exist on the "
                        "target); false: without them; not given: refused if the source has "
                        "any")},
                   {{"tables", "all"}},
                   ""},
            MapResult({Field("publication", FieldType::kString, "the publication on the source"),
                       Field("subscription", FieldType::kString, "the subscription on the target"),
                       Field("slot", FieldType::kString, "the replication slot on the source"),
                       ListField("tables", FieldType::kString,
                                 "the tables replicated, as `tables` names them (with all: "
                                 "true, schema.table, but empty on resume after a crash)")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }

  PlanEffect Plan(const Value& args) const override {
    ReplArgs a = ReadArgs(args);
    std::string n = a.name.empty() ? "<runbook_run_step>" : a.name;
    std::string what = a.all ? "FOR ALL TABLES" : "FOR TABLE " + Join(a.tables);
    return {"CREATE PUBLICATION " + n + " " + what + " on " + a.source +
                "\nSELECT pg_create_logical_replication_slot('" + n + "', 'pgoutput') on " +
                a.source + "\npg_dump --schema-only pre-data/post-data | psql of the tables " +
                a.target + " lacks\nCREATE SUBSCRIPTION " + n + " CONNECTION '<" + a.source +
                ", password redacted>' PUBLICATION " + n +
                " WITH (create_slot = false, copy_data = " + (a.copy_data ? "true" : "false") +
                ") on " + a.target,
            UndoKind::kUndoes,
            "drop the subscription on " + a.target + ", the publication and the slot on " +
                a.source + ", and the tables the step created on " + a.target};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<Value> r = Run(ctx, args);
    if (!r.ok()) return Redacted(ctx, r.status());
    return r;
  }

  Status CheckUndo(StepContext& ctx, const Value& args, const Value& state) override;
  Status Undo(StepContext& ctx, const Value& args, const Value& state) override;
  CheckResult Check(StepContext& ctx, const Value& args, const Value& state) override;

 private:
  Result<Value> Run(StepContext& ctx, const Value& args);
};

Result<Value> PgReplicate::Run(StepContext& ctx, const Value& args) {
  ReplArgs a = ReadArgs(args);
  if (a.source == a.target) return Status::Invalid("source and target are the same connection");
  const std::string name = a.name.empty() ? ReplicationObjectName(ctx) : a.name;
  // A retry, or a resume after a crash part-way: take down what the earlier
  // attempt created (the subscription, publication, slot, tables), then start
  // over. Before this attempt leases the connections: Undo leases them too.
  if (Value previous = ctx.PreviousUndo();
      !ctx.dry_run() && previous.is_object() && previous.value("name", "") == name) {
    ctx.Log(LogLevel::kInfo,
            "removing what an earlier attempt of this step created (" + name + ")");
    if (Status s = Undo(ctx, args, previous); !s.ok()) return s;
  }
  Result<PgLease> src = LeaseConnection(ctx, a.source);
  if (!src.ok()) return src.status();
  Result<PgLease> dst = LeaseConnection(ctx, a.target);
  if (!dst.ok()) return dst.status();
  Result<std::string> id_src = DatabaseFingerprint(src->conn(), src->deadline());
  Result<std::string> id_dst = DatabaseFingerprint(dst->conn(), dst->deadline());
  if (!id_src.ok()) return id_src.status();
  if (!id_dst.ok()) return id_dst.status();
  if (*id_src == *id_dst) return Status::Invalid("source and target are the same database");
  // pg_dump and psql bring the schema: refused now if they cannot be given
  // these connections, not after the slot is made.
  if (Status s = CheckToolReach(ctx, *src); !s.ok()) return s;
  if (Status s = CheckToolReach(ctx, *dst); !s.ok()) return s;
  Result<std::vector<CopyTable>> tables =
      a.all ? AllTables(src->conn(), src->deadline())
            : ResolveTables(src->conn(), src->deadline(), a.tables, "public");
  if (!tables.ok()) return tables.status();
  if (Status s = ProbeTarget(dst->conn(), dst->deadline(), &*tables); !s.ok()) return s;
  if (Status s = Probe(a, name, *src, *dst, *tables); !s.ok()) return s;
  if (Status s = RefuseLosses(src->conn(), dst->conn(), src->deadline(), *tables, a.owners);
      !s.ok()) {
    return s;
  }
  std::vector<const CopyTable*> create;
  Value created = Value::array();
  for (const auto& t : *tables) {
    if (t.on_target) continue;
    create.push_back(&t);
    created.push_back(t.Quoted());
  }
  Value result{{"publication", name},
               {"subscription", name},
               {"slot", name},
               {"tables", TableKeys(*tables)}};
  if (ctx.dry_run()) {
    ctx.Log(LogLevel::kInfo, "would replicate " + std::to_string(tables->size()) +
                                 " tables from '" + a.source + "' to '" + a.target + "' as " +
                                 name + " (creating " + std::to_string(create.size()) +
                                 " tables on the target)");
    return result;
  }
  // What the target holds before: the undo drops whatever the step adds.
  Result<Value> before = Inventory(dst->conn(), dst->deadline());
  if (!before.ok()) return before.status();
  Value record{
      {"name", name}, {"created", created}, {"before", *before}, {"inventory", kInventoryVersion}};
  if (Status s = ctx.RecordUndo(record); !s.ok()) return s;
  // The rows of the tables it creates come from the source through the
  // subscription, not from the run's own transactions: an older undo that
  // drops the whole database (pg.create_database's) must not count them.
  std::vector<std::string> guarded;
  for (const CopyTable* t : create) guarded.push_back(t->name.Display());
  if (Status s = NoteGuardedTables(ctx, dst->conn(), dst->deadline(), guarded); !s.ok()) return s;

  std::string pub = "CREATE PUBLICATION " + src->Ident(name);
  if (a.all) {
    pub += " FOR ALL TABLES";
  } else {
    std::vector<std::string> q;
    for (const auto& t : *tables) q.push_back(t.Quoted());
    pub += " FOR TABLE " + Join(q);
  }
  if (Status s = src->Exec(pub); !s.ok()) return s;
  if (Status s = src->Exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {name});
      !s.ok()) {
    return s;
  }
  // The schema after the slot: DDL committed before the slot's consistent
  // point is in the dump. The dump carries the publication just made (with
  // the source's own ones): the target's copy of it goes at once, and the
  // record names everything the schema brought, for the undo.
  const bool whole = a.all && create.size() == tables->size();
  if (Status s = CreateSchema(ctx, a, *src, *dst, create, whole); !s.ok()) return s;
  if (Status s = dst->Exec("DROP PUBLICATION IF EXISTS " + dst->Ident(name)); !s.ok()) return s;
  Result<Value> after = Inventory(dst->conn(), dst->deadline());
  if (!after.ok()) return after.status();
  record["schema_objects"] = Created(*before, *after);
  if (Status s = ctx.RecordUndo(record); !s.ok()) return s;
  // The conninfo travels as a literal: CREATE SUBSCRIPTION takes no parameters.
  std::string conninfo = SourceConninfo(src->conn(), a.source_dsn);
  // A password libpq found itself (PGPASSWORD, ~/.pgpass) is a secret too.
  if (const char* pw = PQpass(src->conn().native()); pw && *pw) ctx.redactor().Add(pw);
  std::string sql = "CREATE SUBSCRIPTION " + dst->Ident(name) + " CONNECTION " +
                    QuoteLiteralPlain(conninfo) + " PUBLICATION " + dst->Ident(name) +
                    " WITH (create_slot = false, slot_name = " + QuoteLiteralPlain(name) +
                    ", copy_data = " + (a.copy_data ? "true" : "false") + ")";
  if (Status s = dst->Exec(sql); !s.ok()) return s.Prefixed("creating the subscription");
  ctx.Log(LogLevel::kInfo, "replicating " + Join(result["tables"].get<std::vector<std::string>>()) +
                               " from '" + a.source + "' to '" + a.target + "' as " + name);
  return result;
}

}  // namespace

std::string ReplicationConninfo(PgConnection& src, const std::string& source_dsn) {
  return SourceConninfo(src, source_dsn);
}

Status DropReplication(StepContext& ctx, const std::string& publisher,
                       const std::string& subscriber, const std::string& name) {
  std::string sub_oid;
  {
    Result<PgLease> dst = LeaseConnection(ctx, subscriber);
    if (!dst.ok()) return Redacted(ctx, dst.status());
    Result<Value> sub = dst->Query(
        "SELECT oid::text AS oid FROM pg_subscription WHERE subname = $1 "
        "AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        {name});
    if (!sub.ok()) return Redacted(ctx, sub.status());
    if (!sub->empty()) {
      sub_oid = (*sub)[0]["oid"].get<std::string>();
      // Detached from its slot, the drop never has to reach the publisher;
      // the slots are dropped there below.
      const std::string q = dst->Ident(name);
      for (const std::string& stmt :
           {"ALTER SUBSCRIPTION " + q + " DISABLE",
            "ALTER SUBSCRIPTION " + q + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + q}) {
        if (Status s = dst->Exec(stmt); !s.ok()) return Redacted(ctx, s);
      }
    }
  }
  Result<PgLease> src = LeaseConnection(ctx, publisher);
  if (!src.ok()) return Redacted(ctx, src.status());
  if (Status s = src->Exec("DROP PUBLICATION IF EXISTS " + src->Ident(name)); !s.ok()) {
    return Redacted(ctx, s);
  }
  // The slot (and table-sync slots left by an interrupted initial copy); a
  // walsender may hold one for a moment after the subscription is gone.
  const std::string slots =
      "SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name = $1 OR "
      "($2 <> '' AND slot_name LIKE 'pg\\_' || $2 || '\\_sync\\_%')";
  for (int attempt = 0;; ++attempt) {
    Result<Value> left = src->Query(slots, {name, sub_oid});
    if (!left.ok()) return Redacted(ctx, left.status());
    if (left->empty()) break;
    bool busy = false;
    for (const auto& slot : *left) {
      if (!slot["active_pid"].is_null()) {
        busy = true;
        if (attempt >= 25) {
          src->Exec("SELECT pg_terminate_backend($1::int)", {slot["active_pid"].dump()});
        }
        continue;
      }
      Status s =
          src->Exec("SELECT pg_drop_replication_slot($1)", {slot["slot_name"].get<std::string>()});
      if (!s.ok()) busy = true;  // taken again in between: next round
    }
    if (busy && attempt >= 50) {
      return Status::Failed("connection '" + publisher + "': replication slot " + name +
                            " is still in use");
    }
    if (busy) ctx.clock().Sleep(Millis(200));
  }
  return Status::Ok();
}

namespace {

// The undo drops the tables the step created on the target. Their rows come
// from the source through the subscription until someone else writes there
// (an application switched to the target): then dropping them loses those
// writes. After a proven reverse cutover (a horizon on the target) the rows
// younger than it are checked; before, the tables are compared with the
// source (rows and checksums) once the subscription has caught up.
Status PgReplicate::CheckUndo(StepContext& ctx, const Value& args, const Value& state) {
  if (!state.is_object() || !state.contains("name") || !state.contains("created")) {
    return Status::Ok();
  }
  std::vector<TableName> names;
  for (const auto& t : state["created"]) {
    Result<TableName> n = ParseTableName(t.get<std::string>(), "public");
    if (n.ok()) names.push_back(*n);
  }
  if (names.empty()) return Status::Ok();
  const std::string source = StrArg(args, "source"), target = StrArg(args, "target");
  const std::string name = state["name"].get<std::string>();
  Result<PgLease> dst = LeaseConnection(ctx, target);
  if (!dst.ok()) return Redacted(ctx, dst.status());
  Result<bool> horizon = HasHorizon(ctx, dst->conn(), dst->deadline());
  if (!horizon.ok()) return horizon.status();
  if (*horizon) {
    Result<std::vector<ForeignRows>> f =
        FindForeignRows(ctx, dst->conn(), dst->deadline(), "", &names);
    if (!f.ok()) return f.status();
    if (f->empty()) return Status::Ok();
    return Status::Failed("tables pg.replicate created on '" + target +
                          "' hold rows written since the reverse cutover: " +
                          DescribeForeignRows(*f) + "; dropping them would lose those rows");
  }
  Result<PgLease> src = LeaseConnection(ctx, source);
  if (!src.ok()) return Redacted(ctx, src.status());
  Result<Value> sub =
      dst->Query("SELECT subenabled FROM pg_subscription WHERE subname = $1", {name});
  if (!sub.ok()) return sub.status();
  std::string lag;
  if (!sub->empty() && (*sub)[0]["subenabled"].get<bool>()) {
    // What the source committed before now reaches the target first.
    Result<Value> caught =
        WaitCaughtUp(ctx, *src, *dst, name, 0, ctx.clock().Steady() + std::chrono::seconds(30));
    if (!caught.ok()) lag = " (" + caught.status().message() + ")";
  }
  std::vector<TableCount> s, d;
  for (const auto& n : names) s.push_back(TableCount{n.Display(), n, true, 0, "", ""});
  d = s;
  if (Status st = CountTables(src->conn(), src->deadline(), &s, true); !st.ok()) return st;
  if (Status st = CountTables(dst->conn(), dst->deadline(), &d, true); !st.ok()) return st;
  std::string differ;
  int listed = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    if (!d[i].exists || d[i].rows == 0) continue;  // nothing to lose there
    if (s[i].exists && s[i].rows == d[i].rows && s[i].digest == d[i].digest) continue;
    if (listed++ < 10) {
      differ += (differ.empty() ? "" : ", ") + d[i].key + " (" + std::to_string(d[i].rows) +
                " rows on '" + target + "', " +
                (s[i].exists ? std::to_string(s[i].rows) : std::string("none")) + " on '" +
                source + "')";
    }
  }
  if (differ.empty()) return Status::Ok();
  return Status::Failed("tables pg.replicate created on '" + target + "' differ from '" + source +
                        "'" + (lag.empty() ? " after the subscription caught up" : lag) + ": " +
                        differ +
                        ". Someone wrote to '" + target + "' (an application switched to it), "
                        "or '" + source + "' still takes writes: stop them and roll back "
                        "again; dropping the tables now could lose rows");
}

Status PgReplicate::Undo(StepContext& ctx, const Value& args, const Value& state) {
  if (!state.is_object() || !state.contains("name")) return Status::Ok();  // never acted
  const std::string name = state["name"].get<std::string>();
  Status dropped = DropReplication(ctx, StrArg(args, "source"), StrArg(args, "target"), name);
  if (!dropped.ok()) return dropped;
  Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
  if (!dst.ok()) return Redacted(ctx, dst.status());
  std::vector<std::string> tables;
  for (const auto& t : state.value("created", Value::array()))
    tables.push_back(t.get<std::string>());
  if (state.contains("schema_objects")) {
    // What the step's schema brought to the target: tables, and with a
    // whole schema also sequences, types, functions, views, schemas, ...;
    // not what others made there since.
    if (Status s = DropObjects(dst->conn(), dst->deadline(), state["schema_objects"]); !s.ok()) {
      return Redacted(ctx, s);
    }
  } else if (state.contains("before")) {
    // Killed while the schema was applied: whatever is new since.
    Result<Value> now = Inventory(dst->conn(), dst->deadline(), InventoryVersion(state));
    if (!now.ok()) return Redacted(ctx, now.status());
    if (Status s = DropObjects(dst->conn(), dst->deadline(), Created(state["before"], *now));
        !s.ok()) {
      return Redacted(ctx, s);
    }
  } else if (!tables.empty()) {  // a record of an older version
    if (Status s = dst->Exec("DROP TABLE IF EXISTS " + Join(tables) + " CASCADE"); !s.ok()) {
      return Redacted(ctx, s);
    }
  }
  ctx.Log(LogLevel::kInfo, "dropped subscription, publication and slot " + name + " and " +
                               std::to_string(tables.size()) + " tables the step created");
  return Status::Ok();
}

CheckResult PgReplicate::Check(StepContext& ctx, const Value& args, const Value& state) {
  // The undo record is written before anything is created: without one,
  // the step had not acted yet.
  if (!state.is_object() || !state.contains("name")) return {CheckOutcome::kNotDone, nullptr};
  Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
  if (!dst.ok()) return {};
  const std::string name = state["name"].get<std::string>();
  Result<Value> r = dst->Query("SELECT subenabled FROM pg_subscription WHERE subname = $1", {name});
  if (!r.ok()) return {};
  if (r->empty() || !(*r)[0]["subenabled"].get<bool>()) return {CheckOutcome::kNotDone, nullptr};
  Value tables = Value::array();
  for (const auto& t : StrListArg(args, "tables")) tables.push_back(t);
  return {CheckOutcome::kDone,
          Value{{"publication", name}, {"subscription", name}, {"slot", name}, {"tables", tables}}};
}

}  // namespace

void AddPgReplicatePrimitives(Registry* r) {
  r->Add(std::make_unique<PgReplicate>());
  AddPgCatchUpPrimitives(r);
}

}  // namespace runbook
