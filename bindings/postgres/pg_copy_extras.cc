#include "bindings/postgres/pg_copy_extras.h"

#include <functional>
#include <map>
#include <set>

namespace runbook {
namespace {

constexpr int64_t kChunk = 1 << 20;

Status Rollback(PgConnection& dst, SteadyTime deadline, Status why) {
  if (dst.ok() && dst.in_transaction() && !dst.Exec("ROLLBACK", {}, deadline).ok()) dst.Close();
  return why;
}

// One large object's content, chunk by chunk (hex on the wire both ways).
Status CopyContent(PgConnection& src, PgConnection& dst, SteadyTime deadline,
                   const std::string& oid, LargeObjectStats* stats) {
  for (int64_t offset = 0;; offset += kChunk) {
    Result<Value> chunk = src.Query("SELECT encode(lo_get($1::oid, $2::int8, $3::int4), 'hex') AS d",
                                    {oid, std::to_string(offset), std::to_string(kChunk)},
                                    deadline);
    if (!chunk.ok()) return chunk.status().Prefixed("reading large object " + oid);
    const std::string hex = (*chunk)[0]["d"].get<std::string>();
    if (hex.empty()) return Status::Ok();
    Status s = dst.Exec("SELECT lo_put($1::oid, $2::int8, decode($3, 'hex'))",
                        {oid, std::to_string(offset), hex}, deadline);
    if (!s.ok()) return s.Prefixed("writing large object " + oid);
    stats->bytes += static_cast<int64_t>(hex.size() / 2);
    if (static_cast<int64_t>(hex.size() / 2) < kChunk) return Status::Ok();
  }
}

// Owner, then the grants other than the owner's own.
Status CopyOwnership(PgConnection& src, PgConnection& dst, SteadyTime deadline) {
  Result<Value> owners = src.Query(
      "SELECT oid::text AS oid, pg_get_userbyid(lomowner) AS owner FROM pg_largeobject_metadata",
      {}, deadline);
  if (!owners.ok()) return owners.status();
  for (const auto& r : *owners) {
    Status s = dst.Exec("ALTER LARGE OBJECT " + r["oid"].get<std::string>() + " OWNER TO " +
                            dst.QuoteIdent(r["owner"].get<std::string>()),
                        {}, deadline);
    if (!s.ok()) return s.Prefixed("large object " + r["oid"].get<std::string>());
  }
  Result<Value> grants = src.Query(
      "SELECT m.oid::text AS oid, a.privilege_type AS priv, a.is_grantable AS g, "
      "CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END AS grantee "
      "FROM pg_largeobject_metadata m, aclexplode(m.lomacl) a WHERE a.grantee <> m.lomowner",
      {}, deadline);
  if (!grants.ok()) return grants.status();
  for (const auto& r : *grants) {
    const std::string who = r["grantee"].get<std::string>();
    Status s = dst.Exec("GRANT " + r["priv"].get<std::string>() + " ON LARGE OBJECT " +
                            r["oid"].get<std::string>() + " TO " +
                            (who.empty() ? std::string("PUBLIC") : dst.QuoteIdent(who)) +
                            (r["g"].get<bool>() ? " WITH GRANT OPTION" : ""),
                        {}, deadline);
    if (!s.ok()) return s.Prefixed("large object " + r["oid"].get<std::string>());
  }
  return Status::Ok();
}

}  // namespace

Status CopyLargeObjects(PgConnection& src, PgConnection& dst, SteadyTime deadline,
                        bool keep_owners, bool remove_others, LargeObjectStats* stats) {
  *stats = LargeObjectStats{};
  Result<Value> oids = src.Query(
      "SELECT coalesce(array_agg(oid ORDER BY oid), '{}')::text AS oids FROM pg_largeobject_metadata",
      {}, deadline);
  if (!oids.ok()) return oids.status();
  const std::string list = (*oids)[0]["oids"].get<std::string>();
  if (list == "{}" && !remove_others) return Status::Ok();
  if (Status s = dst.Exec("BEGIN", {}, deadline); !s.ok()) return s;
  // The target's own under the same oids (a replace, a retry) go first.
  Result<Value> gone = dst.Query(
      "SELECT count(lo_unlink(oid)) AS n, count(*) FILTER (WHERE NOT (oid = ANY ($1::oid[]))) "
      "AS others FROM pg_largeobject_metadata WHERE oid = ANY ($1::oid[]) OR $2",
      {list, remove_others ? "true" : "false"}, deadline);
  if (!gone.ok()) return Rollback(dst, deadline, gone.status());
  stats->removed = (*gone)[0]["others"].get<int64_t>();
  Result<Value> rows = src.Query(
      "SELECT oid::text AS oid FROM pg_largeobject_metadata ORDER BY oid", {}, deadline);
  if (!rows.ok()) return Rollback(dst, deadline, rows.status());
  for (const auto& r : *rows) {
    const std::string oid = r["oid"].get<std::string>();
    Status s = dst.Exec("SELECT lo_create($1::oid)", {oid}, deadline);
    if (s.ok()) s = CopyContent(src, dst, deadline, oid, stats);
    if (!s.ok()) return Rollback(dst, deadline, s);
    ++stats->objects;
  }
  if (keep_owners) {
    if (Status s = CopyOwnership(src, dst, deadline); !s.ok()) return Rollback(dst, deadline, s);
  }
  if (Status s = dst.Exec("COMMIT", {}, deadline); !s.ok()) return Rollback(dst, deadline, s);
  return Status::Ok();
}

Status ProbeLargeObjects(PgConnection& conn, SteadyTime deadline, LargeObjectStats* stats) {
  // lo_get of 0 bytes opens each one: a permission failure names it.
  Result<Value> r = conn.Query(
      "SELECT count(*) AS n, coalesce(sum(length(lo_get(oid, 0, 0))), 0)::int8 AS zero "
      "FROM pg_largeobject_metadata",
      {}, deadline);
  if (!r.ok()) return r.status().Prefixed("reading large objects");
  stats->objects = (*r)[0]["n"].get<int64_t>();
  return Status::Ok();
}

Result<std::vector<MaterializedView>> MaterializedViews(PgConnection& src, SteadyTime deadline) {
  // Each materialized view and the relations its query reads, following
  // plain views through to what they read.
  Result<Value> rows = src.Query(
      "WITH RECURSIVE reads(mv, rel) AS ("
      " SELECT r.ev_class, d.refobjid FROM pg_rewrite r JOIN pg_depend d ON d.classid = "
      " 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass"
      " JOIN pg_class m ON m.oid = r.ev_class AND m.relkind = 'm' WHERE d.refobjid <> r.ev_class"
      " UNION SELECT reads.mv, d.refobjid FROM reads JOIN pg_class v ON v.oid = reads.rel AND "
      " v.relkind = 'v' JOIN pg_rewrite r ON r.ev_class = v.oid JOIN pg_depend d ON d.classid = "
      " 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass "
      " WHERE d.refobjid <> v.oid) "
      "SELECT format('%I.%I', n.nspname, m.relname) AS name, m.relispopulated AS populated, "
      "coalesce((SELECT array_agg(DISTINCT format('%I.%I', dn.nspname, dm.relname)) FROM reads "
      "JOIN pg_class dm ON dm.oid = reads.rel AND dm.relkind = 'm' AND dm.oid <> m.oid "
      "JOIN pg_namespace dn ON dn.oid = dm.relnamespace WHERE reads.mv = m.oid), '{}')::text[] "
      "AS deps FROM pg_class m JOIN pg_namespace n ON n.oid = m.relnamespace "
      "WHERE m.relkind = 'm' AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = "
      "'pg_class'::regclass AND e.objid = m.oid AND e.deptype = 'e') ORDER BY 1",
      {}, deadline);
  if (!rows.ok()) return rows.status();
  std::map<std::string, MaterializedView> all;
  std::map<std::string, std::vector<std::string>> deps;
  for (const auto& r : *rows) {
    const std::string name = r["name"].get<std::string>();
    all[name] = MaterializedView{name, r["populated"].get<bool>()};
    for (const auto& d : r["deps"]) deps[name].push_back(d.get<std::string>());
  }
  // Depth first: each after what it reads (the catalog has no cycles).
  std::vector<MaterializedView> out;
  std::set<std::string> done;
  std::function<void(const std::string&)> visit = [&](const std::string& name) {
    if (!done.insert(name).second) return;
    for (const auto& d : deps[name]) {
      if (all.count(d)) visit(d);
    }
    out.push_back(all[name]);
  };
  for (const auto& [name, mv] : all) visit(name);
  return out;
}

Result<int64_t> RefreshMaterializedViews(PgConnection& dst, SteadyTime deadline,
                                         const std::vector<MaterializedView>& views) {
  int64_t refreshed = 0;
  for (const auto& mv : views) {
    Result<Value> there = dst.Query("SELECT to_regclass($1) IS NOT NULL AS there", {mv.name},
                                    deadline);
    if (!there.ok()) return there.status();
    if (!(*there)[0]["there"].get<bool>()) continue;
    Status s = dst.Exec("REFRESH MATERIALIZED VIEW " + mv.name +
                            (mv.populated ? "" : " WITH NO DATA"),
                        {}, deadline);
    if (!s.ok()) return s.Prefixed("refreshing materialized view " + mv.name);
    if (mv.populated) ++refreshed;
  }
  return refreshed;
}

}  // namespace runbook
