// pg.assert_schema and pg.schema_diff: the schema gate before an application
// rolls out (seed 003: `column streams.live_started_at does not exist`).
#include <thread>

#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_schema.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_value.h"

namespace runbook {
namespace {

std::string JoinList(const std::vector<std::string>& items, size_t max_items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < max_items; ++i) {
    out += (i ? ", " : "") + items[i];
  }
  if (items.size() > max_items) out += ", and " + std::to_string(items.size() - max_items) + " more";
  return out;
}

class PgAssertSchema : public NamedPrimitive {
 public:
  PgAssertSchema()
      : NamedPrimitive(
            "pg.assert_schema",
            Schema{
                "Fails unless every listed table exists with every listed column.",
                {PgConnArg("conn", "the database"),
                 Arg("tables", ArgType::kMap, true, "{table: [columns]} (table or schema.table)"),
                 Arg("schema", ArgType::kString, false, "schema for unqualified names (public)")},
                {},
                ""},
            MapResult({Field("ok", FieldType::kBool, "always true: a missing one fails the step"),
                       Field("tables", FieldType::kInt, "tables checked"),
                       Field("columns", FieldType::kInt, "columns checked")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    std::string text = "check that these exist:";
    if (args.contains("tables") && args["tables"].is_object()) {
      for (auto it = args["tables"].begin(); it != args["tables"].end(); ++it) {
        text += "\n  " + it.key();
        if (it.value().is_array() && !it.value().empty()) {
          text += " (" + JoinList(StrListArg(Value{{"c", it.value()}}, "c"), 1000) + ")";
        }
      }
    }
    return ChangesNothing(text, "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    if (!args.contains("tables") || !args["tables"].is_object()) {
      return Status::Invalid("tables must be a map {table: [columns]}");
    }
    const Value& wanted = args["tables"];
    std::vector<std::string> schemas, names, keys;
    for (auto it = wanted.begin(); it != wanted.end(); ++it) {
      Result<TableName> t = ParseTableName(it.key(), StrArg(args, "schema", "public"));
      if (!t.ok()) return t.status();
      schemas.push_back(t->schema);
      names.push_back(t->name);
      keys.push_back(it.key());
    }
    Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
    if (!lease.ok()) return lease.status();
    Result<Value> rows = lease->Query(
        "SELECT u.i, c.oid IS NOT NULL AS found, coalesce((SELECT json_agg(a.attname::text) "
        "FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), "
        "'[]') AS columns "
        "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, t, i) "
        "LEFT JOIN pg_namespace n ON n.nspname = u.s "
        "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = u.t "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY u.i",
        {PgTextArray(schemas), PgTextArray(names)});
    if (!rows.ok()) return rows.status();
    std::vector<std::string> missing;
    int64_t columns_checked = 0;
    for (const auto& row : *rows) {
      size_t i = row["i"].get<size_t>() - 1;
      if (!row["found"].get<bool>()) {
        missing.push_back("table " + keys[i]);
        continue;
      }
      const Value& have = row["columns"];
      for (const auto& col : StrListArg(Value{{"c", wanted[keys[i]]}}, "c")) {
        ++columns_checked;
        std::string folded = FoldIdent(col);
        if (std::find(have.begin(), have.end(), Value(folded)) == have.end()) {
          missing.push_back("column " + keys[i] + "." + col);
        }
      }
    }
    if (!missing.empty()) {
      return Status::Failed("connection '" + lease->name() + "': schema check failed: missing " +
                            JoinList(missing, 50));
    }
    return Value{{"ok", true}, {"tables", keys.size()}, {"columns", columns_checked}};
  }
};

class PgSchemaDiff : public NamedPrimitive {
 public:
  PgSchemaDiff()
      : NamedPrimitive(
            "pg.schema_diff",
            Schema{"Compares two databases' schemas: tables, columns and types, "
                   "indexes, constraints, sequences, extensions.",
                   {PgConnArg("source", "the reference"), PgConnArg("target", "the copy"),
                    Arg("fail_on_diff", ArgType::kBool, false, "fail when they differ (true)")},
                   {},
                   ""},
            MapResult(
                {ListOfMaps(
                     "differences", "one per object that differs",
                     {Field("kind", FieldType::kString,
                            "table (views too), column, index, constraint, sequence or "
                            "extension"),
                      Field("object", FieldType::kString, "its qualified name, e.g. public.t.col"),
                      Optional(Field("source", FieldType::kString,
                                     "its definition on the source; null if absent there")),
                      Optional(Field("target", FieldType::kString,
                                     "its definition on the target; null if absent there"))}),
                 Field("count", FieldType::kInt, "how many differences"),
                 ListField("extension_versions", FieldType::kString,
                           "\"extension NAME: V1 vs V2\" for each extension whose version "
                           "differs (not a difference)")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing(
        "read the catalogs of " + StrArg(args, "source") + " and " + StrArg(args, "target") +
            " at the same time and compare tables, columns, indexes, constraints, "
            "sequences and extensions",
        "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string src = StrArg(args, "source"), dst = StrArg(args, "target");
    Result<std::vector<SchemaEntry>> a = Status::Ok(), b = Status::Ok();
    {
      Result<PgLease> la = LeaseConnection(ctx, src);
      if (!la.ok()) return la.status();
      if (src == dst) {
        a = SnapshotSchema(la->conn(), la->deadline());
        b = a;
      } else {
        Result<PgLease> lb = LeaseConnection(ctx, dst);
        if (!lb.ok()) return lb.status();
        std::thread other([&] { b = SnapshotSchema(lb->conn(), lb->deadline()); });
        a = SnapshotSchema(la->conn(), la->deadline());
        other.join();
      }
    }
    if (!a.ok()) return a.status();
    if (!b.ok()) return b.status();
    std::vector<std::string> notes;
    std::vector<SchemaDifference> diffs = DiffSchemas(*a, *b, &notes);
    Value list = Value::array();
    Table t{"Schema differences: " + src + " vs " + dst, {"Kind", "Object", "Source", "Target"},
            {}};
    std::vector<std::string> summary;
    for (const auto& d : diffs) {
      auto opt = [](const std::string& s) { return s.empty() ? Value() : Value(s); };
      list.push_back(Value{{"kind", d.kind}, {"object", d.object}, {"source", opt(d.source)},
                           {"target", opt(d.target)}});
      t.rows.push_back({d.kind, d.object, d.source.empty() ? "missing" : d.source,
                        d.target.empty() ? "missing" : d.target});
      summary.push_back(d.kind + " " + d.object +
                        (d.target.empty() ? " missing on target"
                                          : d.source.empty() ? " only on target" : " differs"));
    }
    ctx.AddTable(t);
    Value out{{"differences", list}, {"count", diffs.size()}, {"extension_versions", notes}};
    if (!diffs.empty() && BoolArg(args, "fail_on_diff", true)) {
      return Status::Failed(std::to_string(diffs.size()) + " schema difference(s) between '" +
                            src + "' and '" + dst + "': " + JoinList(summary, 20));
    }
    return out;
  }
};

}  // namespace

void AddPgSchemaPrimitives(Registry* r) {
  r->Add(std::make_unique<PgAssertSchema>());
  r->Add(std::make_unique<PgSchemaDiff>());
}

}  // namespace runbook
