// pg.collation_status and pg.refresh_collation: seed 000's incident (a stale
// collation version on template1 after an OS upgrade) found and fixed as
// steps.
#include <memory>

#include "bindings/postgres/pg_collation.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {
namespace {

// One database: its versions and, when we could look inside, what in it
// depends on a stale version.
struct DbWork {
  DbCollation db;
  std::shared_ptr<PgConnection> conn;  // to this database; null when not connectable
  std::vector<CollationObject> objects;
  std::vector<CollationIndex> indexes;
  std::string note;
  bool Pending() const { return db.mismatch || !objects.empty(); }
};

// Looks at `selected` databases (empty: all). With `with_indexes`, also
// lists the indexes a refresh must rebuild.
// A database we may not connect to fails the call unless `tolerant` (status
// reports it instead).
Result<std::vector<DbWork>> Discover(StepContext& ctx, PgLease& lease,
                                     const std::vector<std::string>& selected, bool with_indexes,
                                     bool tolerant = false) {
  Result<std::vector<DbCollation>> dbs = ListDatabaseCollations(lease.conn(), lease.deadline());
  if (!dbs.ok()) return dbs.status();
  for (const auto& name : selected) {
    bool found = false;
    for (const auto& d : *dbs) found = found || d.name == name;
    if (!found) return Status::Failed("connection '" + lease.name() + "': no database '" + name +
                                      "'");
  }
  std::vector<DbWork> out;
  for (const auto& d : *dbs) {
    if (!selected.empty() && std::find(selected.begin(), selected.end(), d.name) == selected.end()) {
      continue;
    }
    DbWork w;
    w.db = d;
    if (!d.allows_connections) {
      w.note = "does not accept connections: its collation objects and indexes were not checked "
               "(template0 holds only system catalogs)";
      out.push_back(std::move(w));
      continue;
    }
    Result<std::unique_ptr<PgConnection>> conn = ConnectToDatabase(ctx, lease.name(), d.name);
    if (!conn.ok() && tolerant) {
      w.note = "not checked inside: " + conn.status().message();
      out.push_back(std::move(w));
      continue;
    }
    if (!conn.ok()) return conn.status();
    w.conn = std::move(*conn);
    Result<std::vector<CollationObject>> objects = MismatchedCollations(*w.conn, lease.deadline());
    if (!objects.ok()) return objects.status();
    w.objects = std::move(*objects);
    if (with_indexes && w.Pending()) {
      std::vector<int64_t> oids;
      for (const auto& o : w.objects) oids.push_back(o.oid);
      auto indexes = IndexesUsingCollations(*w.conn, lease.deadline(),
                                            d.mismatch && d.versioned, oids);
      if (!indexes.ok()) return indexes.status();
      w.indexes = std::move(*indexes);
    }
    if (d.mismatch && !d.versioned) {
      w.note = "its locale (" + d.collate + ") sorts by code point: only the recorded version "
               "is refreshed, no index depends on a changed order";
    }
    out.push_back(std::move(w));
  }
  return out;
}

std::vector<std::string> SelectedDatabases(const Value& args) {
  if (!args.contains("databases") || args["databases"].is_string()) {
    std::string one = StrArg(args, "databases", "all");
    return one == "all" ? std::vector<std::string>{} : std::vector<std::string>{one};
  }
  return StrListArg(args, "databases");
}

std::string IndexName(const CollationIndex& i) { return TableName{i.schema, i.index}.Display(); }

// {databases: [ToValue(DbCollation) + note], collations: [ToValue(CollationObject)],
// mismatched, note}
FieldSpec StatusResult() {
  using T = FieldType;
  return MapResult(
      {ListOfMaps(
           "databases", "one per database of the server, template0 and template1 included",
           {Field("database", T::kString, "its name"),
            Field("collate", T::kString, "its LC_COLLATE (datcollate)"),
            Field("ctype", T::kString, "its LC_CTYPE (datctype)"),
            Field("provider", T::kString, "libc or icu"),
            Optional(Field("recorded_version", T::kString,
                           "the collation version recorded when it was created; null when none "
                           "(servers before PostgreSQL 15 record none)")),
            Optional(Field("actual_version", T::kString,
                           "the version the locale library reports now; null when none")),
            Field("mismatch", T::kBool, "a version is recorded and it is not the actual one"),
            Field("is_template", T::kBool, "a template database (datistemplate)"),
            Field("allows_connections", T::kBool, "accepts connections (datallowconn)"),
            Optional(Field("note", T::kString,
                           "why its collation objects were not checked, or that its locale "
                           "sorts by code point"))}),
       ListOfMaps(
           "collations",
           "collation objects, in the databases checked inside, whose recorded version "
           "is not the actual one",
           {Field("database", T::kString, "the database it is in"),
            Field("schema", T::kString, "its schema"), Field("collation", T::kString, "its name"),
            Field("recorded_version", T::kString, "the version recorded (collversion)"),
            Optional(Field("actual_version", T::kString,
                           "the version the locale library reports now; null when none"))}),
       Field("mismatched", T::kInt,
             "databases plus collation objects with a mismatch; in a rehearsal, without those "
             "an earlier rehearsed step would refresh"),
       Optional(Field("would_be_refreshed", T::kInt,
                      "only in a rehearsal, when an earlier rehearsed pg.refresh_collation would "
                      "refresh some: the mismatches it would fix (not in mismatched)")),
       Field("note", T::kString, "what a mismatch means and how it is fixed")});
}

// A real run: one entry per database refreshed; a rehearsal: one per
// database that would be, with would_* fields instead.
FieldSpec RefreshResult() {
  using T = FieldType;
  return MapResult(
      {ListOfMaps(
           "databases",
           "one per database that had a stale version (in a rehearsal: that has one); empty "
           "when none had",
           {Field("database", T::kString, "its name"),
            Optional(ListField("reindexed", T::kString,
                               "indexes rebuilt (schema.index); absent in a rehearsal")),
            Optional(ListField("collations_refreshed", T::kString,
                               "collation objects refreshed (schema.name); absent in a "
                               "rehearsal")),
            Optional(Field("database_refreshed", T::kBool,
                           "its own recorded version was refreshed; absent in a rehearsal")),
            Optional(Field("from", T::kString,
                           "its recorded version before; null when none, absent in a rehearsal")),
            Optional(Field("to", T::kString,
                           "its recorded version now; null when none, absent in a rehearsal")),
            Optional(ListField("would_reindex", T::kString,
                               "indexes a real run would rebuild (schema.index); only in a "
                               "rehearsal")),
            Optional(ListField("would_refresh_collations", T::kString,
                               "collation objects a real run would refresh (schema.name); only "
                               "in a rehearsal")),
            Optional(Field("would_refresh_database", T::kBool,
                           "a real run would refresh its own recorded version; only in a "
                           "rehearsal")),
            Optional(Field("note", T::kString,
                           "why its collation objects were not checked, or that its locale "
                           "sorts by code point"))}),
       Field("refreshed", T::kInt, "databases refreshed (0 in a rehearsal)"),
       Optional(Field("rehearsal", T::kString, "only in a rehearsal: nothing was changed"))});
}

class PgCollationStatus : public NamedPrimitive {
 public:
  PgCollationStatus()
      : NamedPrimitive("pg.collation_status",
                       Schema{"Recorded vs actual collation versions of every database and of the "
                              "collation objects inside them.",
                              {PgConnArg("conn", "a connection to the server")},
                              {},
                              ""},
                       StatusResult()) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing(
        "SELECT datname, datcollate, datcollversion, pg_database_collation_actual_version(oid) "
        "FROM pg_database; and in each database: SELECT collname, collversion, "
        "pg_collation_actual_version(oid) FROM pg_collation",
        "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    Result<std::vector<DbWork>> work = Discover(ctx, *lease, {}, false, true);
    if (!work.ok()) return work.status();
    Value dbs = Value::array(), objects = Value::array();
    Table t{"Collation versions on " + lease->name(),
            {"Database", "Collate", "Recorded", "Actual", "Mismatch"}, {}};
    Table o{"Collations with a version mismatch on " + lease->name(),
            {"Database", "Collation", "Recorded", "Actual"}, {}};
    // A rehearsal sees the server as the run would have left it by now: what
    // an earlier rehearsed refresh would fix is reported, not counted.
    RehearsalPlan* plan = PlanOf(ctx);
    int64_t mismatched = 0, planned = 0;
    for (const auto& w : *work) {
      const std::string by = plan ? plan->StepFor(PlannedRefreshKey(
                                        lease->conn().identity(lease->deadline()), w.db.name))
                                  : "";
      const int64_t n = (w.db.mismatch ? 1 : 0) + static_cast<int64_t>(w.objects.size());
      (by.empty() ? mismatched : planned) += n;
      Value v = ToValue(w.db);
      std::string note = w.note;
      if (!by.empty() && n > 0) {
        note = "step '" + by + "' would refresh it (a rehearsal changed nothing)" +
               (note.empty() ? "" : "; " + note);
      }
      if (!note.empty()) v["note"] = note;
      dbs.push_back(v);
      const std::string mark = by.empty() ? "MISMATCH" : "MISMATCH (step " + by + " refreshes)";
      t.rows.push_back({w.db.name, w.db.collate, w.db.recorded.empty() ? "-" : w.db.recorded,
                        w.db.actual.empty() ? "-" : w.db.actual, w.db.mismatch ? mark : "ok"});
      for (const auto& c : w.objects) {
        objects.push_back(ToValue(c));
        o.rows.push_back(
            {c.database, c.schema + "." + c.name, c.recorded, c.actual.empty() ? "-" : c.actual});
      }
    }
    ctx.AddTable(t);
    if (!o.rows.empty()) ctx.AddTable(o);
    Value out{{"databases", dbs},
              {"collations", objects},
              {"mismatched", mismatched},
              {"note", kCollationNote}};
    if (planned > 0) out["would_be_refreshed"] = planned;
    return out;
  }
};

class PgRefreshCollation : public NamedPrimitive {
 public:
  PgRefreshCollation()
      : NamedPrimitive(
            "pg.refresh_collation",
            Schema{"For each database with a stale collation version (template databases "
                   "included): REINDEX the indexes whose keys use an affected collation, then "
                   "ALTER COLLATION ... REFRESH VERSION and ALTER DATABASE ... REFRESH "
                   "COLLATION VERSION.",
                   {PgConnArg("conn", "a connection to the server"),
                    Arg("databases", ArgType::kAny, false, "all (default) or a list of names"),
                    Arg("reindex", ArgType::kBool, false, "rebuild affected indexes (true)"),
                    Arg("concurrently", ArgType::kBool, false,
                        "REINDEX CONCURRENTLY (slower, does not block writes)")},
                   {},
                   ""},
            RefreshResult()) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    std::string which;
    for (const auto& d : SelectedDatabases(args)) which += (which.empty() ? "" : ", ") + d;
    which = which.empty() ? "every database" : "database(s) " + which;
    std::string text = "in " + which + " whose collation version is stale:\n";
    if (BoolArg(args, "reindex", true)) {
      text += std::string("  REINDEX INDEX ") + (BoolArg(args, "concurrently", false)
                                                     ? "CONCURRENTLY " : "") +
              "<each index with a key using an affected collation>\n";
    }
    text += "  ALTER COLLATION <each stale collation> REFRESH VERSION\n"
            "  ALTER DATABASE <db> REFRESH COLLATION VERSION";
    return Irreversible(text, "the recorded versions are overwritten");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    if (!ctx.dry_run()) {
      if (Status s = WaitForInterruptedAttempt(ctx, *lease); !s.ok()) return s;
    }
    const bool reindex = BoolArg(args, "reindex", true);
    Result<std::vector<DbWork>> work = Discover(ctx, *lease, SelectedDatabases(args), reindex);
    if (!work.ok()) return work.status();
    if (ctx.dry_run()) return Rehearse(ctx, *lease, *work);
    Value done = Value::array();
    for (auto& w : *work) {
      if (!w.Pending()) continue;
      Result<Value> r = Refresh(ctx, *lease, w, BoolArg(args, "concurrently", false));
      if (!r.ok()) return r.status();
      done.push_back(*r);
    }
    return Value{{"databases", done}, {"refreshed", done.size()}};
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value&) override {
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok() || !WaitForInterruptedAttempt(ctx, *lease).ok()) return {};
    Result<std::vector<DbWork>> work = Discover(ctx, *lease, SelectedDatabases(args), false);
    if (!work.ok()) return {};
    for (const auto& w : *work) {
      if (w.Pending()) return {CheckOutcome::kNotDone, Value()};
    }
    return {CheckOutcome::kDone, Value{{"databases", Value::array()}, {"refreshed", 0}}};
  }

 private:
  static Result<Value> Rehearse(StepContext& ctx, PgLease& lease,
                                const std::vector<DbWork>& work) {
    Value dbs = Value::array();
    std::vector<std::string> problems;
    for (const auto& w : work) {
      if (!w.Pending()) continue;
      Value reindex = Value::array(), colls = Value::array();
      for (const auto& i : w.indexes) {
        reindex.push_back(IndexName(i));
        if (!i.may_reindex) problems.push_back("may not REINDEX " + IndexName(i) + " in " +
                                               w.db.name + " (not the table's owner)");
      }
      for (const auto& c : w.objects) colls.push_back(c.schema + "." + c.name);
      if (!w.db.may_alter && (w.db.mismatch || !w.objects.empty())) {
        problems.push_back("may not refresh database " + w.db.name + " (not its owner)");
      }
      Value v{{"database", w.db.name}, {"would_reindex", reindex},
              {"would_refresh_collations", colls}, {"would_refresh_database", w.db.mismatch}};
      if (!w.note.empty()) v["note"] = w.note;
      dbs.push_back(v);
    }
    if (!problems.empty()) {
      std::string msg;
      for (const auto& p : problems) msg += (msg.empty() ? "" : "; ") + p;
      return Status::Failed("connection '" + lease.name() + "': precondition failed: " + msg);
    }
    // Later steps of this rehearsal see the run as it would be by then.
    if (RehearsalPlan* plan = PlanOf(ctx)) {
      for (const auto& w : work) {
        if (w.Pending())
          plan->Note(PlannedRefreshKey(lease.conn().identity(lease.deadline()), w.db.name),
                     ctx.step_id());
      }
    }
    return Value{{"databases", dbs}, {"refreshed", 0}, {"rehearsal", "nothing was changed"}};
  }

  // Rebuilds first: if a rebuild fails (say a unique index that the new
  // order breaks), the stale version stays recorded, so nobody is told the
  // database is fine.
  static Result<Value> Refresh(StepContext& ctx, PgLease& lease, DbWork& w, bool concurrently) {
    PgConnection& conn = w.conn ? *w.conn : lease.conn();
    const SteadyTime deadline = lease.deadline();
    Value reindexed = Value::array(), colls = Value::array();
    for (const auto& i : w.indexes) {
      std::string sql = std::string("REINDEX INDEX ") + (concurrently ? "CONCURRENTLY " : "") +
                        conn.QuoteIdent(i.schema) + "." + conn.QuoteIdent(i.index);
      Status s = conn.Exec(sql, {}, deadline);
      if (!s.ok()) {
        return s.Prefixed("database '" + w.db.name + "': " + sql +
                          " failed; its collation version was left as it was");
      }
      reindexed.push_back(IndexName(i));
      ctx.Log(LogLevel::kInfo, "reindexed " + IndexName(i) + " in " + w.db.name);
    }
    for (const auto& c : w.objects) {
      Status s = conn.Exec("ALTER COLLATION " + conn.QuoteIdent(c.schema) + "." +
                               conn.QuoteIdent(c.name) + " REFRESH VERSION", {}, deadline);
      if (!s.ok()) return s.Prefixed("database '" + w.db.name + "'");
      colls.push_back(c.schema + "." + c.name);
    }
    if (w.db.mismatch) {
      // From a connection to the database itself when there is one (a
      // database that refuses connections is altered from ours).
      Status s = conn.Exec("ALTER DATABASE " + conn.QuoteIdent(w.db.name) +
                               " REFRESH COLLATION VERSION", {}, deadline);
      if (!s.ok()) return s;
    }
    conn.TakeNotices();  // "changing version from 1.0 to 2.36": in the result instead
    Value v{{"database", w.db.name}, {"reindexed", reindexed}, {"collations_refreshed", colls},
            {"database_refreshed", w.db.mismatch},
            {"from", w.db.recorded.empty() ? Value() : Value(w.db.recorded)},
            {"to", w.db.actual.empty() ? Value() : Value(w.db.actual)}};
    if (!w.note.empty()) v["note"] = w.note;
    return v;
  }
};

}  // namespace

void AddPgCollationPrimitives(Registry* r) {
  r->Add(std::make_unique<PgCollationStatus>());
  r->Add(std::make_unique<PgRefreshCollation>());
}

}  // namespace runbook
