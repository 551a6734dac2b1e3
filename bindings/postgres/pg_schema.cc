#include "bindings/postgres/pg_schema.h"

#include <algorithm>
#include <set>

namespace runbook {
namespace {

// Schemas that are the server's, not the application's.
constexpr const char* kUserSchema =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

// Each query returns kind, object, definition, tbl.
std::vector<std::string> SnapshotQueries() {
  const std::string user = kUserSchema;
  return {
      "SELECT 'table' AS kind, n.nspname || '.' || c.relname AS object, "
      "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' "
      "WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END "
      "AS definition, '' AS tbl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND " + user,

      "SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname, "
      "format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' "
      "END || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), ''), "
      "n.nspname || '.' || c.relname FROM pg_attribute a "
      "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
      "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
      "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
      "AND " + user,

      "SELECT 'index', n.nspname || '.' || ci.relname, pg_get_indexdef(i.indexrelid), "
      "n.nspname || '.' || ct.relname FROM pg_index i "
      "JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid "
      "JOIN pg_namespace n ON n.oid = ci.relnamespace WHERE " + user,

      "SELECT 'constraint', n.nspname || '.' || c.relname || '.' || co.conname, "
      "pg_get_constraintdef(co.oid), n.nspname || '.' || c.relname FROM pg_constraint co "
      "JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE " + user,

      "SELECT 'sequence', n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL) || "
      "' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax || "
      "' start ' || s.seqstart || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END, '' "
      "FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid "
      "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + user,

      "SELECT 'extension', extname, extversion, '' FROM pg_extension",
  };
}

int KindOrder(const std::string& kind) {
  static const char* const kOrder[] = {"extension", "table", "column", "index", "constraint",
                                       "sequence"};
  for (int i = 0; i < 6; ++i) {
    if (kind == kOrder[i]) return i;
  }
  return 6;
}

std::string Str(const Value& v) { return v.is_string() ? v.get<std::string>() : ""; }

}  // namespace

Result<std::vector<SchemaEntry>> SnapshotSchema(PgConnection& conn, SteadyTime deadline) {
  std::string sql;
  for (const auto& q : SnapshotQueries()) sql += (sql.empty() ? "" : "\nUNION ALL\n") + q;
  Result<Value> rows = conn.Query(sql, {}, deadline);  // one statement: one snapshot
  if (!rows.ok()) return rows.status();
  std::vector<SchemaEntry> out;
  for (const auto& r : *rows) {
    out.push_back({Str(r["kind"]), Str(r["object"]), Str(r["definition"]), Str(r["tbl"])});
  }
  std::sort(out.begin(), out.end(), [](const SchemaEntry& a, const SchemaEntry& b) {
    int ka = KindOrder(a.kind), kb = KindOrder(b.kind);
    return ka != kb ? ka < kb : a.object < b.object;
  });
  return out;
}

std::vector<SchemaDifference> DiffSchemas(const std::vector<SchemaEntry>& source,
                                          const std::vector<SchemaEntry>& target,
                                          std::vector<std::string>* version_notes) {
  using Key = std::pair<std::string, std::string>;  // kind, object
  std::map<Key, const SchemaEntry*> a, b;
  std::set<std::string> tables_a, tables_b;
  for (const auto& e : source) {
    a[{e.kind, e.object}] = &e;
    if (e.kind == "table") tables_a.insert(e.object);
  }
  for (const auto& e : target) {
    b[{e.kind, e.object}] = &e;
    if (e.kind == "table") tables_b.insert(e.object);
  }
  auto table_on_one_side = [&](const SchemaEntry& e) {
    return !e.table.empty() && (tables_a.count(e.table) != tables_b.count(e.table));
  };
  std::vector<SchemaDifference> out;
  for (const auto& [key, e] : a) {
    auto it = b.find(key);
    if (it == b.end()) {
      if (!table_on_one_side(*e)) out.push_back({e->kind, e->object, e->definition, ""});
    } else if (it->second->definition != e->definition) {
      if (e->kind == "extension") {
        if (version_notes) {
          version_notes->push_back("extension " + e->object + ": " + e->definition + " vs " +
                                   it->second->definition);
        }
      } else {
        out.push_back({e->kind, e->object, e->definition, it->second->definition});
      }
    }
  }
  for (const auto& [key, e] : b) {
    if (a.count(key) == 0 && !table_on_one_side(*e)) {
      out.push_back({e->kind, e->object, "", e->definition});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const SchemaDifference& x, const SchemaDifference& y) {
    int kx = KindOrder(x.kind), ky = KindOrder(y.kind);
    return kx != ky ? kx < ky : x.object < y.object;
  });
  return out;
}

}  // namespace runbook
