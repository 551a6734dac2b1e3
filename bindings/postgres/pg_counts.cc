#include "bindings/postgres/pg_counts.h"

#include "bindings/postgres/pg_value.h"

namespace runbook {
namespace {

// Inside the counting transaction: both servers print values the same way.
constexpr const char* kPinOutput =
    "SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3; "
    "SET LOCAL bytea_output = 'hex'; SET LOCAL IntervalStyle = 'postgres'; "
    "SET LOCAL DateStyle = 'ISO, YMD'";

// The tables' schemas and names as two text[] parameters ($1, $2), for
// catalog queries that unnest them WITH ORDINALITY.
PgParams NameArrays(const std::vector<TableCount>& tables) {
  std::vector<std::string> schemas, names;
  for (const auto& t : tables) {
    schemas.push_back(t.table.schema);
    names.push_back(t.table.name);
  }
  return {PgTextArray(schemas), PgTextArray(names)};
}

// Marks which of `tables` exist and which are ordinary tables (one catalog query).
Status Classify(PgConnection& conn, SteadyTime deadline, std::vector<TableCount>* tables) {
  Result<Value> rows = conn.Query(
      "SELECT u.i, c.oid IS NOT NULL AS found, coalesce(c.relkind = 'r', false) AS own "
      "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, t, i) "
      "LEFT JOIN pg_namespace n ON n.nspname = u.s "
      "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = u.t "
      "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY u.i",
      NameArrays(*tables), deadline);
  if (!rows.ok()) return rows.status();
  for (const auto& row : *rows) {
    TableCount& t = (*tables)[row["i"].get<size_t>() - 1];
    t.exists = row["found"].get<bool>();
    t.only = row["own"].get<bool>();
  }
  return Status::Ok();
}

// The columns of each existing table, sorted by name (C collation), as the
// digest lists them; one catalog query for all tables.
Status FillColumns(PgConnection& conn, SteadyTime deadline, std::vector<TableCount>* tables) {
  Result<Value> rows = conn.Query(
      "SELECT u.i, coalesce((SELECT string_agg('rb_t.' || quote_ident(a.attname), ', ' "
      "ORDER BY a.attname COLLATE \"C\") FROM pg_attribute a WHERE a.attrelid = c.oid "
      "AND a.attnum > 0 AND NOT a.attisdropped), '') AS cols "
      "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, t, i) "
      "JOIN pg_namespace n ON n.nspname = u.s "
      "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = u.t",
      NameArrays(*tables), deadline);
  if (!rows.ok()) return rows.status();
  for (const auto& row : *rows) {
    (*tables)[row["i"].get<size_t>() - 1].columns = row["cols"].get<std::string>();
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<TableCount>> TablesFromNames(const std::vector<std::string>& names,
                                                const std::string& schema) {
  std::vector<TableCount> out;
  for (const auto& n : names) {
    Result<TableName> t = ParseTableName(n, schema);
    if (!t.ok()) return t.status();
    out.push_back(TableCount{n, *t, true, 0, ""});
  }
  if (out.empty()) return Status::Invalid("no tables given (name some in tables, or all: true)");
  return out;
}

Result<std::vector<TableCount>> ListTables(PgConnection& conn, SteadyTime deadline,
                                           const std::string& schema) {
  Result<Value> rows = conn.Query(
      "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
      "ORDER BY c.relname COLLATE \"C\"",
      {schema}, deadline);
  if (!rows.ok()) return rows.status();
  std::vector<TableCount> out;
  for (const auto& row : *rows) {
    std::string name = row["relname"].get<std::string>();
    TableName t{schema, name};
    out.push_back(TableCount{schema == "public" ? name : t.Display(), t, true, 0, ""});
  }
  return out;
}

std::string CountSql(const std::vector<TableCount>& tables, bool checksum,
                     const std::function<std::string(const std::string&)>& quote) {
  std::string sql;
  for (size_t i = 0; i < tables.size(); ++i) {
    if (!tables[i].exists) continue;
    if (!sql.empty()) sql += "\nUNION ALL ";
    sql += "SELECT " + std::to_string(i) + " AS i, count(*) AS n";
    if (checksum) {
      sql += ", coalesce(sum(hashtextextended(ROW(" + tables[i].columns + ")::text, 0)), 0) AS d";
    }
    sql += std::string(" FROM ") + (tables[i].only ? "ONLY " : "") + quote(tables[i].table.schema) +
           "." + quote(tables[i].table.name) + " AS rb_t";
  }
  return sql;
}

Status CountTables(PgConnection& conn, SteadyTime deadline, std::vector<TableCount>* tables,
                   bool checksum) {
  auto quote = [&conn](const std::string& s) { return conn.QuoteIdent(s); };
  if (Status s = Classify(conn, deadline, tables); !s.ok()) return s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string sql = CountSql(*tables, checksum, quote);
    if (sql.empty()) return Status::Ok();
    Result<Value> rows = Status::Ok();
    if (checksum) {
      Status s = conn.RunScript(std::string("BEGIN READ ONLY; ") + kPinOutput, deadline).status();
      // The columns are read in the same transaction as the rows.
      if (s.ok()) s = FillColumns(conn, deadline, tables);
      if (s.ok()) {
        sql = CountSql(*tables, checksum, quote);
        rows = conn.Query(sql, {}, deadline);
      }
      if (conn.ok() && conn.in_transaction()) conn.Exec("ROLLBACK", {}, deadline);
      if (!s.ok()) return s;
    } else {
      rows = conn.Query(sql, {}, deadline);
    }
    if (rows.ok()) {
      for (const auto& row : *rows) {
        TableCount& t = (*tables)[row["i"].get<size_t>()];
        t.rows = row["n"].get<int64_t>();
        if (checksum)
          t.digest = row["d"].is_string() ? row["d"].get<std::string>() : row["d"].dump();
      }
      return Status::Ok();
    }
    // A table (42P01) or schema (3F000) dropped since: find which, count the rest.
    const std::string& msg = rows.status().message();
    bool missing = msg.find("42P01") != std::string::npos || msg.find("3F000") != std::string::npos;
    if (!missing || attempt > 0) return rows.status();
    Status s = Classify(conn, deadline, tables);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

std::string JoinKeys(const std::vector<const TableCount*>& tables) {
  std::string out;
  for (const auto* t : tables) out += (out.empty() ? "" : ", ") + t->key;
  return out;
}

}  // namespace runbook
