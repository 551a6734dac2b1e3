#include "bindings/postgres/pg_lint.h"

#include <pg_query.h>

#include <algorithm>
#include <cctype>

#include "bindings/postgres/pg_sql.h"
#include "engine/core/schema.h"
#include "engine/core/value.h"

namespace runbook {

namespace {

const char kError[] = "error";
const char kWarning[] = "warning";

}  // namespace

const std::vector<LintRule>& LintRules() {
  static const std::vector<LintRule> rules = {
      {"syntax", kError, "a statement PostgreSQL's grammar (15) cannot parse",
       "ALTER TABLE orders ADD COLUMN;", "fix the statement"},
      {"add-column-rewrite", kError,
       "ADD COLUMN that rewrites the whole table under an ACCESS EXCLUSIVE lock: a DEFAULT "
       "calling a volatile function, a serial type, GENERATED ... STORED or an identity column",
       "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();",
       "add the column without a default (or with a constant one), set the default for new "
       "rows, then backfill in batches"},
      {"add-column-not-null", kError,
       "ADD COLUMN ... NOT NULL without a DEFAULT on a table that has rows: it fails",
       "ALTER TABLE orders ADD COLUMN region text NOT NULL;",
       "add it with a constant DEFAULT, or nullable and SET NOT NULL later (see set-not-null)"},
      {"set-not-null", kError,
       "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, unless a validated "
       "CHECK (col IS NOT NULL) already proves it (PostgreSQL 12+)",
       "ALTER TABLE orders ALTER COLUMN region SET NOT NULL;",
       "ADD CONSTRAINT c CHECK (region IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; in a later "
       "migration SET NOT NULL (instant), then drop the check"},
      {"alter-column-type", kError,
       "ALTER COLUMN ... TYPE rewrites the table and its indexes under an ACCESS EXCLUSIVE lock "
       "(widening a varchar, or varchar to text, does not and is not reported)",
       "ALTER TABLE orders ALTER COLUMN amount TYPE numeric(12,2);",
       "add a new column, keep both in sync, backfill, switch the application, drop the old one "
       "(expand/contract)"},
      {"rewrite-table", kError,
       "SET LOGGED / SET UNLOGGED / SET TABLESPACE / SET ACCESS METHOD rewrite the table under "
       "an ACCESS EXCLUSIVE lock",
       "ALTER TABLE events SET LOGGED;", "do it in a maintenance window"},
      {"constraint-without-not-valid", kError,
       "ADD CONSTRAINT ... FOREIGN KEY or CHECK without NOT VALID checks every row while holding "
       "a lock that blocks writes (a foreign key locks the referenced table too)",
       "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers;",
       "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT (a weaker lock) in its own "
       "transaction"},
      {"add-unique-without-index", kError,
       "ADD PRIMARY KEY / UNIQUE / EXCLUDE builds its index under an ACCESS EXCLUSIVE lock",
       "ALTER TABLE orders ADD CONSTRAINT orders_ref_key UNIQUE (ref);",
       "CREATE UNIQUE INDEX CONCURRENTLY i ON orders (ref); then ADD CONSTRAINT ... UNIQUE USING "
       "INDEX i"},
      {"create-index-blocking", kError,
       "CREATE INDEX without CONCURRENTLY on an existing table blocks every write for the whole "
       "build",
       "CREATE INDEX orders_placed_at ON orders (placed_at);",
       "CREATE INDEX CONCURRENTLY (outside a transaction: pg.exec {transaction: false})"},
      {"reindex-blocking", kError,
       "REINDEX without CONCURRENTLY blocks writes (and reads that use the index) for the build",
       "REINDEX TABLE orders;", "REINDEX ... CONCURRENTLY (PostgreSQL 12+, outside a transaction)"},
      {"vacuum-full", kError, "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
       "VACUUM FULL orders;", "pg_repack, or plain VACUUM"},
      {"cluster", kError, "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
       "CLUSTER orders USING orders_pkey;", "pg_repack, or leave the order to the planner"},
      {"drop-column-in-use", kError, "DROP COLUMN of a column the running application reads",
       "ALTER TABLE streams DROP COLUMN live_started_at;  -- uses: {streams: [live_started_at]}",
       "expand/contract: stop reading it (roll out), then drop it in a later migration"},
      {"rename-column-in-use", kError, "RENAME COLUMN of a column the running application reads",
       "ALTER TABLE streams RENAME COLUMN live_started_at TO started_at;",
       "add the new column, keep both in sync, switch the application, then drop the old one"},
      {"drop-table-in-use", kError, "DROP of a table or view the running application reads",
       "DROP TABLE streams;", "stop reading it first (roll out), then drop it"},
      {"rename-table-in-use", kError, "RENAME of a table or view the running application reads",
       "ALTER TABLE streams RENAME TO live_streams;",
       "rename, and leave a view with the old name until the application moved"},
      {"drop-column", kWarning,
       "DROP COLUMN: the column's data is gone and a rollback cannot bring it back",
       "ALTER TABLE orders DROP COLUMN legacy_ref;", "make sure nothing reads it, keep a dump"},
      {"rename-column", kWarning,
       "RENAME COLUMN breaks every query that still names the old column",
       "ALTER TABLE orders RENAME COLUMN ref TO reference;",
       "list the columns the application reads in `uses` to have this checked"},
      {"drop-table", kWarning, "DROP TABLE / VIEW / SCHEMA: its data is gone",
       "DROP TABLE audit_2019;", "make sure nothing reads it, keep a dump"},
      {"rename-table", kWarning,
       "RENAME of a table, view or schema, or SET SCHEMA, breaks every query that names it",
       "ALTER TABLE orders RENAME TO purchases;",
       "list the tables the application reads in `uses` to have this checked"},
      {"truncate", kWarning, "TRUNCATE: every row is gone, under an ACCESS EXCLUSIVE lock",
       "TRUNCATE sessions;", "DELETE in batches if the table is in use"},
      {"drop-index-blocking", kWarning,
       "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table",
       "DROP INDEX orders_placed_at;", "DROP INDEX CONCURRENTLY (outside a transaction)"},
      {"refresh-blocking", kWarning,
       "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view until it ends",
       "REFRESH MATERIALIZED VIEW daily_totals;",
       "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)"},
      {"lock-table", kWarning, "an explicit LOCK TABLE in a migration",
       "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;", "let each statement take what it needs"},
      {"not-in-transaction", kError,
       "a statement that cannot run inside a transaction block, in a migration that runs in one "
       "(CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, CREATE/DROP DATABASE, "
       "tablespaces, ALTER SYSTEM)",
       "CREATE INDEX CONCURRENTLY orders_placed_at ON orders (placed_at);",
       "run it in its own step with pg.exec {transaction: false}"},
      {"transaction-control", kError,
       "BEGIN / COMMIT / ROLLBACK / SAVEPOINT in a migration that runs in one transaction: a "
       "COMMIT half-way makes it no longer all-or-nothing",
       "COMMIT;", "leave the transaction to the step (transaction: true)"},
      {"do-block", kWarning, "a DO block or function body: the statements inside it are not linted",
       "DO $$ ... $$;", "write the DDL as plain statements"},
      {"ignore-without-reason", kError,
       "a `-- runbook:ignore` comment without a reason, or naming no known rule",
       "-- runbook:ignore create-index-blocking\nCREATE INDEX i ON orders (a);",
       "-- runbook:ignore create-index-blocking the table is empty until release 42"},
  };
  return rules;
}

namespace {

const LintRule* FindRule(const std::string& id) {
  for (const auto& r : LintRules()) {
    if (id == r.id) return &r;
  }
  return nullptr;
}

// 1-based line and column (in characters) of byte `offset`.
void LineCol(const std::string& text, size_t offset, int* line, int* col) {
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++*line;
      *col = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++*col;
    }
  }
}

// The byte offset of the 1-based character `n` of `text` (libpg_query's
// cursorpos counts characters).
size_t ByteOfChar(const std::string& text, int n) {
  size_t i = 0;
  for (int seen = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && ++seen == n) return i;
  }
  return text.size();
}

// Skips white space and comments (nested /* */ as PostgreSQL does).
size_t SkipBlank(const std::string& s, size_t i, size_t end) {
  while (i < end) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) {
      ++i;
    } else if (s.compare(i, 2, "--") == 0) {
      while (i < end && s[i] != '\n') ++i;
    } else if (s.compare(i, 2, "/*") == 0) {
      int depth = 0;
      do {
        if (s.compare(i, 2, "/*") == 0) {
          ++depth;
          i += 2;
        } else if (s.compare(i, 2, "*/") == 0) {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      } while (i < end && depth > 0);
    } else {
      break;
    }
  }
  return i;
}

void AddStatement(const LintSource& src, size_t begin, size_t end, std::string tree,
                  std::string error, size_t error_at, ParsedMigration* out) {
  size_t first = SkipBlank(src.sql, begin, end);
  if (first >= end && error.empty()) return;  // comments only
  LintStatement st;
  st.file = src.name;
  LineCol(src.sql, error.empty() ? first : error_at, &st.line, &st.col);
  st.text = src.sql.substr(begin, end - begin);
  st.tree = std::move(tree);
  st.syntax_error = std::move(error);
  out->statements.push_back(std::move(st));
}

std::string Str(const Value& v, const char* key) {
  if (!v.is_object()) return "";
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : "";
}

bool Flag(const Value& v, const char* key) {
  if (!v.is_object()) return false;
  auto it = v.find(key);
  return it != v.end() && it->is_boolean() && it->get<bool>();
}

const Value& Get(const Value& v, const char* key) {
  static const Value null;
  if (!v.is_object()) return null;
  auto it = v.find(key);
  return it == v.end() ? null : *it;
}

// The strings of a list of {"String": {"sval": ...}} nodes.
std::vector<std::string> Strings(const Value& list) {
  std::vector<std::string> out;
  if (!list.is_array()) return out;
  for (const auto& n : list) out.push_back(Str(Get(n, "String"), "sval"));
  return out;
}

std::string RangeVarKey(const Value& rv, const std::string& default_schema) {
  return LintTableKey(Str(rv, "schemaname"), Str(rv, "relname"), default_schema);
}

std::string ListKey(const std::vector<std::string>& parts, const std::string& default_schema) {
  if (parts.empty()) return "";
  if (parts.size() == 1) return LintTableKey("", parts[0], default_schema);
  return LintTableKey(parts[parts.size() - 2], parts.back(), default_schema);
}

// Calls every FuncCall in `node` (recursively) with its lower-case name.
template <typename F>
void ForEachFuncCall(const Value& node, F&& f) {
  if (node.is_object()) {
    auto it = node.find("FuncCall");
    if (it != node.end()) {
      std::vector<std::string> name = Strings(Get(*it, "funcname"));
      if (!name.empty()) f(name.back());
    }
    for (const auto& [k, v] : node.items()) ForEachFuncCall(v, f);
  } else if (node.is_array()) {
    for (const auto& v : node) ForEachFuncCall(v, f);
  }
}

// Tables and functions each statement names, for the catalog lookup.
void CollectNames(const Value& node, const std::string& default_schema, ParsedMigration* out) {
  if (node.is_object()) {
    for (const auto& [k, v] : node.items()) {
      if ((k == "relation" || k == "pktable") && v.is_object() && v.contains("relname")) {
        std::string schema = Str(v, "schemaname");
        out->tables[RangeVarKey(v, default_schema)] = {schema.empty() ? default_schema : schema,
                                                       Str(v, "relname")};
      } else if (k == "ColumnDef") {
        for (const auto& c : Get(v, "constraints")) {
          ForEachFuncCall(Get(Get(c, "Constraint"), "raw_expr"),
                          [&](const std::string& f) { out->functions.insert(f); });
        }
      }
      CollectNames(v, default_schema, out);
    }
  } else if (node.is_array()) {
    for (const auto& v : node) CollectNames(v, default_schema, out);
  }
}

}  // namespace

std::string LintTableKey(const std::string& schema, const std::string& name,
                         const std::string& default_schema) {
  return (schema.empty() ? default_schema : schema) + "." + name;
}

ParsedMigration ParseMigration(const std::vector<LintSource>& sources,
                               const std::string& default_schema) {
  ParsedMigration out;
  for (const auto& src : sources) {
    PgQueryParseResult whole = pg_query_parse(src.sql.c_str());
    if (!whole.error) {
      Value tree = Value::parse(whole.parse_tree, nullptr, false);
      pg_query_free_parse_result(whole);
      for (const auto& raw : Get(tree, "stmts")) {
        size_t begin =
            Get(raw, "stmt_location").is_number() ? Get(raw, "stmt_location").get<size_t>() : 0;
        size_t len = Get(raw, "stmt_len").is_number() ? Get(raw, "stmt_len").get<size_t>() : 0;
        size_t end = len == 0 ? src.sql.size() : std::min(src.sql.size(), begin + len);
        CollectNames(Get(raw, "stmt"), default_schema, &out);
        AddStatement(src, begin, end, Get(raw, "stmt").dump(), "", 0, &out);
      }
      continue;
    }
    pg_query_free_parse_result(whole);
    // Something does not parse: split with the scanner and parse each
    // statement alone, so one bad statement does not hide the others.
    PgQuerySplitResult split = pg_query_split_with_scanner(src.sql.c_str());
    if (split.error) {
      size_t at = ByteOfChar(src.sql, split.error->cursorpos);
      AddStatement(src, 0, src.sql.size(), "", split.error->message, at, &out);
      pg_query_free_split_result(split);
      continue;
    }
    for (int i = 0; i < split.n_stmts; ++i) {
      size_t begin = static_cast<size_t>(split.stmts[i]->stmt_location);
      size_t len = static_cast<size_t>(split.stmts[i]->stmt_len);
      size_t end = len == 0 ? src.sql.size() : std::min(src.sql.size(), begin + len);
      // With its ';', so an error at the end reads as it would in psql.
      if (end < src.sql.size() && src.sql[end] == ';') ++end;
      std::string piece = src.sql.substr(begin, end - begin);
      PgQueryParseResult one = pg_query_parse(piece.c_str());
      if (one.error) {
        size_t at = begin + ByteOfChar(piece, one.error->cursorpos);
        AddStatement(src, begin, end, "", one.error->message, at, &out);
      } else {
        Value tree = Value::parse(one.parse_tree, nullptr, false);
        for (const auto& raw : Get(tree, "stmts")) {
          CollectNames(Get(raw, "stmt"), default_schema, &out);
          AddStatement(src, begin, end, Get(raw, "stmt").dump(), "", 0, &out);
        }
      }
      pg_query_free_parse_result(one);
    }
    pg_query_free_split_result(split);
  }
  return out;
}

namespace {

std::string OneLine(const std::string& text, size_t max_chars) {
  std::string out;
  bool space = false;
  for (size_t i = SkipBlank(text, 0, text.size()); i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += static_cast<char>(c);
  }
  while (!out.empty() && (out.back() == ';' || out.back() == ' ')) out.pop_back();
  if (out.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "...";
  }
  return out;
}

std::string HumanBytes(int64_t n) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// Parses "-- runbook:ignore rule[, rule] reason" comments of a statement.
struct CommentIgnore {
  std::vector<std::string> rules;
  std::string reason;
  std::string problem;  // "" when well-formed
};
std::vector<CommentIgnore> IgnoreComments(const std::string& text) {
  static const std::string kTag = "runbook:ignore";
  std::vector<CommentIgnore> out;
  size_t pos = 0;
  while ((pos = text.find("--", pos)) != std::string::npos) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    size_t i = SkipBlank(text, pos + 2, eol);
    if (text.compare(i, kTag.size(), kTag) == 0) {
      CommentIgnore ig;
      i += kTag.size();
      while (true) {
        while (i < eol && (text[i] == ' ' || text[i] == '\t')) ++i;
        size_t start = i;
        while (i < eol && (std::islower(static_cast<unsigned char>(text[i])) || text[i] == '-')) {
          ++i;
        }
        if (i == start) break;
        std::string rule = text.substr(start, i - start);
        if (!FindRule(rule)) {
          std::vector<std::string> ids;
          for (const auto& r : LintRules()) ids.push_back(r.id);
          std::string near = Suggest(rule, ids);
          ig.problem = "names an unknown rule '" + rule + "'" +
                       (near.empty() ? "" : " (did you mean '" + near + "'?)");
        }
        ig.rules.push_back(rule);
        while (i < eol && (text[i] == ' ' || text[i] == '\t')) ++i;
        if (i < eol && text[i] == ',') {
          ++i;
          continue;
        }
        break;
      }
      while (i < eol && (text[i] == ':' || text[i] == '-' ||
                         std::isspace(static_cast<unsigned char>(text[i])))) {
        ++i;
      }
      ig.reason = text.substr(i, eol - i);
      while (!ig.reason.empty() && std::isspace(static_cast<unsigned char>(ig.reason.back()))) {
        ig.reason.pop_back();
      }
      if (ig.rules.empty()) ig.problem = "names no rule";
      if (ig.problem.empty() && ig.reason.empty()) ig.problem = "gives no reason";
      out.push_back(std::move(ig));
    }
    pos = eol;
  }
  return out;
}

// varchar(n) -> varchar(m >= n), varchar -> text, and the same for the
// other binary-coercible widenings PostgreSQL does without a rewrite.
bool WideningWithoutRewrite(const std::string& old_type, const Value& type_name) {
  std::vector<std::string> names = Strings(Get(type_name, "names"));
  if (names.empty() || !Get(type_name, "arrayBounds").is_null()) return false;
  const std::string& to = names.back();
  const Value& mods = Get(type_name, "typmods");
  int64_t to_len = -1;
  if (mods.is_array() && mods.size() == 1) {
    const Value& ival = Get(Get(Get(mods[0], "A_Const"), "ival"), "ival");
    if (ival.is_number()) to_len = ival.get<int64_t>();
  } else if (!mods.is_null()) {
    return false;
  }
  bool from_varchar = old_type.rfind("character varying", 0) == 0;
  bool from_text = old_type == "text";
  if (to == "text") return from_varchar || from_text;
  if (to == "varchar") {
    if (!from_varchar) return false;
    if (to_len < 0) return true;
    size_t open = old_type.find('(');
    if (open == std::string::npos) return false;  // unbounded to bounded: checks rows
    return to_len >= std::stoll(old_type.substr(open + 1));
  }
  return false;
}

class Linter {
 public:
  Linter(const LintFacts& facts, const LintOptions& options) : facts_(facts), opt_(options) {}

  std::vector<LintFinding> Run(const ParsedMigration& m) {
    for (const auto& st : m.statements) {
      st_ = &st;
      size_t first = findings_.size();
      if (!st.syntax_error.empty()) {
        Report("syntax", kError, "", st.syntax_error);
      } else {
        Value tree = Value::parse(st.tree, nullptr, false);
        if (tree.is_object() && !tree.empty()) Statement(tree.begin().key(), tree.begin().value());
      }
      ApplyIgnores(first);
    }
    return std::move(findings_);
  }

 private:
  std::string Key(const Value& rv) const { return RangeVarKey(rv, opt_.default_schema); }

  const LintTableFacts* Facts(const std::string& table) const {
    auto it = facts_.tables.find(table);
    return it == facts_.tables.end() ? nullptr : &it->second;
  }

  void Report(const std::string& rule, const std::string& severity, const std::string& table,
              const std::string& message) {
    LintFinding f;
    f.rule = rule;
    f.severity = severity;
    f.file = st_->file;
    f.line = st_->line;
    f.col = st_->col;
    f.table = table;
    f.message = message;
    if (rule != "syntax") f.statement = OneLine(st_->text, 160);
    findings_.push_back(std::move(f));
  }

  // A rule about a lock or a rewrite: nothing on a table this migration
  // created, a warning on a small one, an error otherwise.
  void LockHazard(const std::string& rule, const std::string& table, const std::string& what) {
    if (created_.count(table)) return;
    const LintTableFacts* t = Facts(table);
    std::string size;
    std::string severity = kError;
    if (!facts_.connected) {
      size = "its size is unknown (no connection)";
    } else if (!t || !t->exists) {
      size = "it does not exist in the database now";
    } else {
      size = "it is " + HumanBytes(t->bytes);
      if (t->bytes <= opt_.small_table) {
        severity = kWarning;
        size += ", small enough that the lock is short";
      }
    }
    Report(rule, severity, table, what + " on " + table + " (" + size + ")");
  }

  void InUse(const std::string& rule, const std::string& table, const std::string& column,
             const std::string& what) {
    auto it = opt_.uses.find(table);
    // A table listed without columns: the application reads all of them.
    bool used = it != opt_.uses.end() &&
                (column.empty() || it->second.empty() || it->second.count(column) > 0);
    if (used) {
      Report(rule + "-in-use", kError, table,
             what + ": the running application reads " +
                 (column.empty() ? table : table + "." + column));
    } else {
      Report(rule, kWarning, table, what);
    }
  }

  // DROP / RENAME SCHEMA: each table of it the application reads.
  void SchemaInUse(const std::string& rule, const std::string& schema, const std::string& what) {
    bool any = false;
    for (const auto& [table, columns] : opt_.uses) {
      if (table.compare(0, schema.size() + 1, schema + ".") != 0) continue;
      any = true;
      Report(rule + "-in-use", kError, table, what + ": the running application reads " + table);
    }
    if (!any) Report(rule, kWarning, "", what);
  }

  void NotInTransaction(const std::string& what) {
    if (opt_.transaction) {
      Report("not-in-transaction", kError, "",
             what + " cannot run inside a transaction block, and this migration runs in one");
    }
  }

  void Statement(const std::string& type, const Value& s) {
    if (type == "CreateStmt") {
      created_.insert(Key(Get(s, "relation")));
    } else if (type == "CreateTableAsStmt") {
      created_.insert(Key(Get(Get(s, "into"), "rel")));
    } else if (type == "AlterTableStmt") {
      std::string table = Key(Get(s, "relation"));
      for (const auto& c : Get(s, "cmds")) AlterTable(table, Get(c, "AlterTableCmd"));
    } else if (type == "RenameStmt") {
      Rename(s);
    } else if (type == "AlterObjectSchemaStmt") {
      const std::string kind = Str(s, "objectType");
      if (kind == "OBJECT_TABLE" || kind == "OBJECT_VIEW" || kind == "OBJECT_MATVIEW" ||
          kind == "OBJECT_FOREIGN_TABLE") {
        std::string table = Key(Get(s, "relation"));
        InUse("rename-table", table, "",
              "SET SCHEMA moves " + table + " to schema " + Str(s, "newschema"));
      }
    } else if (type == "DropStmt") {
      Drop(s);
    } else if (type == "IndexStmt") {
      std::string table = Key(Get(s, "relation"));
      if (Flag(s, "concurrent")) {
        NotInTransaction("CREATE INDEX CONCURRENTLY");
      } else {
        LockHazard("create-index-blocking", table,
                   "CREATE INDEX without CONCURRENTLY blocks writes for the whole build");
      }
    } else if (type == "ReindexStmt") {
      Reindex(s);
    } else if (type == "VacuumStmt") {
      if (!Flag(s, "is_vacuumcmd")) return;  // ANALYZE
      bool full = false;
      for (const auto& o : Get(s, "options")) full |= Str(Get(o, "DefElem"), "defname") == "full";
      NotInTransaction("VACUUM");
      if (full) {
        for (const auto& r : Get(s, "rels")) {
          LockHazard("vacuum-full", Key(Get(Get(r, "VacuumRelation"), "relation")),
                     "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock");
        }
        if (Get(s, "rels").is_null())
          Report("vacuum-full", kError, "", "VACUUM FULL of every table");
      }
    } else if (type == "ClusterStmt") {
      if (Get(s, "relation").is_null()) {
        Report("cluster", kError, "", "CLUSTER of every clustered table");
      } else {
        LockHazard("cluster", Key(Get(s, "relation")),
                   "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock");
      }
    } else if (type == "RefreshMatViewStmt") {
      if (!Flag(s, "concurrent")) {
        std::string view = Key(Get(s, "relation"));
        Report("refresh-blocking", kWarning, view,
               "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of " + view +
                   " until it ends");
      }
    } else if (type == "LockStmt") {
      for (const auto& r : Get(s, "relations")) {
        std::string table = Key(Get(r, "RangeVar"));
        Report("lock-table", kWarning, table, "explicit LOCK TABLE " + table);
      }
    } else if (type == "TruncateStmt") {
      for (const auto& r : Get(s, "relations")) {
        std::string table = Key(Get(r, "RangeVar"));
        Report("truncate", kWarning, table, "TRUNCATE removes every row of " + table);
      }
    } else if (type == "TransactionStmt") {
      if (opt_.transaction) {
        Report("transaction-control", kError, "",
               "transaction control in a migration that runs in one transaction: the step's "
               "transaction would end half-way");
      }
    } else if (type == "CreatedbStmt" || type == "DropdbStmt") {
      NotInTransaction(type == "CreatedbStmt" ? "CREATE DATABASE" : "DROP DATABASE");
    } else if (type == "CreateTableSpaceStmt" || type == "DropTableSpaceStmt") {
      NotInTransaction("CREATE/DROP TABLESPACE");
    } else if (type == "AlterSystemStmt") {
      NotInTransaction("ALTER SYSTEM");
    } else if (type == "DoStmt") {
      Report("do-block", kWarning, "", "the statements inside a DO block are not linted");
    }
  }

  void AlterTable(const std::string& table, const Value& cmd) {
    const std::string sub = Str(cmd, "subtype");
    const std::string column = Str(cmd, "name");
    const LintTableFacts* facts = Facts(table);
    if (sub == "AT_AddColumn") {
      AddColumn(table, Get(Get(cmd, "def"), "ColumnDef"));
    } else if (sub == "AT_SetNotNull") {
      if (facts && facts->not_null_checked.count(column)) return;
      LockHazard("set-not-null", table,
                 "SET NOT NULL of " + column +
                     " scans every row under an ACCESS EXCLUSIVE lock (no validated CHECK (" +
                     column + " IS NOT NULL) proves it)");
    } else if (sub == "AT_AlterColumnType") {
      const Value& def = Get(Get(cmd, "def"), "ColumnDef");
      if (facts && Get(def, "raw_default").is_null()) {
        auto it = facts->column_types.find(column);
        if (it != facts->column_types.end() &&
            WideningWithoutRewrite(it->second, Get(def, "typeName"))) {
          return;
        }
      }
      LockHazard("alter-column-type", table,
                 "ALTER COLUMN " + column +
                     " TYPE rewrites the table and its indexes under an ACCESS EXCLUSIVE lock");
    } else if (sub == "AT_SetLogged" || sub == "AT_SetUnLogged" || sub == "AT_SetTableSpace" ||
               sub == "AT_SetAccessMethod") {
      LockHazard("rewrite-table", table, "this ALTER TABLE rewrites the table");
    } else if (sub == "AT_AddConstraint") {
      AddConstraint(table, Get(Get(cmd, "def"), "Constraint"));
    } else if (sub == "AT_DropColumn") {
      InUse("drop-column", table, column,
            "DROP COLUMN " + table + "." + column + " destroys its data");
    }
  }

  void AddColumn(const std::string& table, const Value& def) {
    const std::string column = Str(def, "colname");
    std::vector<std::string> type = Strings(Get(Get(def, "typeName"), "names"));
    bool has_default = false, not_null = false;
    std::string rewrite;
    if (!type.empty() &&
        (type.back() == "serial" || type.back() == "bigserial" || type.back() == "smallserial" ||
         type.back() == "serial2" || type.back() == "serial4" || type.back() == "serial8")) {
      rewrite = "a " + type.back() + " column fills every row from its sequence";
      has_default = true;
    }
    for (const auto& c : Get(def, "constraints")) {
      const Value& k = Get(c, "Constraint");
      const std::string contype = Str(k, "contype");
      if (contype == "CONSTR_DEFAULT") {
        has_default = true;
        ForEachFuncCall(Get(k, "raw_expr"), [&](const std::string& f) {
          if (!rewrite.empty()) return;
          auto it = facts_.volatile_functions.find(f);
          if (it != facts_.volatile_functions.end() ? it->second : IsVolatileOffline(f)) {
            rewrite = "DEFAULT " + f + "() is volatile: each row gets its own value";
          }
        });
      } else if (contype == "CONSTR_GENERATED") {
        rewrite = "GENERATED ... STORED computes every row";
        has_default = true;
      } else if (contype == "CONSTR_IDENTITY") {
        rewrite = "an identity column fills every row from its sequence";
        has_default = true;
      } else if (contype == "CONSTR_NOTNULL") {
        not_null = true;
      } else if (contype == "CONSTR_PRIMARY" || contype == "CONSTR_UNIQUE") {
        LockHazard("add-unique-without-index", table,
                   "ADD COLUMN " + column +
                       " with PRIMARY KEY/UNIQUE builds an index under an "
                       "ACCESS EXCLUSIVE lock");
      }
    }
    if (!rewrite.empty()) {
      LockHazard("add-column-rewrite", table,
                 "ADD COLUMN " + column +
                     " rewrites the table under an ACCESS EXCLUSIVE lock: " + rewrite);
    }
    if (not_null && !has_default && !created_.count(table)) {
      const LintTableFacts* t = Facts(table);
      if (t && t->exists && t->heap_bytes == 0) return;  // empty table
      Report("add-column-not-null", kError, table,
             "ADD COLUMN " + column + " NOT NULL without a DEFAULT fails on " + table +
                 (t && t->exists ? ", which has rows" : " if it has rows"));
    }
  }

  // Without a connection, the volatile functions a default usually calls.
  static bool IsVolatileOffline(const std::string& f) {
    static const std::set<std::string> known = {
        "random",       "clock_timestamp",  "timeofday",          "gen_random_uuid",
        "nextval",      "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
        "txid_current", "setseed",          "gen_random_bytes",   "random_normal"};
    return known.count(f) > 0;
  }

  void AddConstraint(const std::string& table, const Value& k) {
    const std::string contype = Str(k, "contype");
    const std::string name = Str(k, "conname");
    const std::string label = name.empty() ? "" : " " + name;
    if ((contype == "CONSTR_FOREIGN" || contype == "CONSTR_CHECK") && !Flag(k, "skip_validation")) {
      std::string what = contype == "CONSTR_FOREIGN" ? "FOREIGN KEY" : "CHECK";
      LockHazard("constraint-without-not-valid", table,
                 "ADD CONSTRAINT" + label + " " + what +
                     " without NOT VALID checks every row while blocking writes");
    } else if ((contype == "CONSTR_PRIMARY" || contype == "CONSTR_UNIQUE" ||
                contype == "CONSTR_EXCLUSION") &&
               Str(k, "indexname").empty()) {
      LockHazard("add-unique-without-index", table,
                 "ADD CONSTRAINT" + label +
                     " builds its index under an ACCESS EXCLUSIVE lock (no USING INDEX)");
    }
  }

  void Rename(const Value& s) {
    const std::string type = Str(s, "renameType");
    const std::string table = Key(Get(s, "relation"));
    if (type == "OBJECT_COLUMN") {
      InUse("rename-column", table, Str(s, "subname"),
            "RENAME COLUMN " + table + "." + Str(s, "subname") + " TO " + Str(s, "newname"));
    } else if (type == "OBJECT_TABLE" || type == "OBJECT_VIEW" || type == "OBJECT_MATVIEW" ||
               type == "OBJECT_FOREIGN_TABLE") {
      InUse("rename-table", table, "", "RENAME " + table + " TO " + Str(s, "newname"));
    } else if (type == "OBJECT_SCHEMA") {
      SchemaInUse("rename-table", Str(s, "subname"),
                  "RENAME SCHEMA " + Str(s, "subname") + " TO " + Str(s, "newname") +
                      " renames every table in it");
    }
  }

  void Drop(const Value& s) {
    const std::string type = Str(s, "removeType");
    if (type == "OBJECT_INDEX") {
      if (Flag(s, "concurrent")) {
        NotInTransaction("DROP INDEX CONCURRENTLY");
      } else {
        for (const auto& o : Get(s, "objects")) {
          std::string index = ListKey(Strings(Get(Get(o, "List"), "items")), opt_.default_schema);
          Report("drop-index-blocking", kWarning, "",
                 "DROP INDEX " + index +
                     " without CONCURRENTLY takes an ACCESS EXCLUSIVE lock "
                     "on its table");
        }
      }
      return;
    }
    if (type == "OBJECT_SCHEMA") {
      for (const auto& o : Get(s, "objects")) {
        const std::string schema = Str(Get(o, "String"), "sval");
        SchemaInUse("drop-table", schema,
                    "DROP SCHEMA " + schema + " destroys every table in it" +
                        (Str(s, "behavior") == "DROP_CASCADE" ? " (CASCADE)" : ""));
      }
      return;
    }
    if (type != "OBJECT_TABLE" && type != "OBJECT_VIEW" && type != "OBJECT_MATVIEW" &&
        type != "OBJECT_FOREIGN_TABLE") {
      return;
    }
    for (const auto& o : Get(s, "objects")) {
      std::string table = ListKey(Strings(Get(Get(o, "List"), "items")), opt_.default_schema);
      if (created_.count(table)) continue;
      InUse("drop-table", table, "", "DROP " + table + " destroys its data");
    }
  }

  void Reindex(const Value& s) {
    bool concurrently = false;
    for (const auto& p : Get(s, "params")) {
      concurrently |= Str(Get(p, "DefElem"), "defname") == "concurrently";
    }
    const std::string kind = Str(s, "kind");
    bool whole = kind == "REINDEX_OBJECT_SCHEMA" || kind == "REINDEX_OBJECT_DATABASE" ||
                 kind == "REINDEX_OBJECT_SYSTEM";
    if (concurrently || whole)
      NotInTransaction(concurrently ? "REINDEX CONCURRENTLY"
                                    : "REINDEX of a "
                                      "schema or "
                                      "database");
    if (concurrently) return;
    if (whole) {
      Report("reindex-blocking", kError, "", "REINDEX without CONCURRENTLY of every index");
    } else {
      LockHazard("reindex-blocking", Key(Get(s, "relation")),
                 "REINDEX without CONCURRENTLY blocks writes for the build");
    }
  }

  void ApplyIgnores(size_t first) {
    std::vector<CommentIgnore> comments = IgnoreComments(st_->text);
    for (size_t i = first; i < findings_.size(); ++i) {
      LintFinding& f = findings_[i];
      for (const auto& c : comments) {
        if (!c.problem.empty()) continue;
        if (std::find(c.rules.begin(), c.rules.end(), f.rule) != c.rules.end()) {
          f.ignored = true;
          f.reason = c.reason;
        }
      }
      for (const auto& ig : opt_.ignores) {
        if (!f.ignored && ig.rule == f.rule && (ig.table.empty() || ig.table == f.table)) {
          f.ignored = true;
          f.reason = ig.reason;
        }
      }
    }
    for (const auto& c : comments) {
      if (!c.problem.empty()) {
        Report("ignore-without-reason", kError, "", "this runbook:ignore comment " + c.problem);
      }
    }
  }

  const LintFacts& facts_;
  const LintOptions& opt_;
  const LintStatement* st_ = nullptr;
  std::set<std::string> created_;
  std::vector<LintFinding> findings_;
};

}  // namespace

std::vector<LintFinding> LintMigration(const ParsedMigration& migration, const LintFacts& facts,
                                       const LintOptions& options) {
  return Linter(facts, options).Run(migration);
}

}  // namespace runbook
