// pg.sync_unreplicated: what logical replication does not carry, copied at
// the cutover (inside the write freeze, after pg.wait_caught_up): the rows of
// unlogged tables, large objects, and materialized view contents. Sequences
// have their own primitive (pg.sync_sequences); DDL made after pg.replicate
// started is not carried by anything and is caught by pg.compare.
#include "bindings/postgres/pg_copy.h"
#include "bindings/postgres/pg_copy_catalog.h"
#include "bindings/postgres/pg_copy_extras.h"
#include "bindings/postgres/pg_copy_jobs.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_replication.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_undo_guard.h"

namespace runbook {
namespace {

// The source's unlogged tables (quoted, qualified).
Result<std::vector<std::string>> UnloggedTables(PgLease& src) {
  Result<Value> rows = src.Query(
      "SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n "
      "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND "
      "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
      "ORDER BY 1");
  if (!rows.ok()) return rows.status();
  std::vector<std::string> out;
  for (const auto& r : *rows) out.push_back(r["t"].get<std::string>());
  return out;
}

// One unlogged table's rows, replaced in one target transaction.
Status CopyUnlogged(PgLease& src, PgLease& dst, const std::string& table, int64_t* rows) {
  if (Status s = dst.Exec("BEGIN"); !s.ok()) return s;
  if (Status s = dst.Exec("TRUNCATE ONLY " + table); !s.ok()) return s;
  Result<std::vector<std::string>> back = DisableTriggers(dst.conn(), dst.deadline(), table);
  if (!back.ok()) return back.status();
  CopyStats stats;
  Status s = StreamCopy(src.conn(), dst.conn(), "COPY " + table + " TO STDOUT",
                        "COPY " + table + " FROM STDIN", dst.deadline(), nullptr, {}, &stats);
  for (const auto& stmt : *back) {
    if (s.ok()) s = dst.Exec(stmt);
  }
  if (s.ok()) s = dst.Exec("COMMIT");
  if (!s.ok()) return s.Prefixed("copying unlogged table " + table);
  *rows += stats.rows;
  return Status::Ok();
}

// CHECK constraints the source holds NOT VALID and the target lacks
// (pg.replicate left them out for the initial copy): added back, NOT VALID.
Result<int64_t> AddUncheckedConstraints(PgLease& src, PgLease& dst) {
  Result<Value> cons = src.Query(
      "SELECT format('%I.%I', n.nspname, r.relname) AS t, c.conname AS name, "
      "pg_get_constraintdef(c.oid) AS def FROM pg_constraint c JOIN pg_class r ON r.oid = "
      "c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace WHERE c.contype = 'c' AND NOT "
      "c.convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2");
  if (!cons.ok()) return cons.status();
  int64_t added = 0;
  for (const auto& c : *cons) {
    const std::string table = c["t"].get<std::string>(), name = c["name"].get<std::string>();
    Result<Value> there = dst.Query(
        "SELECT to_regclass($1) IS NOT NULL AS t, EXISTS (SELECT 1 FROM pg_constraint WHERE "
        "conrelid = to_regclass($1) AND conname = $2) AS c",
        {table, name});
    if (!there.ok()) return there.status();
    if (!(*there)[0]["t"].get<bool>() || (*there)[0]["c"].get<bool>()) continue;
    Status s = dst.Exec("ALTER TABLE " + table + " ADD CONSTRAINT " + dst.Ident(name) + " " +
                        c["def"].get<std::string>());
    if (!s.ok()) return s.Prefixed("adding back constraint " + name + " of " + table);
    ++added;
  }
  return added;
}

// The carry itself (below); its writes are noted as the run's by the caller.
Result<Value> Carry(StepContext& ctx, PgLease& src, PgLease& dst, bool keep_owners) {
  Result<std::vector<std::string>> unlogged = UnloggedTables(src);
  if (!unlogged.ok()) return unlogged.status();
  Result<std::vector<MaterializedView>> views = MaterializedViews(src.conn(), src.deadline());
  if (!views.ok()) return views.status();
  LargeObjectStats lo;
  int64_t rows = 0;
  for (const auto& t : *unlogged) {
    if (Status s = CopyUnlogged(src, dst, t, &rows); !s.ok()) return s;
  }
  if (Status s = CopyLargeObjects(src.conn(), dst.conn(), dst.deadline(), keep_owners, true, &lo);
      !s.ok()) {
    return s;
  }
  Result<int64_t> refreshed = RefreshMaterializedViews(dst.conn(), dst.deadline(), *views);
  if (!refreshed.ok()) return refreshed.status();
  Result<int64_t> constraints = AddUncheckedConstraints(src, dst);
  if (!constraints.ok()) return constraints.status();
  ctx.Log(LogLevel::kInfo, "copied " + std::to_string(unlogged->size()) + " unlogged tables (" +
                               std::to_string(rows) + " rows), " + std::to_string(lo.objects) +
                               " large objects (" + HumanBytes(static_cast<double>(lo.bytes)) +
                               "), refreshed " + std::to_string(*refreshed) +
                               " materialized views");
  return Value{{"unlogged_tables", unlogged->size()},
               {"rows", rows},
               {"large_objects", lo.objects},
               {"materialized_views", *refreshed},
               {"constraints", *constraints}};
}

}  // namespace

// The rows it writes are the run's own (an undo's guard must not count them
// as someone else's): a range noted open before, closed after, whether the
// carry succeeded or not.
Result<Value> CarryUnreplicated(StepContext& ctx, PgLease& src, PgLease& dst, bool keep_owners) {
  Result<std::string> first = NextXid(dst.conn(), dst.deadline());
  if (!first.ok()) return first.status();
  if (Status s = NoteOwnXidRange(ctx, dst.conn(), dst.deadline(), *first, ""); !s.ok()) return s;
  Result<Value> out = Carry(ctx, src, dst, keep_owners);
  if (dst->in_transaction()) dst.Exec("ROLLBACK");  // a failure inside one of its transactions
  Result<std::string> end = NextXid(dst.conn(), dst.deadline());
  if (!end.ok()) return out.ok() ? Result<Value>(end.status()) : out;
  if (Status s = NoteOwnXidRange(ctx, dst.conn(), dst.deadline(), *first, *end); !s.ok()) return s;
  return out;
}

namespace {

class PgSyncUnreplicated : public NamedPrimitive {
 public:
  PgSyncUnreplicated()
      : NamedPrimitive(
            "pg.sync_unreplicated",
            Schema{"Copies what logical replication does not carry, from one snapshot of the "
                   "source: the rows of unlogged tables, large objects (same oids; those the "
                   "source no longer has are removed), and the contents of materialized views "
                   "(refreshed on the target, dependencies first). Run it at the cutover, after "
                   "pg.wait_caught_up, with the writers stopped. Rollback removes the large "
                   "objects it created.",
                   {PgConnArg("source", "the publishing database"),
                    PgConnArg("target", "the subscribing database"),
                    Arg("keep_owners", ArgType::kBool, false,
                        "large objects keep their owners and grants (the roles must exist on "
                        "the target)")},
                   {},
                   ""},
            MapResult(
                {Field("unlogged_tables", FieldType::kInt, "unlogged tables copied"),
                 Field("rows", FieldType::kInt,
                       "rows of unlogged tables copied (0 in a rehearsal)"),
                 Field("large_objects", FieldType::kInt, "large objects copied"),
                 Field("materialized_views", FieldType::kInt,
                       "materialized views refreshed (populated on the source)"),
                 Optional(Field("constraints", FieldType::kInt,
                                "NOT VALID CHECK constraints added back; absent in a rehearsal")),
                 Optional(Field("estimated", FieldType::kBool,
                                "true: counts of what a real run would copy; only in a "
                                "rehearsal"))})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    const std::string src = StrArg(args, "source"), dst = StrArg(args, "target");
    return {"from one REPEATABLE READ snapshot of " + src + ", on " + dst +
                ":\n  each unlogged table: BEGIN; TRUNCATE ONLY t; COPY t FROM STDIN; COMMIT"
                "\n  large objects: the same oids and contents, in one transaction (those " +
                dst + " has and " + src +
                " has not are removed)"
                "\n  REFRESH MATERIALIZED VIEW of those populated on " +
                src +
                ", dependencies first"
                "\n  CHECK constraints NOT VALID on " +
                src + " that " + dst + " lacks (pg.replicate leaves them out of the initial copy)",
            UndoKind::kUndoes, "lo_unlink of the large objects it created on " + dst};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<PgLease> src = LeaseConnection(ctx, StrArg(args, "source"));
    if (!src.ok()) return src.status();
    Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
    if (!dst.ok()) return dst.status();
    Status s = src->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (s.ok()) s = src->Exec("SET LOCAL row_security = off");
    Result<Value> out = s.ok() ? Sync(ctx, args, *src, *dst) : Result<Value>(s);
    if ((*src)->ok() && (*src)->in_transaction() && !src->Exec("ROLLBACK").ok()) (*src)->Close();
    return out;
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("before")) return NothingToUndo(ctx);
    Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
    if (!dst.ok()) return dst.status();
    Result<Value> now = Inventory(dst->conn(), dst->deadline());
    if (!now.ok()) return now.status();
    Value created = Value::array();
    for (const auto& o : Created(state["before"], *now)) {
      if (o["kind"] == "large object") created.push_back(o);
    }
    ctx.Log(LogLevel::kInfo, "removing " + std::to_string(created.size()) +
                                 " large objects the step created");
    return DropObjects(dst->conn(), dst->deadline(), created);
  }

 private:
  static Result<Value> Sync(StepContext& ctx, const Value& args, PgLease& src, PgLease& dst) {
    Result<std::vector<std::string>> unlogged = UnloggedTables(src);
    if (!unlogged.ok()) return unlogged.status();
    Result<std::vector<MaterializedView>> views = MaterializedViews(src.conn(), src.deadline());
    if (!views.ok()) return views.status();
    LargeObjectStats lo;
    if (Status s = ProbeLargeObjects(src.conn(), src.deadline(), &lo); !s.ok()) return s;
    int64_t populated = 0;
    for (const auto& v : *views) populated += v.populated ? 1 : 0;
    if (ctx.dry_run()) {
      ctx.Log(LogLevel::kInfo, "would copy " + std::to_string(unlogged->size()) +
                                   " unlogged tables and " + std::to_string(lo.objects) +
                                   " large objects, and refresh " + std::to_string(populated) +
                                   " materialized views");
      return Value{{"unlogged_tables", unlogged->size()},
                   {"rows", 0},
                   {"large_objects", lo.objects},
                   {"materialized_views", populated},
                   {"estimated", true}};
    }
    Result<Value> before = Inventory(dst.conn(), dst.deadline());
    if (!before.ok()) return before.status();
    // Only large objects matter to the undo; keep the record small.
    Value los = Value::array();
    for (const auto& o : *before) {
      if (o["kind"] == "large object") los.push_back(o);
    }
    if (Status s = ctx.RecordUndo(Value{{"before", los}}); !s.ok()) return s;
    return CarryUnreplicated(ctx, src, dst, BoolArg(args, "keep_owners", false));
  }
};

}  // namespace

void AddPgUnreplicatedPrimitives(Registry* r) { r->Add(std::make_unique<PgSyncUnreplicated>()); }

}  // namespace runbook
