#include "bindings/postgres/pg_compare.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "bindings/postgres/pg_sql.h"

namespace runbook {
namespace {

// Both servers print values alike inside the read transaction (see
// pg_counts.h), and row-level security never hides rows silently: with
// row_security off, a query a policy would filter fails instead.
constexpr const char* kPinSession =
    "SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3; "
    "SET LOCAL bytea_output = 'hex'; SET LOCAL IntervalStyle = 'postgres'; "
    "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL lc_monetary = 'C'; "
    "SET LOCAL row_security = off; SET LOCAL search_path = ''";

constexpr const char* kUserRelation =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE "
    "e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')";

std::string Str(const Value& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

std::string KindOf(const std::string& relkind, const std::string& persistence) {
  if (relkind == "p") return "partitioned table";
  if (relkind == "m") return "materialized view";
  if (relkind == "f") return "foreign table";
  return persistence == "u" ? "unlogged table" : "table";
}

Status ReadRelations(PgConnection& conn, SteadyTime deadline, const CompareOptions& options,
                     DatabaseImage* image) {
  Result<Value> rels = conn.Query(
      std::string("SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS k, "
                  "c.relpersistence::text AS p, c.relispopulated AS populated, "
                  "coalesce((SELECT string_agg('rb_t.' || quote_ident(a.attname), ', ' ORDER BY "
                  "a.attname COLLATE \"C\") FROM pg_attribute a WHERE a.attrelid = c.oid AND "
                  "a.attnum > 0 AND NOT a.attisdropped), '') AS cols "
                  "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE c.relkind IN ('r', 'p', 'm', 'f') AND ") +
          kUserRelation + " ORDER BY 1",
      {}, deadline);
  if (!rels.ok()) return rels.status();
  std::vector<std::string> readable;  // names, in the order of the UNION below
  std::string sql;
  for (const auto& r : *rels) {
    const std::string name = r["name"].get<std::string>();
    RelationImage rel;
    rel.kind = KindOf(r["k"].get<std::string>(), r["p"].get<std::string>());
    rel.populated = r["populated"].get<bool>();
    image->relations[name] = rel;
    if (rel.kind == "foreign table") {
      image->not_compared.push_back("rows of foreign table " + name);
      continue;
    }
    if (rel.kind == "partitioned table" || !rel.populated) continue;
    if (!sql.empty()) sql += "\nUNION ALL ";
    sql += "SELECT " + std::to_string(readable.size()) + " AS i, count(*) AS n";
    if (options.checksums) {
      sql += ", coalesce(sum(hashtextextended(ROW(" + r["cols"].get<std::string>() +
             ")::text, 0)), 0)::text AS d";
    }
    // ONLY: an inheritance parent's own rows; its children are compared as
    // relations of their own.
    sql += " FROM ONLY " + name + " AS rb_t";
    readable.push_back(name);
  }
  if (sql.empty()) return Status::Ok();
  Result<Value> rows = conn.Query(sql, {}, deadline);
  if (!rows.ok()) return rows.status();
  for (const auto& r : *rows) {
    RelationImage& rel = image->relations[readable[r["i"].get<size_t>()]];
    rel.read = true;
    rel.rows = r["n"].get<int64_t>();
    if (options.checksums) rel.digest = Str(r["d"]);
  }
  return Status::Ok();
}

Status ReadLargeObjects(PgConnection& conn, SteadyTime deadline, const CompareOptions& options,
                        DatabaseImage* image) {
  Result<Value> rows = conn.Query(
      "SELECT m.oid::int8 AS oid, pg_get_userbyid(m.lomowner) AS owner, "
      "coalesce(m.lomacl::text, '') AS acl, length(x.d)::int8 AS size, md5(x.d) AS md5 "
      "FROM pg_largeobject_metadata m CROSS JOIN LATERAL (SELECT lo_get(m.oid) AS d) x",
      {}, deadline);
  if (!rows.ok()) return rows.status().Prefixed("reading large objects");
  for (const auto& r : *rows) {
    LargeObjectImage lo;
    if (options.owners) {
      lo.owner = Str(r["owner"]);
      lo.acl = Str(r["acl"]);
    }
    lo.size = r["size"].get<int64_t>();
    lo.md5 = Str(r["md5"]);
    image->large_objects[r["oid"].get<int64_t>()] = lo;
  }
  return Status::Ok();
}

// pg_get_viewdef as pg_dump calls it (search_path '' is pinned), by
// pg_dump's entry key.
Status ReadViews(PgConnection& conn, SteadyTime deadline, DatabaseImage* image) {
  Result<Value> rows = conn.Query(
      std::string("SELECT CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW ' ELSE 'VIEW ' END || "
                  "n.nspname || '.' || c.relname AS k, "
                  "pg_get_viewdef(c.oid) AS q FROM pg_class c JOIN pg_namespace n ON "
                  "n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND ") +
          kUserRelation,
      {}, deadline);
  if (!rows.ok()) return rows.status();
  for (const auto& r : *rows) image->view_queries[Str(r["k"])] = Str(r["q"]);
  return Status::Ok();
}

Status ReadSequences(PgConnection& conn, SteadyTime deadline, DatabaseImage* image) {
  Result<Value> seqs = conn.Query(
      std::string("SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c "
                  "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND ") +
          kUserRelation + " ORDER BY 1",
      {}, deadline);
  if (!seqs.ok()) return seqs.status();
  std::vector<std::string> names;
  std::string sql;
  for (const auto& r : *seqs) {
    names.push_back(r["name"].get<std::string>());
    sql += std::string(sql.empty() ? "" : "\nUNION ALL ") + "SELECT " +
           std::to_string(names.size() - 1) + " AS i, last_value::text AS v, is_called FROM " +
           names.back();
  }
  if (sql.empty()) return Status::Ok();
  Result<Value> rows = conn.Query(sql, {}, deadline);
  if (!rows.ok()) return rows.status().Prefixed("reading sequences");
  for (const auto& r : *rows) {
    image->sequences[names[r["i"].get<size_t>()]] =
        "last_value " + Str(r["v"]) + (r["is_called"].get<bool>() ? ", called" : ", not called");
  }
  return Status::Ok();
}

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Lines of pg_dump's plain output that say nothing about the database: its
// banners and entry headers, session settings, and the \restrict key that
// pg_dump 17.6+ draws at random for every dump.
bool Noise(const std::string& line) {
  return line.empty() || line == "--" || StartsWith(line, "-- Dumped ") ||
         StartsWith(line, "-- PostgreSQL database dump") || StartsWith(line, "-- TOC entry ") ||
         StartsWith(line, "-- Dependencies: ") || StartsWith(line, "-- Data for Name: ") ||
         StartsWith(line, "SET ") || StartsWith(line, "SELECT pg_catalog.set_config(") ||
         StartsWith(line, "\\restrict ") || StartsWith(line, "\\unrestrict ") ||
         StartsWith(line, "\\connect ");
}

// "-- Name: t; Type: TABLE; Schema: public; Owner: app" -> "TABLE public.t".
// The name may itself contain "; ": Type is the field after the last "; Type: ".
std::string EntryKey(const std::string& header) {
  const size_t name_at = sizeof("-- Name: ") - 1;
  const size_t type_at = header.rfind("; Type: ");
  const std::string name = header.substr(name_at, type_at - name_at);
  const std::string rest = header.substr(type_at);
  auto field = [&rest](const std::string& tag) -> std::string {
    size_t p = rest.find(tag);
    if (p == std::string::npos) return "";
    p += tag.size();
    size_t end = rest.find("; ", p);
    return rest.substr(p, end == std::string::npos ? std::string::npos : end - p);
  };
  const std::string type = field("; Type: ");
  const std::string schema = field("; Schema: ");
  return type + " " + (schema.empty() || schema == "-" ? "" : schema + ".") + name;
}

}  // namespace

Result<std::string> BeginRead(PgConnection& conn, SteadyTime deadline) {
  Result<PgResult> r = conn.RunScript(
      std::string("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ") + kPinSession, deadline);
  if (!r.ok()) return r.status();
  Result<Value> id = conn.Query("SELECT pg_export_snapshot() AS id", {}, deadline);
  if (!id.ok()) return id.status();
  return (*id)[0]["id"].get<std::string>();
}

Status ReadData(PgConnection& conn, SteadyTime deadline, const CompareOptions& options,
                DatabaseImage* image) {
  image->server_version = conn.server_version();
  if (Status s = ReadRelations(conn, deadline, options, image); !s.ok()) return s;
  if (Status s = ReadLargeObjects(conn, deadline, options, image); !s.ok()) return s;
  if (Status s = ReadViews(conn, deadline, image); !s.ok()) return s;
  return ReadSequences(conn, deadline, image);
}

void EndRead(PgConnection& conn, SteadyTime deadline) {
  if (conn.ok() && conn.in_transaction() && !conn.Exec("ROLLBACK", {}, deadline).ok()) {
    conn.Close();
  }
}

namespace {

// Passwords a dump may hold (a user mapping's OPTIONS (password '...'), a
// conninfo's password=...) never reach a comparison's output.
std::string MaskPasswords(std::string line) {
  for (const char* key : {"password '", "password=", "password = '"}) {
    for (size_t at = 0; (at = line.find(key, at)) != std::string::npos;) {
      size_t start = at + std::strlen(key);
      size_t end = start;
      if (key[std::strlen(key) - 1] == '\'') {
        while (end < line.size() && !(line[end] == '\'' && (end + 1 >= line.size() ||
                                                            line[end + 1] != '\''))) {
          end += line[end] == '\'' ? 2 : 1;
        }
      } else {
        while (end < line.size() && line[end] != ' ' && line[end] != '\'') ++end;
      }
      line.replace(start, end - start, "***");
      at = start + 3;
    }
  }
  return line;
}

}  // namespace

std::multimap<std::string, std::string> ParseSchemaDump(const std::string& dump) {
  std::multimap<std::string, std::string> out;
  std::istringstream in(dump);
  std::string key, body;
  auto flush = [&] {
    while (!body.empty() && body.back() == '\n') body.pop_back();
    if (!key.empty()) out.emplace(key, body);
    body.clear();
  };
  for (std::string line; std::getline(in, line);) {
    if (StartsWith(line, "-- Name: ") && line.find("; Type: ") != std::string::npos) {
      flush();
      key = EntryKey(line);
      continue;
    }
    if (Noise(line)) continue;
    if (!key.empty()) body += MaskPasswords(line) + "\n";
  }
  flush();
  return out;
}

namespace {

std::string WithoutSemicolon(std::string q) {
  while (!q.empty() && (q.back() == ';' || q.back() == '\n' || q.back() == ' ')) q.pop_back();
  return q;
}

// The target's print of `query` (a view's SELECT), or "" if it cannot parse it.
std::string Reprint(PgConnection& target, SteadyTime deadline, const std::string& query) {
  if (!target.Exec("SAVEPOINT rb_view", {}, deadline).ok()) return "";
  Status s = target.Exec("CREATE TEMPORARY VIEW rb_reprint AS " + query, {}, deadline);
  Result<Value> r = s.ok() ? target.Query("SELECT pg_get_viewdef('pg_temp.rb_reprint'::regclass) "
                                          "AS q", {}, deadline)
                           : Result<Value>(s);
  target.Exec("ROLLBACK TO SAVEPOINT rb_view", {}, deadline);
  return r.ok() ? Str((*r)[0]["q"]) : "";
}

void ReplaceAll(std::string* text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t at = 0; (at = text->find(from, at)) != std::string::npos; at += to.size()) {
    text->replace(at, from.size(), to);
  }
}

// "... PROCEDURE s.p(IN a integer, IN b text) ..." -> "... (a integer, b text) ...",
// on every line that names a procedure (its CREATE, ALTER ... OWNER, GRANT).
std::string WithoutInModes(const std::string& body) {
  std::string out;
  size_t start = 0;
  while (start <= body.size()) {
    size_t eol = body.find('\n', start);
    std::string line = body.substr(start, eol == std::string::npos ? std::string::npos : eol - start);
    if (line.find("PROCEDURE ") != std::string::npos) {
      ReplaceAll(&line, "(IN ", "(");
      ReplaceAll(&line, ", IN ", ", ");
    }
    out += line;
    if (eol == std::string::npos) break;
    out += "\n";
    start = eol + 1;
  }
  return out;
}

std::string WithoutMultirangeName(const std::string& body) {
  std::string out;
  size_t start = 0;
  while (start < body.size()) {
    size_t eol = body.find('\n', start);
    std::string line = body.substr(start, eol == std::string::npos ? std::string::npos : eol - start);
    if (line.find("multirange_type_name = ") == std::string::npos) {
      out += line + (eol == std::string::npos ? "" : "\n");
    }
    if (eol == std::string::npos) break;
    start = eol + 1;
  }
  // The line before may now end in a comma that closed nothing.
  ReplaceAll(&out, ",\n);", "\n);");
  return out;
}

}  // namespace

Status PrintLikeTarget(PgConnection& target, SteadyTime deadline, DatabaseImage* source,
                       DatabaseImage* target_image) {
  const int from = source->server_version / 10000, to = target_image->server_version / 10000;
  if (from == to) return Status::Ok();
  if (Status s = target.RunScript("BEGIN; SET LOCAL search_path = ''", deadline).status();
      !s.ok()) {
    return s;
  }
  for (auto& [key, query] : source->view_queries) {
    const std::string old = WithoutSemicolon(query);
    const std::string now = WithoutSemicolon(Reprint(target, deadline, old));
    if (now.empty() || now == old) continue;
    for (auto [it, end] = source->schema.equal_range(key); it != end; ++it) {
      ReplaceAll(&it->second, old, now);
    }
  }
  target.Exec("ROLLBACK", {}, deadline);
  if ((from < 14) != (to < 14)) {
    for (DatabaseImage* image : {source, target_image}) {
      for (auto& [key, body] : image->schema) {
        if (body.find("PROCEDURE ") != std::string::npos) body = WithoutInModes(body);
        if (key.rfind("TYPE ", 0) == 0) body = WithoutMultirangeName(body);
      }
    }
  }
  return Status::Ok();
}

Status SettleStaleViews(PgConnection& source, SteadyTime deadline, const DatabaseImage& target,
                        std::vector<ImageDifference>* diffs, std::vector<std::string>* notes) {
  std::vector<ImageDifference> keep;
  bool open = false;
  Status status;
  for (const ImageDifference& d : *diffs) {
    auto rel = target.relations.find(d.object);
    if (d.kind != "rows" || rel == target.relations.end() ||
        rel->second.kind != "materialized view" || !rel->second.read || !status.ok()) {
      keep.push_back(d);
      continue;
    }
    if (!open) {
      Result<std::string> snapshot = BeginRead(source, deadline);
      if (!snapshot.ok()) return snapshot.status();
      open = true;
    }
    // The view's query, with the columns the checksum lists, on the source.
    Result<Value> q = source.Query(
        "SELECT pg_get_viewdef(c.oid) AS q, coalesce((SELECT string_agg('rb_t.' || "
        "quote_ident(a.attname), ', ' ORDER BY a.attname COLLATE \"C\") FROM pg_attribute a "
        "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS cols "
        "FROM pg_class c WHERE c.oid = $1::regclass",
        {d.object}, deadline);
    if (!q.ok() || q->empty()) {
      status = q.ok() ? Status::Ok() : q.status();
      keep.push_back(d);
      continue;
    }
    std::string query = (*q)[0]["q"].get<std::string>();
    while (!query.empty() && (query.back() == ';' || query.back() == ' ' || query.back() == '\n')) {
      query.pop_back();
    }
    Result<Value> fresh = source.Query(
        "SELECT count(*) AS n, coalesce(sum(hashtextextended(ROW(" +
            (*q)[0]["cols"].get<std::string>() + ")::text, 0)), 0)::text AS d FROM (" + query +
            ") AS rb_t",
        {}, deadline);
    if (fresh.ok() && (*fresh)[0]["n"].get<int64_t>() == rel->second.rows &&
        Str((*fresh)[0]["d"]) == rel->second.digest) {
      notes->push_back("materialized view " + d.object + " is stale on the source (" + d.source +
                       "); the target holds its query's rows now (" + d.target + ")");
      continue;
    }
    keep.push_back(d);
  }
  if (open) EndRead(source, deadline);
  *diffs = std::move(keep);
  return status;
}

std::string FirstDifferentLine(const std::string& a, const std::string& b) {
  std::istringstream ia(a), ib(b);
  std::string la, lb;
  for (int n = 1;; ++n) {
    bool ha = static_cast<bool>(std::getline(ia, la));
    bool hb = static_cast<bool>(std::getline(ib, lb));
    if (!ha && !hb) return "";
    if (!ha) la = "(end)";
    if (!hb) lb = "(end)";
    if (la != lb || !ha || !hb) {
      return "line " + std::to_string(n) + ": '" + la + "' vs '" + lb + "'";
    }
  }
}

namespace {

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

void CompareSchema(const DatabaseImage& a, const DatabaseImage& b,
                   std::vector<ImageDifference>* out) {
  std::set<std::string> keys;
  for (const auto& [k, v] : a.schema) keys.insert(k);
  for (const auto& [k, v] : b.schema) keys.insert(k);
  for (const auto& key : keys) {
    std::vector<std::string> va, vb;
    for (auto [it, end] = a.schema.equal_range(key); it != end; ++it) va.push_back(it->second);
    for (auto [it, end] = b.schema.equal_range(key); it != end; ++it) vb.push_back(it->second);
    std::sort(va.begin(), va.end());
    std::sort(vb.begin(), vb.end());
    if (va == vb) continue;
    if (va.empty() || vb.empty()) {
      out->push_back({"schema", key, va.empty() ? "missing" : FirstLine(va[0]),
                      vb.empty() ? "missing" : FirstLine(vb[0])});
      continue;
    }
    std::string where;
    for (size_t i = 0; i < std::min(va.size(), vb.size()) && where.empty(); ++i) {
      where = FirstDifferentLine(va[i], vb[i]);
    }
    if (where.empty()) where = std::to_string(va.size()) + " vs " + std::to_string(vb.size()) +
                               " entries";
    out->push_back({"schema", key, "differs: " + where, "differs: " + where});
  }
}

std::string RowsText(const RelationImage& r) {
  if (r.kind == "partitioned table") return "partitioned (rows in its partitions)";
  if (r.kind == "foreign table") return "foreign (not read)";
  if (!r.populated) return "not populated";
  return std::to_string(r.rows) + " rows" + (r.digest.empty() ? "" : ", checksum " + r.digest);
}

void CompareRelations(const DatabaseImage& a, const DatabaseImage& b,
                      std::vector<ImageDifference>* out) {
  std::set<std::string> names;
  for (const auto& [k, v] : a.relations) names.insert(k);
  for (const auto& [k, v] : b.relations) names.insert(k);
  for (const auto& name : names) {
    auto ia = a.relations.find(name);
    auto ib = b.relations.find(name);
    if (ia == a.relations.end() || ib == b.relations.end()) {
      out->push_back({"relation", name,
                      ia == a.relations.end() ? "missing" : ia->second.kind + ", " + RowsText(ia->second),
                      ib == b.relations.end() ? "missing" : ib->second.kind + ", " + RowsText(ib->second)});
      continue;
    }
    const RelationImage &x = ia->second, &y = ib->second;
    if (x.kind != y.kind) {
      out->push_back({"relation", name, x.kind, y.kind});
    } else if (x.populated != y.populated) {
      out->push_back({"materialized view", name, x.populated ? "populated" : "not populated",
                      y.populated ? "populated" : "not populated"});
    } else if (x.read && y.read && (x.rows != y.rows || x.digest != y.digest)) {
      out->push_back({"rows", name, RowsText(x), RowsText(y)});
    }
  }
}

std::string LoText(const LargeObjectImage& lo) {
  std::string s = std::to_string(lo.size) + " bytes, md5 " + lo.md5;
  if (!lo.owner.empty()) s += ", owner " + lo.owner;
  if (!lo.acl.empty()) s += ", grants " + lo.acl;
  return s;
}

void CompareLargeObjects(const DatabaseImage& a, const DatabaseImage& b,
                         std::vector<ImageDifference>* out) {
  std::set<int64_t> oids;
  for (const auto& [k, v] : a.large_objects) oids.insert(k);
  for (const auto& [k, v] : b.large_objects) oids.insert(k);
  for (int64_t oid : oids) {
    auto ia = a.large_objects.find(oid);
    auto ib = b.large_objects.find(oid);
    const bool both = ia != a.large_objects.end() && ib != b.large_objects.end();
    if (both && ia->second.size == ib->second.size && ia->second.md5 == ib->second.md5 &&
        ia->second.owner == ib->second.owner && ia->second.acl == ib->second.acl) {
      continue;
    }
    out->push_back({"large object", std::to_string(oid),
                    ia == a.large_objects.end() ? "missing" : LoText(ia->second),
                    ib == b.large_objects.end() ? "missing" : LoText(ib->second)});
  }
}

void CompareSequences(const DatabaseImage& a, const DatabaseImage& b,
                      std::vector<ImageDifference>* out) {
  std::set<std::string> names;
  for (const auto& [k, v] : a.sequences) names.insert(k);
  for (const auto& [k, v] : b.sequences) names.insert(k);
  for (const auto& name : names) {
    auto ia = a.sequences.find(name);
    auto ib = b.sequences.find(name);
    std::string x = ia == a.sequences.end() ? "missing" : ia->second;
    std::string y = ib == b.sequences.end() ? "missing" : ib->second;
    if (x != y) out->push_back({"sequence", name, x, y});
  }
}

}  // namespace

std::vector<ImageDifference> CompareImages(const DatabaseImage& source,
                                           const DatabaseImage& target) {
  std::vector<ImageDifference> out;
  CompareSchema(source, target, &out);
  CompareRelations(source, target, &out);
  CompareLargeObjects(source, target, &out);
  CompareSequences(source, target, &out);
  return out;
}

}  // namespace runbook
