#include "bindings/postgres/pg_copy_catalog.h"

#include <algorithm>
#include <set>

#include "bindings/postgres/pg_value.h"

namespace runbook {
namespace {

// Schemas that belong to the system, in SQL over pg_namespace n.
constexpr const char* kUserSchema =
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
    "AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

// Not a member of an extension (those come and go with their extension).
std::string NotExtensionMember(const std::string& catalog, const std::string& oid) {
  return "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '" + catalog +
         "'::regclass AND e.objid = " + oid + " AND e.deptype = 'e')";
}

// Neither a member of an extension nor an internal part of another object
// (a multirange's constructors and casts, an identity column's sequence):
// each goes with its owner, and a DROP of it alone is refused.
std::string OwnObject(const std::string& catalog, const std::string& oid) {
  return "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '" + catalog +
         "'::regclass AND e.objid = " + oid + " AND e.deptype IN ('e', 'i'))";
}

CopyTable FromRow(const std::string& key, const Value& row) {
  CopyTable t;
  t.key = key;
  t.name = TableName{row["nspname"].get<std::string>(), row["relname"].get<std::string>()};
  t.partitioned = row["relkind"].get<std::string>() == "p";
  t.bytes = row["bytes"].get<int64_t>();
  t.estimated_rows = row["est"].get<int64_t>();
  t.pages = row["pages"].get<int64_t>();
  return t;
}

const char* kTableColumns =
    "SELECT n.nspname, c.relname, c.relkind::text AS relkind, "
    "pg_table_size(c.oid)::int8 AS bytes, c.reltuples::int8 AS est, "
    "(pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 AS pages "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ";

// DROP order: what depends on others goes first.
const char* const kDropOrder[] = {"publication",
                                  "event trigger",
                                  "view",
                                  "materialized view",
                                  "foreign table",
                                  "table",
                                  "sequence",
                                  "cast",
                                  "aggregate",
                                  "operator class",
                                  "operator family",
                                  "operator",
                                  "access method",
                                  "text search configuration",
                                  "text search dictionary",
                                  "text search parser",
                                  "text search template",
                                  "conversion",
                                  "collation",
                                  "function",
                                  "routine",
                                  "type",
                                  "server",
                                  "foreign data wrapper",
                                  "extension",
                                  "schema"};

// lo_unlink of the large objects among `objects` (their names are oids).
std::string UnlinkLargeObjects(const Value& objects) {
  std::string oids;
  for (const auto& o : objects) {
    if (o["kind"].get<std::string>() != "large object") continue;
    const std::string oid = o["name"].get<std::string>();
    if (oid.empty() || oid.find_first_not_of("0123456789") != std::string::npos) continue;
    oids += (oids.empty() ? "" : ",") + oid;
  }
  if (oids.empty()) return "";
  return "SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY ('{" + oids +
         "}'::oid[]);\n";
}

}  // namespace

Result<std::vector<CopyTable>> ResolveTables(PgConnection& src, SteadyTime deadline,
                                             const std::vector<std::string>& names,
                                             const std::string& schema) {
  if (names.empty()) return Status::Invalid("no tables given (name some in tables, or all: true)");
  std::vector<CopyTable> out;
  std::string missing;
  for (const auto& key : names) {
    Result<TableName> name = ParseTableName(key, schema);
    if (!name.ok()) return name.status();
    Result<Value> rows = src.Query(std::string(kTableColumns) +
                                       "WHERE n.nspname = $1 AND c.relname = $2 "
                                       "AND c.relkind IN ('r', 'p')",
                                   {name->schema, name->name}, deadline);
    if (!rows.ok()) return rows.status();
    if (rows->empty()) {
      missing += (missing.empty() ? "" : ", ") + key;
      continue;
    }
    out.push_back(FromRow(key, (*rows)[0]));
    if (!out.back().partitioned) continue;
    Result<Value> parts = src.Query(
        "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_partition_tree($1::regclass) "
        "p JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE p.level > 0 ORDER BY p.level, 1",
        {out.back().Quoted()}, deadline);
    if (!parts.ok()) return parts.status();
    for (const auto& r : *parts) out.back().partitions.push_back(r["name"].get<std::string>());
  }
  if (!missing.empty()) return src.Error(Status::Code::kFailed, "no such table: " + missing);
  return out;
}

Result<std::vector<CopyTable>> AllTables(PgConnection& src, SteadyTime deadline) {
  Result<Value> rows = src.Query(std::string(kTableColumns) + "WHERE c.relkind = 'r' AND " +
                                     kUserSchema + " AND " +
                                     NotExtensionMember("pg_class", "c.oid") +
                                     " ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"",
                                 {}, deadline);
  if (!rows.ok()) return rows.status();
  std::vector<CopyTable> out;
  for (const auto& row : *rows) {
    TableName name{row["nspname"].get<std::string>(), row["relname"].get<std::string>()};
    out.push_back(FromRow(name.Display(), row));
  }
  if (out.empty()) return src.Error(Status::Code::kFailed, "the database has no tables to copy");
  return out;
}

std::vector<std::string> SplitLargeTables(std::vector<CopyTable>* tables, int64_t threshold,
                                          int jobs, int source_version) {
  constexpr int kMaxParts = 256;
  std::vector<std::string> not_split;
  for (auto& t : *tables) {
    t.parts = 1;
    if (threshold <= 0 || t.bytes <= threshold) continue;
    std::string why;
    if (t.on_target) {
      why = "it exists on the target, so its rows are replaced in one transaction";
    } else if (t.partitioned) {
      why = "a partitioned table named as a whole is copied through its parent in one transaction";
    } else if (source_version < 140000) {
      why = "the source runs PostgreSQL " + std::to_string(source_version / 10000) +
            ", which has no TID range scans (each range would read the whole table)";
    } else if (jobs < 2) {
      why = "jobs: 1 copies one range at a time";
    } else if (t.pages < 2 * jobs) {
      why = "too few pages";
    }
    if (!why.empty()) {
      not_split.push_back(t.key + ": " + why);
      continue;
    }
    const int64_t rounds = (t.bytes + threshold * jobs - 1) / (threshold * jobs);
    t.parts = static_cast<int>(std::min<int64_t>({rounds * jobs, kMaxParts, t.pages}));
  }
  return not_split;
}

Status ProbeTarget(PgConnection& dst, SteadyTime deadline, std::vector<CopyTable>* tables) {
  for (auto& t : *tables) {
    Result<Value> found = dst.Query(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        {t.name.schema, t.name.name}, deadline);
    if (!found.ok()) return found.status();
    t.on_target = !found->empty();
    t.target_has_rows = false;
    if (!t.on_target) continue;
    Result<Value> any = dst.Query("SELECT EXISTS (SELECT 1 FROM " + t.Quoted() + ") AS any",
                                  {}, deadline);
    if (!any.ok()) return any.status();
    t.target_has_rows = (*any)[0]["any"].get<bool>();
  }
  return Status::Ok();
}

Status MarkBinarySafe(PgConnection& src, SteadyTime deadline, std::vector<CopyTable>* tables) {
  for (auto& t : *tables) {
    t.binary = false;
    if (t.on_target) continue;
    Result<Value> rows = src.Query(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type d ON d.oid = a.atttypid "
        "JOIN pg_type t ON t.oid = CASE WHEN d.typtype = 'd' THEN d.typbasetype ELSE d.oid END "
        "LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' "
        "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "AND a.attgenerated = '' AND (t.typtype IN ('c', 'd') OR t.typreceive = 0 "
        "OR t.typsend = 0 OR (e.oid IS NOT NULL AND (e.oid >= 16384 OR e.typtype <> 'b')))) "
        "AS safe",
        {t.Quoted()}, deadline);
    if (!rows.ok()) return rows.status();
    t.binary = (*rows)[0]["safe"].get<bool>();
  }
  return Status::Ok();
}

namespace {

// The other objects a schema dump can create that a second CREATE refuses
// ("already exists"): each as (kind, name) where "DROP kind IF EXISTS name
// CASCADE" drops it. Those inside a schema are the user's when the schema
// is; those outside any (casts, publications, ...) when their oid is not
// the system's (FirstNormalObjectId is 16384). Extension members excluded.
std::string OtherObjects() {
  struct Kind {
    const char* kind;
    const char* catalog;
    const char* name;  // SQL over alias o (and n, its schema, if `schema`)
    const char* schema;
    const char* extra;  // more FROM, or ""
  };
  const Kind kinds[] = {
      {"publication", "pg_publication", "format('%I', o.pubname)", nullptr, ""},
      {"event trigger", "pg_event_trigger", "format('%I', o.evtname)", nullptr, ""},
      {"foreign data wrapper", "pg_foreign_data_wrapper", "format('%I', o.fdwname)", nullptr, ""},
      {"server", "pg_foreign_server", "format('%I', o.srvname)", nullptr, ""},
      {"cast", "pg_cast",
       "format('(%s AS %s)', format_type(o.castsource, NULL), format_type(o.casttarget, NULL))",
       nullptr, ""},
      {"operator", "pg_operator",
       "format('%I.%s(%s, %s)', n.nspname, o.oprname, CASE o.oprleft WHEN 0 THEN 'NONE' ELSE "
       "format_type(o.oprleft, NULL) END, CASE o.oprright WHEN 0 THEN 'NONE' ELSE "
       "format_type(o.oprright, NULL) END)",
       "o.oprnamespace", ""},
      {"operator class", "pg_opclass", "format('%I.%I USING %I', n.nspname, o.opcname, am.amname)",
       "o.opcnamespace", " JOIN pg_am am ON am.oid = o.opcmethod"},
      {"operator family", "pg_opfamily",
       "format('%I.%I USING %I', n.nspname, o.opfname, am.amname)", "o.opfnamespace",
       " JOIN pg_am am ON am.oid = o.opfmethod"},
      {"collation", "pg_collation", "format('%I.%I', n.nspname, o.collname)", "o.collnamespace",
       ""},
      {"conversion", "pg_conversion", "format('%I.%I', n.nspname, o.conname)", "o.connamespace",
       ""},
      {"text search configuration", "pg_ts_config", "format('%I.%I', n.nspname, o.cfgname)",
       "o.cfgnamespace", ""},
      {"text search dictionary", "pg_ts_dict", "format('%I.%I', n.nspname, o.dictname)",
       "o.dictnamespace", ""},
      {"text search parser", "pg_ts_parser", "format('%I.%I', n.nspname, o.prsname)",
       "o.prsnamespace", ""},
      {"text search template", "pg_ts_template", "format('%I.%I', n.nspname, o.tmplname)",
       "o.tmplnamespace", ""},
      {"access method", "pg_am", "format('%I', o.amname)", nullptr, ""},
  };
  std::string sql;
  for (const Kind& k : kinds) {
    if (!sql.empty()) sql += " UNION ALL ";
    sql +=
        std::string("SELECT '") + k.kind + "', " + k.name + " FROM " + k.catalog + " o" + k.extra;
    if (k.schema) {
      sql += std::string(" JOIN pg_namespace n ON n.oid = ") + k.schema + " WHERE " + kUserSchema;
    } else {
      sql += " WHERE o.oid >= 16384";
    }
    sql += " AND " + OwnObject(k.catalog, "o.oid");
  }
  return sql;
}

}  // namespace

Result<Value> Inventory(PgConnection& dst, SteadyTime deadline, int version) {
  const bool v2 = version >= kInventoryVersion;
  const std::string rel = OwnObject("pg_class", "c.oid");
  const std::string proc = OwnObject("pg_proc", "p.oid");
  const std::string type = OwnObject("pg_type", "t.oid");
  // Version 1 (undo records of older binaries): these kinds only, types
  // named as the session's search_path shows them.
  const std::string routines =
      v2 ? " UNION ALL SELECT CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'function' "
           "ELSE 'routine' END, format('%I.%I(%s)', n.nspname, p.proname, CASE WHEN "
           "p.prokind = 'a' AND p.pronargs = 0 THEN '*' ELSE "
           "pg_get_function_identity_arguments(p.oid) END) FROM pg_proc p JOIN pg_namespace n "
           "ON n.oid = p.pronamespace WHERE p.prokind IN ('f', 'p', 'a', 'w') AND "
         : " UNION ALL SELECT 'routine', format('%I.%I(%s)', n.nspname, p.proname, "
           "pg_get_function_identity_arguments(p.oid)) FROM pg_proc p JOIN pg_namespace n "
           "ON n.oid = p.pronamespace WHERE p.prokind IN ('f', 'p') AND ";
  const std::string sql =
      std::string(
          "SELECT 'schema' AS kind, format('%I', n.nspname) AS name FROM pg_namespace n "
          "WHERE ") +
      kUserSchema +
      " UNION ALL SELECT 'extension', format('%I', extname) FROM pg_extension"
      " UNION ALL SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN "
      "'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' "
      "ELSE 'table' END, format('%I.%I', n.nspname, c.relname) FROM pg_class c "
      "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN "
      "('r', 'p', 'v', 'm', 'S', 'f') AND " +
      kUserSchema + " AND " + rel + routines + kUserSchema + " AND " + proc +
      " UNION ALL SELECT 'type', format('%I.%I', n.nspname, t.typname) FROM pg_type t "
      "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE (t.typtype IN ('e', 'd', 'r') "
      "OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) "
      "AND " +
      kUserSchema + " AND " + type + (v2 ? " UNION ALL " + OtherObjects() : std::string()) +
      " UNION ALL SELECT 'large object', oid::text FROM pg_largeobject_metadata ORDER BY 1, 2";
  if (!v2) return dst.Query(sql, {}, deadline);
  // Every type named with its schema (format_type and the identity
  // arguments leave out the schemas on the search_path, which a later step
  // may change): the same object gets the same name in every session.
  Result<Value> path = dst.Query("SELECT current_setting('search_path') AS p", {}, deadline);
  if (!path.ok()) return path.status();
  if (Status s = dst.Exec("SELECT set_config('search_path', 'pg_catalog', false)", {}, deadline);
      !s.ok()) {
    return s;
  }
  Result<Value> out = dst.Query(sql, {}, deadline);
  Status reset = dst.Exec("SELECT set_config('search_path', $1, false)",
                          {(*path)[0]["p"].get<std::string>()}, deadline);
  if (!out.ok()) return out.status();
  if (!reset.ok()) return reset;
  return out;
}

Value Created(const Value& before, const Value& after) {
  std::set<std::pair<std::string, std::string>> had;
  for (const auto& o : before) had.emplace(o["kind"].get<std::string>(), o["name"].get<std::string>());
  Value out = Value::array();
  for (const auto& o : after) {
    if (!had.count({o["kind"].get<std::string>(), o["name"].get<std::string>()})) out.push_back(o);
  }
  return out;
}

Status DropObjects(PgConnection& dst, SteadyTime deadline, const Value& objects) {
  std::string sql;
  for (const char* kind : kDropOrder) {
    for (const auto& o : objects) {
      if (o["kind"].get<std::string>() != kind) continue;
      sql += "DROP " + std::string(kind) + " IF EXISTS " + o["name"].get<std::string>() +
             " CASCADE;\n";
    }
  }
  sql += UnlinkLargeObjects(objects);
  if (sql.empty()) return Status::Ok();
  // One transaction: all of it or nothing (a script runs as one implicitly,
  // but say so, since a crash halfway must not leave some of it).
  Result<PgResult> r = dst.RunScript("BEGIN;\n" + sql + "COMMIT", deadline);
  if (!r.ok() && dst.ok() && dst.in_transaction()) dst.Exec("ROLLBACK", {}, deadline);
  return r.status();
}

Result<std::vector<std::string>> CopySequences(PgConnection& src, SteadyTime deadline,
                                               const std::vector<CopyTable>& tables, bool all) {
  std::vector<std::string> schemas, names;
  for (const auto& t : tables) {
    schemas.push_back(t.name.schema);
    names.push_back(t.name.name);
  }
  Result<Value> rows = src.Query(
      std::string("SELECT DISTINCT format('%I.%I', n.nspname, s.relname) AS seq "
                  "FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace "
                  "WHERE s.relkind = 'S' AND ") + kUserSchema + " AND " +
          NotExtensionMember("pg_class", "s.oid") +
          " AND ($3 OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class c ON c.oid = d.refobjid "
          "JOIN pg_namespace cn ON cn.oid = c.relnamespace "
          "JOIN unnest($1::text[], $2::text[]) AS u(s, t) ON u.s = cn.nspname AND u.t = c.relname "
          "WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid "
          "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))) ORDER BY 1",
      {PgTextArray(schemas), PgTextArray(names), all ? "true" : "false"}, deadline);
  if (!rows.ok()) return rows.status();
  std::vector<std::string> out;
  for (const auto& row : *rows) out.push_back(row["seq"].get<std::string>());
  return out;
}

Status SyncSequences(PgConnection& src, PgConnection& dst, SteadyTime deadline,
                     const std::vector<std::string>& sequences) {
  for (const auto& seq : sequences) {
    // A table that existed on the target keeps its own definition, which
    // may not use a sequence at all.
    Result<Value> there = dst.Query("SELECT to_regclass($1) IS NOT NULL AS there", {seq}, deadline);
    if (!there.ok()) return there.status();
    if (!(*there)[0]["there"].get<bool>()) continue;
    Result<Value> v = src.Query("SELECT last_value::text AS v, is_called FROM " + seq, {}, deadline);
    if (!v.ok()) return v.status();
    const Value& row = (*v)[0];
    Status s = dst.Exec("SELECT setval($1::regclass, $2::int8, $3::bool)",
                        {seq, row["v"].get<std::string>(),
                         row["is_called"].get<bool>() ? "true" : "false"},
                        deadline);
    if (!s.ok()) return s.Prefixed("sequence " + seq);
  }
  return Status::Ok();
}

namespace {

// Every user object that has an owner and an ACL, as (what, owner, acl,
// default acl), for OwnershipLosses and MissingRoles. $1/$2: the tables'
// schemas and names when `all` ($3) is false.
std::string OwnedObjectsSql() {
  const std::string rel = NotExtensionMember("pg_class", "c.oid");
  const std::string proc = NotExtensionMember("pg_proc", "p.oid");
  const std::string type = NotExtensionMember("pg_type", "t.oid");
  return std::string(
             "SELECT 'schema ' || quote_ident(n.nspname) AS what, n.nspowner AS owner, "
             "n.nspacl AS acl, acldefault('n', n.nspowner) AS def FROM pg_namespace n WHERE $3 AND ") +
         kUserSchema + " AND n.nspname <> 'public' AND " +
         NotExtensionMember("pg_namespace", "n.oid") +
         " UNION ALL SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' "
         "WHEN 'm' THEN 'materialized view ' ELSE 'table ' END || format('%I.%I', n.nspname, "
         "c.relname), c.relowner, c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE "
         "'r' END::\"char\", c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = "
         "c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND " + kUserSchema +
         " AND " + rel + " AND ($3 OR (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], "
         "$2::text[])))"
         " UNION ALL SELECT 'function ' || p.oid::regprocedure::text, p.proowner, p.proacl, "
         "acldefault('f', p.proowner) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
         "WHERE $3 AND " + kUserSchema + " AND " + proc +
         " UNION ALL SELECT 'type ' || format_type(t.oid, NULL), t.typowner, t.typacl, "
         "acldefault('T', t.typowner) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
         "WHERE $3 AND t.typtype IN ('e', 'd', 'r', 'm') AND " + kUserSchema + " AND " + type +
         " UNION ALL SELECT 'large object ' || oid, lomowner, lomacl, acldefault('L', lomowner) "
         "FROM pg_largeobject_metadata WHERE $3"
         " UNION ALL SELECT 'default privileges of ' || pg_get_userbyid(defaclrole), defaclrole, "
         "defaclacl, NULL FROM pg_default_acl WHERE $3";
}

PgParams OwnedParams(const std::vector<CopyTable>& tables, bool all) {
  std::vector<std::string> schemas, names;
  for (const auto& t : tables) {
    schemas.push_back(t.name.schema);
    names.push_back(t.name.name);
  }
  return {PgTextArray(schemas), PgTextArray(names), all ? "true" : "false"};
}

std::vector<std::string> Column(const Value& rows, const char* key) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r[key].get<std::string>());
  return out;
}

}  // namespace

namespace {

// The public schema's owner and grants as text ("postgres {...}").
Result<std::string> PublicSchema(PgConnection& conn, SteadyTime deadline) {
  Result<Value> r = conn.Query(
      "SELECT pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, 'default') AS p "
      "FROM pg_namespace WHERE nspname = 'public'",
      {}, deadline);
  if (!r.ok()) return r.status();
  return r->empty() ? std::string("none") : (*r)[0]["p"].get<std::string>();
}

}  // namespace

Result<std::vector<std::string>> OwnershipLosses(PgConnection& src, PgConnection& dst,
                                                 SteadyTime deadline,
                                                 const std::vector<CopyTable>& tables, bool all,
                                                 size_t limit) {
  Result<Value> rows = src.Query(
      "SELECT CASE WHEN o.def IS NULL THEN o.what WHEN o.owner <> (SELECT oid FROM pg_roles "
      "WHERE rolname = current_user) THEN o.what || ' owned by ' || pg_get_userbyid(o.owner) "
      "ELSE o.what || ' with grants ' || o.acl::text END AS loss FROM (" + OwnedObjectsSql() +
          ") o WHERE o.def IS NULL OR o.owner <> (SELECT oid FROM pg_roles WHERE rolname = "
          "current_user) OR (o.acl IS NOT NULL AND o.acl::text <> o.def::text) ORDER BY 1 LIMIT " +
          std::to_string(limit),
      OwnedParams(tables, all), deadline);
  if (!rows.ok()) return rows.status();
  std::vector<std::string> out = Column(*rows, "loss");
  // The public schema exists on both sides already (initdb makes it), with
  // the defaults of each server's major: PostgreSQL 15 gave it to
  // pg_database_owner and took CREATE from PUBLIC. Only its owner and
  // grants as set on the source would carry what the source has.
  if (all) {
    Result<std::string> a = PublicSchema(src, deadline);
    if (!a.ok()) return a.status();
    Result<std::string> b = PublicSchema(dst, deadline);
    if (!b.ok()) return b.status();
    if (*a != *b) out.insert(out.begin(), "schema public (" + *a + " on the source, " + *b +
                                              " on the target)");
  }
  return out;
}

Result<std::vector<std::string>> MissingRoles(PgConnection& src, PgConnection& dst,
                                              SteadyTime deadline) {
  Result<Value> roles = src.Query(
      "SELECT coalesce(array_agg(DISTINCT r), '{}')::text AS roles FROM (SELECT "
      "pg_get_userbyid(o.owner) AS r FROM (" + OwnedObjectsSql() + ") o UNION SELECT "
      "pg_get_userbyid(x.grantee) FROM (" + OwnedObjectsSql() + ") o, aclexplode(o.acl) x "
      "WHERE x.grantee <> 0) s",
      {PgTextArray({}), PgTextArray({}), "true"}, deadline);
  if (!roles.ok()) return roles.status();
  Result<Value> missing = dst.Query(
      "SELECT r FROM unnest($1::text[]) r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE "
      "rolname = r) ORDER BY 1",
      {(*roles)[0]["roles"].get<std::string>()}, deadline);
  if (!missing.ok()) return missing.status();
  return Column(*missing, "r");
}

Result<std::vector<std::string>> RowSecurityHides(PgConnection& src, SteadyTime deadline,
                                                  const std::vector<CopyTable>& tables) {
  Result<Value> rows = src.Query(
      "SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n "
      "ON n.oid = c.relnamespace JOIN unnest($1::text[], $2::text[]) u(s, r) ON u.s = n.nspname "
      "AND u.r = c.relname, pg_roles me WHERE me.rolname = current_user AND c.relrowsecurity "
      "AND NOT me.rolsuper AND NOT me.rolbypassrls AND (c.relforcerowsecurity OR NOT "
      "pg_has_role(c.relowner, 'USAGE')) ORDER BY 1",
      {OwnedParams(tables, false)[0], OwnedParams(tables, false)[1]}, deadline);
  if (!rows.ok()) return rows.status();
  return Column(*rows, "t");
}

Status RefuseLosses(PgConnection& src, PgConnection& dst, SteadyTime deadline,
                    const std::vector<CopyTable>& tables, const OwnersChoice& owners) {
  auto join = [](const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
    return out;
  };
  auto refuse = [](PgConnection& c, const std::string& what) {
    return c.Error(Status::Code::kFailed, what + "; nothing was done");
  };
  if (!owners.said) {
    Result<std::vector<std::string>> lost =
        OwnershipLosses(src, dst, deadline, tables, owners.all, 10);
    if (!lost.ok()) return lost.status();
    if (!lost->empty()) {
      return refuse(src, "the copy would drop owners and grants the source has (" +
                             join(*lost, "; ") +
                             "): set keep_owners: true to carry them (the roles must exist on "
                             "the target) or keep_owners: false to copy without them");
    }
  } else if (owners.keep) {
    Result<std::vector<std::string>> missing = MissingRoles(src, dst, deadline);
    if (!missing.ok()) return missing.status();
    if (!missing->empty()) {
      return refuse(dst, "keep_owners needs the roles " + join(*missing, ", ") +
                             ", which do not exist on the target (create them first, e.g. from "
                             "pg_dumpall --roles-only)");
    }
  }
  Result<std::vector<std::string>> hidden = RowSecurityHides(src, deadline, tables);
  if (!hidden.ok()) return hidden.status();
  if (!hidden->empty()) {
    return refuse(src, "row-level security would hide rows of " + join(*hidden, ", ") +
                           " from the user (connect as the tables' owner, a superuser or a role "
                           "with BYPASSRLS)");
  }
  return Status::Ok();
}

Result<std::string> DatabaseFingerprint(PgConnection& conn, SteadyTime deadline) {
  Result<Value> rows = conn.Query(
      "SELECT pg_postmaster_start_time()::text || ' ' || coalesce(inet_server_port(), 0) || '/' "
      "|| current_database() AS id",
      {}, deadline);
  if (!rows.ok()) return rows.status();
  return (*rows)[0]["id"].get<std::string>();
}

}  // namespace runbook
