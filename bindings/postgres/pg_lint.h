// Migration SQL checked before it runs (seed 002; squawk's rules are the
// anchor): statements that would hold a long exclusive lock or rewrite a
// table, that break the application still running on the old schema, or
// that cannot run where the migration will run them. The statements are
// parsed by PostgreSQL's own grammar (libpg_query); what the live database
// knows (sizes, column types, validated checks, function volatility) comes in
// as LintFacts, so this file has no connection and is tested offline.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/status.h"

namespace runbook {

// One rule: its id (for ignores), default severity, what it catches, an
// example that triggers it and what to write instead (docs/lint.md).
struct LintRule {
  const char* id;
  const char* severity;  // "error" or "warning"
  const char* catches;
  const char* example;
  const char* instead;
};
const std::vector<LintRule>& LintRules();

// A migration file (or the inline SQL: name "sql").
struct LintSource {
  std::string name;
  std::string sql;
};

// A parsed migration: each statement's tree and position, and the names the
// rules will ask the database about.
// A `-- runbook:ignore RULE[, RULE] reason` comment, given to the statement
// it is in front of, inside of, or at the end of the line of.
struct LintIgnoreComment {
  std::vector<std::string> rules;
  std::string reason;
  std::string problem;  // "" when well-formed
};
struct LintStatement {
  std::string file;
  int line = 0, col = 0;  // of the statement's first token (of the error), 1-based
  std::string text;       // the statement, from its first token
  std::string tree;       // libpg_query's JSON of the one statement; "" if unparsable
  std::string syntax_error;
  bool whole_rest = false;  // the error covers the rest of the file: it cannot be ignored
  std::string schema;       // where unqualified names resolve (SET search_path)
  int in_source = 1;        // statements in its file (a script runs as one implicit transaction)
  std::vector<LintIgnoreComment> ignores;
};
struct ParsedMigration {
  std::vector<LintStatement> statements;
  // By LintTableKey: {schema, name} as the catalog stores them.
  std::map<std::string, std::pair<std::string, std::string>> tables;
  std::set<std::string> functions;  // lower-case names called in column defaults
  std::set<std::string> types;      // type names of columns (the last part of the name)
};
ParsedMigration ParseMigration(const std::vector<LintSource>& sources,
                               const std::string& default_schema);

// What the live database says about a table.
struct LintTableFacts {
  bool exists = false;
  int64_t bytes = 0;                                // with indexes and TOAST
  int64_t heap_bytes = 0;                           // main fork: 0 means no rows
  std::map<std::string, std::string> column_types;  // format_type(), e.g. "character varying(20)"
  std::set<std::string> not_null_checked;  // columns with a validated CHECK (col IS NOT NULL)
};
struct LintFacts {
  bool connected = false;
  std::map<std::string, LintTableFacts> tables;    // by LintTableKey
  std::map<std::string, bool> volatile_functions;  // name -> any overload volatile
  std::set<std::string> constrained_domains;       // domains with a CHECK constraint
};

struct LintIgnore {
  std::string rule, table, reason;  // table "" = any
};
struct LintOptions {
  bool transaction = true;            // the migration runs in one transaction
  int64_t small_table = 1024 * 1024;  // a lock on a table this small is a warning
  std::string default_schema = "public";
  // Tables and columns the running application reads (an empty set: the
  // table), by LintTableKey.
  std::map<std::string, std::set<std::string>> uses;
  std::vector<LintIgnore> ignores;
};

struct LintFinding {
  std::string rule, severity;
  std::string file;
  int line = 0, col = 0;
  std::string table;  // "schema.name" or ""
  std::string message;
  std::string statement;  // the statement on one line, shortened
  bool ignored = false;
  std::string reason;  // why it is ignored
};

std::vector<LintFinding> LintMigration(const ParsedMigration& migration, const LintFacts& facts,
                                       const LintOptions& options);

// The database statements of a script, in order: CREATE DATABASE, DROP
// DATABASE [IF EXISTS], ALTER DATABASE ... RENAME TO, with the names as the
// server would take them. `only`: whether the script has no other
// statement. Unparseable SQL: none, and not only.
// An option of CREATE DATABASE: its name lowercased, as the server sees it;
// its value as text ("" for DEFAULT), and whether it was written as a number.
struct DatabaseOption {
  std::string name, value;
  bool number = false;
};

struct DatabaseStatement {
  enum class Kind { kCreate, kDrop, kRename };
  Kind kind;
  std::string name;        // the database (kRename: its old name)
  std::string new_name;    // kRename
  bool if_exists = false;  // kDrop
  bool force = false;      // kDrop: WITH (FORCE)
  std::string templ, owner;  // kCreate: TEMPLATE and OWNER, "" when not given
  // kCreate: every option as written, TEMPLATE and OWNER included.
  std::vector<DatabaseOption> options;
};
std::vector<DatabaseStatement> DatabaseStatements(const std::string& sql, bool* only);

// "schema.name" for a table named `text` ("t", "s.t", "\"T\"") or by parts.
std::string LintTableKey(const std::string& schema, const std::string& name,
                         const std::string& default_schema);

}  // namespace runbook
