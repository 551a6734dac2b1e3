// SQL text helpers of the postgres binding: names, and what a statement
// would do in a rehearsal. Pure functions, no connection.
#pragma once

#include <string>
#include <vector>

#include "engine/core/status.h"

namespace runbook {

// "name" as PQescapeIdentifier quotes it (valid UTF-8 assumed); for plan
// text, which is built without a connection.
std::string QuoteIdentPlain(const std::string& name);
// 'text' as a SQL string literal (plan text only; values travel as $n).
std::string QuoteLiteralPlain(const std::string& text);

struct TableName {
  std::string schema;  // exact catalog names
  std::string name;
  std::string Display() const;  // schema.name, quoted where needed
};

// Parses "t", "s.t", "\"Mixed\".\"Case\"" as psql and pg_dump do: unquoted
// parts are folded to lower case, quoted parts are kept exactly.
Result<TableName> ParseTableName(const std::string& text, const std::string& default_schema);

// An identifier as the catalog stores it: unquoted folded to lower case,
// "quoted" kept exactly.
std::string FoldIdent(const std::string& text);

// One statement of a script, comments and literal contents removed.
struct SqlStatement {
  std::vector<std::string> words;  // upper-cased words and identifiers, "(" kept
  std::vector<std::string> bodies;  // dollar-quoted bodies (DO blocks)
};
std::vector<SqlStatement> SplitSql(const std::string& sql);

// Why the script cannot run inside a transaction block ("" when it can):
// CREATE/DROP DATABASE, VACUUM, CREATE/DROP INDEX CONCURRENTLY, REINDEX
// CONCURRENTLY / SCHEMA / DATABASE / SYSTEM, ALTER SYSTEM, subscriptions, ...
std::string NonTransactionalReason(const std::string& sql);
// Why wrapping the script in BEGIN ... ROLLBACK would not keep it from
// acting ("" when it would): transaction control (COMMIT ends our wrapper),
// functions whose effect survives a rollback (setval, nextval,
// pg_terminate_backend, session advisory locks, dblink, ...), COPY to or
// from server files or programs.
std::string EscapesRollbackReason(const std::string& sql);

}  // namespace runbook
