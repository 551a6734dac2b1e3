#include "bindings/postgres/pg_undo_guard.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "engine/core/sha256.h"

namespace runbook {
namespace {

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char ch) {
    return std::isdigit(ch) != 0;
  });
}

// The database's part of a note's key: a digest, so that no name can be
// mistaken for another (a name may hold spaces or ':').
Result<std::string> DatabaseKey(PgConnection& c, SteadyTime deadline, const std::string& kind,
                                const std::string& server) {
  Result<Value> db = c.Query("SELECT current_database() AS d", {}, deadline);
  if (!db.ok()) return db.status();
  return kind + ":" + server + ":" + Sha256Hex((*db)[0]["d"].get<std::string>()).substr(0, 16);
}

Status Note(StepContext& ctx, PgConnection& c, SteadyTime deadline, const std::string& kind,
            const std::vector<std::string>& ids) {
  const std::string server = ServerWriteKey(c, deadline);
  if (server.empty()) return Status::Ok();
  Result<std::string> where = DatabaseKey(c, deadline, kind, server);
  if (!where.ok()) return where.status();
  for (const auto& id : ids) {
    if (Status s = ctx.NoteOwnWrite(*where, id); !s.ok()) return s;
  }
  return Status::Ok();
}

std::string PgArray(const std::vector<std::string>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out + "}";
}

// What the run noted about the database `c` is connected to.
struct RunNotes {
  std::vector<std::string> xids;                    // own transactions
  std::vector<std::string> range_first, range_end;  // own ranges, closed ones
  std::vector<std::string> horizons;
  std::set<std::string> guarded;  // by a step whose check this rollback asks
};

Result<RunNotes> ReadNotes(StepContext& ctx, PgConnection& c, SteadyTime deadline) {
  RunNotes n;
  const std::string server = ServerWriteKey(c, deadline);
  if (server.empty()) return n;
  Result<std::vector<std::string>> own = ctx.OwnWrites(server);
  if (!own.ok()) return own.status();
  for (const auto& id : *own) {
    const size_t dash = id.find('-');
    if (dash == std::string::npos) {
      if (AllDigits(id)) n.xids.push_back(id);
      continue;
    }
    const std::string first = id.substr(0, dash), end = id.substr(dash + 1);
    if (!AllDigits(first) || !AllDigits(end)) continue;  // open: not trusted
    n.range_first.push_back(first);
    n.range_end.push_back(end);
  }
  for (const char* kind : {"horizon", "guarded"}) {
    Result<std::string> where = DatabaseKey(c, deadline, kind, server);
    if (!where.ok()) return where.status();
    Result<std::vector<std::string>> ids = ctx.OwnWrites(*where);
    if (!ids.ok()) return ids.status();
    for (const auto& id : *ids) {
      if (std::string(kind) == "horizon") {
        if (AllDigits(id)) n.horizons.push_back(id);
        continue;
      }
      // "<step id> <table>": guarded only if that step's check is asked.
      const size_t space = id.find(' ');
      if (space != std::string::npos && ctx.ChecksUndoOf(id.substr(0, space))) {
        n.guarded.insert(id.substr(space + 1));
      }
    }
  }
  return n;
}

}  // namespace

std::string ServerWriteKey(PgConnection& c, SteadyTime deadline) {
  Result<Value> r = c.Query(
      "SELECT s.system_identifier::text || ':' || k.timeline_id::text AS id"
      " FROM pg_control_system() s, pg_control_checkpoint() k",
      {}, deadline);
  if (!r.ok() || r->empty() || !(*r)[0]["id"].is_string()) return "";
  return "pg:" + (*r)[0]["id"].get<std::string>();
}

Result<std::string> NextXid(PgConnection& c, SteadyTime deadline) {
  Result<Value> r = c.Query("SELECT (txid_current() % 4294967296)::text AS x", {}, deadline);
  if (!r.ok()) return r.status();
  return (*r)[0]["x"].get<std::string>();
}

Result<std::string> OldestRunningXid(PgConnection& c, SteadyTime deadline) {
  Result<Value> r = c.Query(
      "SELECT (txid_snapshot_xmin(txid_current_snapshot()) % 4294967296)::text AS x", {},
      deadline);
  if (!r.ok()) return r.status();
  return (*r)[0]["x"].get<std::string>();
}

Status NoteOwnXidRange(StepContext& ctx, PgConnection& c, SteadyTime deadline,
                       const std::string& first, const std::string& end) {
  const std::string server = ServerWriteKey(c, deadline);
  if (server.empty()) return Status::Ok();
  return ctx.NoteOwnWrite(server, first + "-" + end);
}

Status NoteGuardedTables(StepContext& ctx, PgConnection& c, SteadyTime deadline,
                         const std::vector<std::string>& tables) {
  std::vector<std::string> ids;
  for (const auto& t : tables) ids.push_back(ctx.step_id() + " " + t);
  if (ids.empty()) return Status::Ok();
  return Note(ctx, c, deadline, "guarded", ids);
}

Status NoteHorizon(StepContext& ctx, PgConnection& c, SteadyTime deadline,
                   const std::string& xid) {
  if (!AllDigits(xid)) return Status::Ok();
  return Note(ctx, c, deadline, "horizon", {xid});
}

Result<bool> HasHorizon(StepContext& ctx, PgConnection& c, SteadyTime deadline) {
  Result<RunNotes> notes = ReadNotes(ctx, c, deadline);
  if (!notes.ok()) return notes.status();
  return !notes->horizons.empty();
}

Result<std::vector<ForeignRows>> FindForeignRows(StepContext& ctx, PgConnection& c,
                                                 SteadyTime deadline, const std::string& since,
                                                 const std::vector<TableName>* tables,
                                                 const std::map<std::string, int64_t>* left) {
  Result<RunNotes> notes = ReadNotes(ctx, c, deadline);
  if (!notes.ok()) return notes.status();
  std::vector<std::string> marks = notes->horizons;
  if (AllDigits(since)) marks.push_back(since);
  if (marks.empty()) return std::vector<ForeignRows>{};  // nothing to measure from
  // The youngest mark: everything older is the run's or held elsewhere.
  Result<Value> young = c.Query(
      "SELECT x FROM unnest($1::text[]) x ORDER BY age(x::xid) LIMIT 1", {PgArray(marks)},
      deadline);
  if (!young.ok()) return young.status();
  const std::string from = (*young)[0]["x"].get<std::string>();
  // Past a horizon, what was deleted is gone from the other side too.
  if (!notes->horizons.empty()) left = nullptr;

  // The tables that hold rows: the leaves of the partition trees (an
  // ordinary table is its own), each with the root it belongs to.
  const char* leaves =
      "SELECT ln.nspname AS s, l.relname AS t, rn.nspname AS rs, r.relname AS rt"
      " FROM pg_class l JOIN pg_namespace ln ON ln.oid = l.relnamespace"
      " JOIN pg_class r ON r.oid = coalesce(pg_partition_root(l.oid), l.oid)"
      " JOIN pg_namespace rn ON rn.oid = r.relnamespace"
      " WHERE l.relkind = 'r' AND ln.nspname <> 'information_schema'"
      " AND ln.nspname NOT LIKE 'pg\\_%'";
  struct Leaf {
    TableName name;
    size_t of = 0;  // the index in `tables` it stands for (with `tables`)
  };
  std::vector<Leaf> scan;
  if (!tables) {
    Result<Value> r = c.Query(std::string(leaves) + " ORDER BY 1, 2", {}, deadline);
    if (!r.ok()) return r.status();
    for (const auto& row : *r) {
      TableName t{row["s"].get<std::string>(), row["t"].get<std::string>()};
      TableName root{row["rs"].get<std::string>(), row["rt"].get<std::string>()};
      if (!notes->guarded.count(t.Display()) && !notes->guarded.count(root.Display())) {
        scan.push_back(Leaf{t});
      }
    }
  } else {
    for (size_t i = 0; i < tables->size(); ++i) {
      const TableName& t = (*tables)[i];
      const std::string q = c.QuoteIdent(t.schema) + "." + c.QuoteIdent(t.name);
      Result<Value> r = c.Query(
          std::string(leaves) + " AND (l.oid = to_regclass($1) OR l.oid IN (SELECT relid FROM "
                                "pg_partition_tree(to_regclass($1)))) ORDER BY 1, 2",
          {q}, deadline);
      if (!r.ok()) return r.status();
      for (const auto& row : *r) {
        scan.push_back(Leaf{TableName{row["s"].get<std::string>(), row["t"].get<std::string>()}, i});
      }
    }
  }
  std::vector<ForeignRows> out;
  std::vector<int64_t> kept(tables ? tables->size() : 0, 0);
  std::vector<bool> seen(kept.size(), false);
  for (const auto& leaf : scan) {
    const std::string q = c.QuoteIdent(leaf.name.schema) + "." + c.QuoteIdent(leaf.name.name);
    Result<Value> there = c.Query("SELECT to_regclass($1) IS NOT NULL AS there", {q}, deadline);
    if (!there.ok()) return there.status();
    if (!(*there)[0]["there"].get<bool>()) continue;
    // Younger than the mark (age() wraps for a frozen row more than 2^31
    // transactions old: such a row is older than anything the run noted),
    // and whether the run wrote it.
    Result<Value> r = c.Query(
        "SELECT count(*) FILTER (WHERE young AND NOT own)::text AS foreign_rows,"
        " count(*) FILTER (WHERE NOT young OR own)::text AS kept FROM ("
        "SELECT age(xmin) >= 0 AND age(xmin) <= age($1::text::xid) AS young,"
        " xmin::text::int8 = ANY ($2::int8[])"
        " OR EXISTS (SELECT 1 FROM unnest($3::int8[], $4::int8[]) r(first, stop)"
        "  WHERE age(xmin) < age(r.first::text::xid) AND age(xmin) > age(r.stop::text::xid))"
        " AS own FROM ONLY " + q + ") rows",
        {from, PgArray(notes->xids), PgArray(notes->range_first), PgArray(notes->range_end)},
        deadline);
    if (!r.ok()) return r.status();
    const int64_t n = std::stoll((*r)[0]["foreign_rows"].get<std::string>());
    if (n > 0) out.push_back(ForeignRows{leaf.name.Display(), n, 0});
    if (tables) {
      kept[leaf.of] += std::stoll((*r)[0]["kept"].get<std::string>());
      seen[leaf.of] = true;
    }
  }
  // Rows the step left that are gone (deleted by someone else; an update
  // leaves a younger row, counted above). An own insert can hide one.
  for (size_t i = 0; left && i < kept.size(); ++i) {
    const std::string name = (*tables)[i].Display();
    auto it = left->find(name);
    if (!seen[i] || it == left->end() || kept[i] >= it->second) continue;
    out.push_back(ForeignRows{name, 0, it->second - kept[i]});
  }
  return out;
}

std::string DescribeForeignRows(const std::vector<ForeignRows>& rows) {
  std::string out;
  for (size_t i = 0; i < rows.size() && i < 10; ++i) {
    const bool gone = rows[i].rows == 0;
    const int64_t n = gone ? rows[i].missing : rows[i].rows;
    out += (i ? ", " : "") + rows[i].table + " (" + std::to_string(n) +
           (n == 1 ? " row" : " rows") + (gone ? " deleted)" : ")");
  }
  if (rows.size() > 10) out += " and " + std::to_string(rows.size() - 10) + " more tables";
  return out;
}

}  // namespace runbook
