// pg.lint: a migration checked before it runs (seed 002: a schema change the
// running application could not live with). The rules are in pg_lint.cc and
// docs/lint.md; this file reads the migration and asks the live database
// what the rules need to know.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "bindings/postgres/pg_lint.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_value.h"

namespace runbook {
namespace {

// Each file, or each *.sql file of a directory in name order.
Result<std::vector<LintSource>> ReadSources(const Value& args) {
  std::vector<LintSource> out;
  if (args.contains("sql") && args["sql"].is_string()) {
    out.push_back({"sql", args["sql"].get<std::string>()});
    return out;
  }
  namespace fs = std::filesystem;
  for (const auto& path : StrListArg(args, "files")) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      for (const auto& e : fs::directory_iterator(path, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".sql") files.push_back(e.path());
      }
      if (ec) return Status::Invalid("pg.lint: cannot list " + path + ": " + ec.message());
      std::sort(files.begin(), files.end());
      if (files.empty()) return Status::Invalid("pg.lint: no *.sql file in " + path);
    } else {
      files.push_back(path);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) {
        return Status::Invalid("pg.lint: cannot read " + f.string() + ": " + std::strerror(errno));
      }
      std::ostringstream text;
      text << in.rdbuf();
      out.push_back({f.string(), text.str()});
    }
  }
  if (out.empty()) return Status::Invalid("pg.lint: give `sql` or `files`");
  return out;
}

Result<LintOptions> OptionsOf(const Value& args) {
  LintOptions o;
  o.transaction = BoolArg(args, "transaction", true);
  o.default_schema = StrArg(args, "schema", "public");
  Result<int64_t> small = SizeArg(args, "small_table", o.small_table);
  if (!small.ok()) return small.status();
  o.small_table = *small;
  if (args.contains("uses") && args["uses"].is_object()) {
    for (const auto& [table, columns] : args["uses"].items()) {
      Result<TableName> t = ParseTableName(table, o.default_schema);
      if (!t.ok()) return t.status();
      auto& cols = o.uses[LintTableKey(t->schema, t->name, o.default_schema)];
      for (const auto& c : StrListArg(Value{{"c", columns}}, "c")) cols.insert(FoldIdent(c));
    }
  }
  if (args.contains("ignore") && args["ignore"].is_array()) {
    for (const auto& ig : args["ignore"]) {
      LintIgnore one{StrArg(ig, "rule"), "", StrArg(ig, "reason")};
      bool known = std::any_of(LintRules().begin(), LintRules().end(),
                               [&](const LintRule& r) { return one.rule == r.id; });
      if (!known) {
        return Status::Invalid("pg.lint: ignore: no rule named '" + one.rule +
                               "' (the rules: docs/lint.md)");
      }
      if (one.reason.empty()) {
        return Status::Invalid("pg.lint: ignore of '" + one.rule + "' needs a reason");
      }
      if (!StrArg(ig, "table").empty()) {
        Result<TableName> t = ParseTableName(StrArg(ig, "table"), o.default_schema);
        if (!t.ok()) return t.status();
        one.table = LintTableKey(t->schema, t->name, o.default_schema);
      }
      o.ignores.push_back(std::move(one));
    }
  }
  return o;
}

// "CHECK ((col IS NOT NULL))" as pg_get_constraintdef prints it -> col.
std::string NotNullCheckColumn(const std::string& def) {
  static const std::regex re(R"(^CHECK \(\(("(?:[^"]|"")+"|[^ ()]+) IS NOT NULL\)\)$)");
  std::smatch m;
  return std::regex_match(def, m, re) ? FoldIdent(m[1].str()) : "";
}

Result<LintFacts> ReadFacts(PgLease& lease, const ParsedMigration& m) {
  LintFacts facts;
  facts.connected = true;
  std::vector<std::string> keys, schemas, names;
  for (const auto& [key, parts] : m.tables) {
    keys.push_back(key);
    schemas.push_back(parts.first);
    names.push_back(parts.second);
  }
  if (!keys.empty()) {
    // A partitioned table's size is its partitions' (pg_partition_tree, 12+).
    Result<Value> rows = lease.Query(
        "SELECT u.i, c.oid IS NOT NULL AS found, coalesce(CASE WHEN c.relkind = 'p' THEN "
        "(SELECT sum(pg_total_relation_size(p.relid)) FROM pg_partition_tree(c.oid) p) "
        "ELSE pg_total_relation_size(c.oid) END, 0)::bigint AS bytes, "
        "coalesce(CASE WHEN c.relkind = 'p' THEN "
        "(SELECT sum(pg_relation_size(p.relid)) FROM pg_partition_tree(c.oid) p) "
        "ELSE pg_relation_size(c.oid) END, 0)::bigint AS heap_bytes, "
        "coalesce((SELECT json_object_agg(a.attname, format_type(a.atttypid, a.atttypmod)) "
        "FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), "
        "'{}') AS columns, "
        "coalesce((SELECT json_agg(pg_get_constraintdef(k.oid)) FROM pg_constraint k "
        "WHERE k.conrelid = c.oid AND k.contype = 'c' AND k.convalidated), '[]') AS checks "
        "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, t, i) "
        "LEFT JOIN pg_namespace n ON n.nspname = u.s "
        "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = u.t ORDER BY u.i",
        {PgTextArray(schemas), PgTextArray(names)});
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) {
      LintTableFacts t;
      t.exists = row["found"].get<bool>();
      t.bytes = row["bytes"].get<int64_t>();
      t.heap_bytes = row["heap_bytes"].get<int64_t>();
      if (row["columns"].is_object()) {
        for (const auto& [col, type] : row["columns"].items()) {
          t.column_types[col] = type.get<std::string>();
        }
      }
      for (const auto& def : row["checks"]) {
        std::string col = def.is_string() ? NotNullCheckColumn(def.get<std::string>()) : "";
        if (!col.empty()) t.not_null_checked.insert(col);
      }
      facts.tables[keys[row["i"].get<size_t>() - 1]] = std::move(t);
    }
  }
  if (!m.types.empty()) {
    Result<Value> rows = lease.Query(
        "SELECT t.typname::text AS name FROM pg_type t WHERE t.typtype = 'd' "
        "AND t.typname = ANY($1::text[]) "
        "AND EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c')",
        {PgTextArray(std::vector<std::string>(m.types.begin(), m.types.end()))});
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) facts.constrained_domains.insert(row["name"].get<std::string>());
  }
  if (!m.functions.empty()) {
    std::vector<std::string> fns(m.functions.begin(), m.functions.end());
    Result<Value> rows = lease.Query(
        "SELECT proname::text AS name, bool_or(provolatile = 'v') AS volatile FROM pg_proc "
        "WHERE proname = ANY($1::text[]) GROUP BY 1",
        {PgTextArray(fns)});
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) {
      facts.volatile_functions[row["name"].get<std::string>()] = row["volatile"].get<bool>();
    }
  }
  return facts;
}

std::string Where(const LintFinding& f) {
  return f.file + ":" + std::to_string(f.line) + ":" + std::to_string(f.col);
}

class PgLint : public NamedPrimitive {
 public:
  PgLint()
      : NamedPrimitive(
            "pg.lint",
            Schema{"Checks migration SQL before it runs: statements that would hold a long "
                   "exclusive lock or rewrite a table, that break the running application "
                   "(`uses`), or that cannot run in a transaction. Errors fail the step, "
                   "warnings are reported; `-- runbook:ignore RULE reason` in front of a "
                   "statement ignores one. The rules, with examples: docs/lint.md.",
                   {OptionalConn(), Arg("sql", ArgType::kString, false, "the migration SQL"),
                    Arg("files", ArgType::kAny, false,
                        "migration file(s), or directories of *.sql files (in name order)"),
                    Arg("uses", ArgType::kMap, false,
                        "{table: [columns]} the running application reads (an empty list: "
                        "every column)"),
                    Arg("transaction", ArgType::kBool, false,
                        "the migration will run in one transaction (true)"),
                    Arg("small_table", ArgType::kSize, false,
                        "a lock on a table at most this large is only a warning (1MB)"),
                    Arg("schema", ArgType::kString, false, "schema of unqualified names (public)"),
                    Arg("ignore", ArgType::kList, false,
                        "[{rule, reason, table}] findings to ignore, each with its reason"),
                    Arg("fail_on", ArgType::kString, false,
                        "what fails the step: error (default), warning or never",
                        {"error", "warning", "never"})},
                   {{"sql", "files"}},
                   ""},
            MapResult(
                {Field("statements", FieldType::kInt, "statements read"),
                 Field("errors", FieldType::kInt, "error findings not ignored"),
                 Field("warnings", FieldType::kInt, "warning findings not ignored"),
                 Field("ignored", FieldType::kInt, "findings ignored"),
                 ListOfMaps(
                     "findings", "every finding, ignored ones too, in the order of the statements",
                     {Field("rule", FieldType::kString, "the rule's id (docs/lint.md)"),
                      Field("severity", FieldType::kString, "error or warning"),
                      Field("file", FieldType::kString, "the file, or sql for inline SQL"),
                      Field("line", FieldType::kInt,
                            "line of the statement's first token (1-based)"),
                      Field("col", FieldType::kInt,
                            "column of the statement's first token (1-based)"),
                      Optional(Field("table", FieldType::kString,
                                     "schema.name of the table or view it concerns; null if none")),
                      Field("message", FieldType::kString, "what it found"),
                      Field("statement", FieldType::kString,
                            "the statement on one line, shortened; empty when no table is at "
                            "stake (it may hold a password)"),
                      Field("ignored", FieldType::kBool,
                            "ignored by `ignore` or a runbook:ignore comment"),
                      Optional(Field("reason", FieldType::kString,
                                     "why it is ignored; null unless ignored"))})})) {}

  static ArgSpec OptionalConn() {
    ArgSpec a = PgConnArg("conn", "the database the migration will run on (sizes, types, checks)");
    a.required = false;
    return a;
  }

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    std::string what = args.contains("sql")
                           ? "the migration SQL"
                           : "the migration files " + Value(StrListArg(args, "files")).dump();
    std::string against =
        StrArg(args, "conn").empty() ? "" : " against the tables of " + StrArg(args, "conn");
    return ChangesNothing("lint " + what + against, "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<std::vector<LintSource>> sources = ReadSources(args);
    if (!sources.ok()) return sources.status();
    Result<LintOptions> options = OptionsOf(args);
    if (!options.ok()) return options.status();
    ParsedMigration migration = ParseMigration(*sources, options->default_schema);
    LintFacts facts;
    if (!StrArg(args, "conn").empty()) {
      Result<PgLease> lease = LeaseConnection(ctx, StrArg(args, "conn"));
      if (!lease.ok()) return lease.status();
      Result<LintFacts> read = ReadFacts(*lease, migration);
      if (!read.ok()) return read.status();
      facts = std::move(*read);
    }
    std::vector<LintFinding> findings = LintMigration(migration, facts, *options);

    const std::string fail_on = StrArg(args, "fail_on", "error");
    int64_t errors = 0, warnings = 0, ignored = 0;
    Value list = Value::array();
    Table table{"Migration lint", {"Where", "Severity", "Rule", "Finding"}, {}};
    std::vector<std::string> failing;
    for (const auto& f : findings) {
      std::string severity = f.ignored ? "ignored" : f.severity;
      (f.ignored ? ignored : f.severity == "error" ? errors : warnings) += 1;
      std::string line = Where(f) + ": " + severity + " [" + f.rule + "] " + f.message +
                         (f.ignored ? " (ignored: " + f.reason + ")" : "");
      ctx.Log(f.ignored ? LogLevel::kInfo : LogLevel::kWarn, line);
      table.rows.push_back({Where(f), severity, f.rule,
                            f.message + (f.ignored ? " (ignored: " + f.reason + ")" : "")});
      bool fails =
          !f.ignored && ((fail_on == "error" && f.severity == "error") || fail_on == "warning");
      if (fails) failing.push_back(Where(f) + " [" + f.rule + "] " + f.message);
      list.push_back(Value{{"rule", f.rule},
                           {"severity", f.severity},
                           {"file", f.file},
                           {"line", f.line},
                           {"col", f.col},
                           {"table", f.table.empty() ? Value() : Value(f.table)},
                           {"message", f.message},
                           {"statement", f.statement},
                           {"ignored", f.ignored},
                           {"reason", f.ignored ? Value(f.reason) : Value()}});
    }
    if (!findings.empty()) ctx.AddTable(table);
    if (!failing.empty()) {
      std::string text;
      for (size_t i = 0; i < failing.size() && i < 10; ++i) text += (i ? "; " : " ") + failing[i];
      if (failing.size() > 10) text += "; and " + std::to_string(failing.size() - 10) + " more";
      return Status::Failed("pg.lint: " + std::to_string(failing.size()) +
                            " finding(s) block this migration:" + text +
                            " (an intended one: `-- runbook:ignore RULE reason` in front of "
                            "the statement; the rules: docs/lint.md)");
    }
    return Value{{"statements", migration.statements.size()},
                 {"errors", errors},
                 {"warnings", warnings},
                 {"ignored", ignored},
                 {"findings", list}};
  }
};

}  // namespace

void AddPgLintPrimitives(Registry* r) { r->Add(std::make_unique<PgLint>()); }

}  // namespace runbook
