#include "bindings/postgres/pg_collation.h"

#include "bindings/postgres/pg_value.h"

namespace runbook {

const char* const kCollationNote =
    "A database records its collation version when it is created (PostgreSQL 15 and later); a "
    "mismatch means the OS locale library changed since, so text sorts differently and indexes "
    "on text may be out of order: REINDEX them, then REFRESH COLLATION VERSION. Databases with "
    "the C or POSIX locale have no version and never mismatch. C.UTF-8 sorts by code point, "
    "which glibc does not change, and this server records no version for it; but a C.UTF-8 "
    "database created by a server or glibc build that did version it (earlier PostgreSQL "
    "releases, other distributions) keeps that recorded version while the actual one reads "
    "empty: PostgreSQL reports that as a mismatch too (\"has no actual collation version, but "
    "a version was recorded\") and CREATE DATABASE from such a template fails. It needs only "
    "REFRESH COLLATION VERSION, no reindex. template0 usually records no version; it does not "
    "accept connections, so its collation objects are not checked.";

namespace {

std::string Str(const Value& v) { return v.is_string() ? v.get<std::string>() : ""; }

bool Unversioned(const std::string& locale) {
  return locale == "C" || locale == "POSIX" || locale == "C.UTF-8" || locale == "C.utf8";
}

std::string PgInt8Array(const std::vector<int64_t>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + std::to_string(items[i]);
  return out + "}";
}

}  // namespace

Result<std::vector<DbCollation>> ListDatabaseCollations(PgConnection& conn, SteadyTime deadline) {
  const bool v15 = conn.server_version() >= 150000;
  std::string sql =
      std::string("SELECT d.datname, d.datcollate, d.datctype, ") +
      (v15 ? "d.datlocprovider::text AS provider, d.datcollversion AS recorded, "
             "pg_database_collation_actual_version(d.oid) AS actual, "
           : "'c' AS provider, NULL::text AS recorded, NULL::text AS actual, ") +
      "d.datallowconn, d.datistemplate, "
      "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
      "OR pg_has_role(current_user, d.datdba, 'MEMBER') AS may_alter "
      "FROM pg_database d ORDER BY d.datname COLLATE \"C\"";
  Result<Value> rows = conn.Query(sql, {}, deadline);
  if (!rows.ok()) return rows.status();
  std::vector<DbCollation> out;
  for (const auto& r : *rows) {
    DbCollation d;
    d.name = Str(r["datname"]);
    d.collate = Str(r["datcollate"]);
    d.ctype = Str(r["datctype"]);
    d.provider = Str(r["provider"]) == "i" ? "icu" : "libc";
    d.recorded = Str(r["recorded"]);
    d.actual = Str(r["actual"]);
    d.mismatch = !r["recorded"].is_null() && d.recorded != d.actual;
    d.versioned = d.provider == "icu" || !Unversioned(d.collate);
    d.allows_connections = r["datallowconn"].get<bool>();
    d.is_template = r["datistemplate"].get<bool>();
    d.may_alter = r["may_alter"].get<bool>();
    out.push_back(d);
  }
  return out;
}

Result<std::vector<CollationObject>> MismatchedCollations(PgConnection& conn, SteadyTime deadline) {
  std::vector<CollationObject> out;
  if (conn.server_version() < 130000) return out;  // no collation versions before 13
  Result<Value> rows = conn.Query(
      "SELECT c.oid::int8 AS oid, n.nspname, c.collname, c.collversion, "
      "pg_collation_actual_version(c.oid) AS actual "
      "FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace "
      "WHERE c.collversion IS NOT NULL AND c.collencoding IN "
      "(-1, (SELECT encoding FROM pg_database WHERE datname = current_database())) "
      "AND c.collversion IS DISTINCT FROM pg_collation_actual_version(c.oid) "
      "ORDER BY 2, 3",
      {}, deadline);
  if (!rows.ok()) return rows.status();
  for (const auto& r : *rows) {
    out.push_back(CollationObject{conn.database(), Str(r["nspname"]), Str(r["collname"]),
                                  Str(r["collversion"]), Str(r["actual"]),
                                  r["oid"].get<int64_t>()});
  }
  return out;
}

Result<std::vector<CollationIndex>> IndexesUsingCollations(PgConnection& conn, SteadyTime deadline,
                                                           bool default_affected,
                                                           const std::vector<int64_t>& collations) {
  Result<Value> rows = conn.Query(
      "SELECT DISTINCT n.nspname, ct.relname AS tbl, ci.relname AS idx, "
      "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
      "OR pg_has_role(current_user, ct.relowner, 'MEMBER') AS may_reindex "
      "FROM pg_index i "
      "JOIN pg_class ci ON ci.oid = i.indexrelid "
      "JOIN pg_class ct ON ct.oid = i.indrelid "
      "JOIN pg_namespace n ON n.oid = ci.relnamespace "
      "CROSS JOIN LATERAL unnest(i.indcollation::oid[]) AS k(coll) "
      "JOIN pg_collation co ON co.oid = k.coll "
      "WHERE ci.relkind = 'i' "
      "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
      "AND n.nspname NOT LIKE 'pg\\_toast%' "
      "AND ((co.collprovider = 'd' AND $1::bool) OR co.oid::int8 = ANY ($2::int8[])) "
      "ORDER BY 1, 2, 3",
      {default_affected ? "true" : "false", PgInt8Array(collations)}, deadline);
  if (!rows.ok()) return rows.status();
  std::vector<CollationIndex> out;
  for (const auto& r : *rows) {
    out.push_back(CollationIndex{Str(r["nspname"]), Str(r["tbl"]), Str(r["idx"]),
                                 r["may_reindex"].get<bool>()});
  }
  return out;
}

Value ToValue(const DbCollation& d) {
  auto opt = [](const std::string& s) { return s.empty() ? Value() : Value(s); };
  return Value{{"database", d.name},
               {"collate", d.collate},
               {"ctype", d.ctype},
               {"provider", d.provider},
               {"recorded_version", opt(d.recorded)},
               {"actual_version", opt(d.actual)},
               {"mismatch", d.mismatch},
               {"is_template", d.is_template},
               {"allows_connections", d.allows_connections}};
}

Value ToValue(const CollationObject& c) {
  return Value{{"database", c.database},       {"schema", c.schema},
               {"collation", c.name},          {"recorded_version", c.recorded},
               {"actual_version", c.actual.empty() ? Value() : Value(c.actual)}};
}

}  // namespace runbook
