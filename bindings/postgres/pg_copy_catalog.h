// The catalog side of pg.copy: which tables to copy and how big they are,
// what the target already holds, what the copy created (for undo), and the
// sequences to carry over. Lua-free; every call takes the connection and the
// deadline.
#pragma once

#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"
#include "bindings/postgres/pg_sql.h"

namespace runbook {

struct CopyTable {
  std::string key;      // as the runbook named it (or schema.name for all: true)
  TableName name;
  bool partitioned = false;  // copied out through SELECT * (COPY refuses the parent)
  int64_t bytes = 0;         // pg_table_size on the source: the estimate a rehearsal shows
  int64_t estimated_rows = 0;  // reltuples; -1 when never vacuumed or analyzed
  bool on_target = false;    // the table already exists on the target
  bool target_has_rows = false;
  bool binary = false;       // COPY in binary format (see MarkBinarySafe)
  int64_t pages = 0;         // of its main fork on the source
  int parts = 1;             // > 1: copied in that many ranges of its pages (SplitLargeTables)
  // A partitioned table named as a whole: every partition under it (quoted,
  // qualified), so that the schema the copy creates has somewhere to put
  // its rows (pg_dump -t of the parent alone creates none).
  std::vector<std::string> partitions;
  std::string Quoted() const { return QuoteIdentPlain(name.schema) + "." + QuoteIdentPlain(name.name); }
};

// The named tables on the source; fails naming every one that is missing.
Result<std::vector<CopyTable>> ResolveTables(PgConnection& src, SteadyTime deadline,
                                             const std::vector<std::string>& names,
                                             const std::string& schema);
// Every ordinary table (partitions included, partitioned parents not) of
// every non-system schema, except extension members.
Result<std::vector<CopyTable>> AllTables(PgConnection& src, SteadyTime deadline);

// Splits each table larger than `threshold` bytes on the source into ranges
// of its pages (ctid ranges, which PostgreSQL 14 and later read with a TID
// range scan) that `jobs` workers copy at once from the one snapshot, each
// range in a transaction of its own: sets `parts` to a multiple of `jobs`
// near bytes / threshold (so the ranges of the largest table end together).
// Only tables this copy creates: one that is replaced (on_target) keeps its
// single TRUNCATE-and-COPY transaction. A threshold of 0 splits nothing.
// Returns why each table above the threshold is not split (for the
// rehearsal and the log): "public.t: ... ".
std::vector<std::string> SplitLargeTables(std::vector<CopyTable>* tables, int64_t threshold,
                                          int jobs, int source_version);

// Fills on_target / target_has_rows.
Status ProbeTarget(PgConnection& dst, SteadyTime deadline, std::vector<CopyTable>* tables);

// Marks the tables whose rows can travel in COPY's binary format: only
// tables this copy creates (so both sides have the same column types), and
// none with a column whose binary form names type OIDs that differ between
// clusters (composites, arrays of user types) or that has no binary I/O.
// The caller checks that both servers run the same major version.
Status MarkBinarySafe(PgConnection& src, SteadyTime deadline, std::vector<CopyTable>* tables);

// What Inventory lists: 1, the kinds of older binaries (schema, extension,
// table, view, materialized view, sequence, foreign table, routine, type,
// large object); 2, also aggregates, window functions, casts, operators and
// their classes and families, access methods, collations, conversions, text
// search objects, publications, event triggers, foreign data wrappers and
// servers, every type named with its schema. An undo record keeps the
// version its `before` was taken with ("inventory"; absent: 1), and the
// undo compares it with an inventory of the same version: a newer binary
// must not take what an older one did not list for something the step made.
constexpr int kInventoryVersion = 2;

// The target's user objects as [{kind, name}] with kind a DROP keyword or
// "large object" (name: its oid), and name quoted and qualified.
Result<Value> Inventory(PgConnection& dst, SteadyTime deadline, int version = kInventoryVersion);
// The inventory version an undo record was taken with.
inline int InventoryVersion(const Value& record) {
  return record.is_object() ? record.value("inventory", 1) : 1;
}
// Objects of `after` that are not in `before`.
Value Created(const Value& before, const Value& after);
// Drops `objects` (IF EXISTS ... CASCADE, dependents first; large objects
// with lo_unlink) in one transaction; running it twice is harmless.
Status DropObjects(PgConnection& dst, SteadyTime deadline, const Value& objects);

// The sequences that belong to the copied tables (owned or identity), or
// every user sequence for all: true, as quoted qualified names.
Result<std::vector<std::string>> CopySequences(PgConnection& src, SteadyTime deadline,
                                               const std::vector<CopyTable>& tables, bool all);
// Sets each sequence on the target to the source's last_value / is_called
// (those the target does not have are left out).
Status SyncSequences(PgConnection& src, PgConnection& dst, SteadyTime deadline,
                     const std::vector<std::string>& sequences);

// What a copy without owners and grants (pg_dump --no-owner --no-privileges)
// would lose: objects owned by another role than the connected one, grants
// other than the defaults, default privileges ("table shop.orders owned by
// app", ...), and with `all` a public schema whose owner or grants differ
// from the target's (PostgreSQL 15 changed its defaults). With `tables`
// (not all), only those tables. At most `limit` (+1 for public).
Result<std::vector<std::string>> OwnershipLosses(PgConnection& src, PgConnection& dst,
                                                 SteadyTime deadline,
                                                 const std::vector<CopyTable>& tables, bool all,
                                                 size_t limit);
// The roles that own or are granted something on the source and do not
// exist on the target (a copy that keeps owners needs them).
Result<std::vector<std::string>> MissingRoles(PgConnection& src, PgConnection& dst,
                                              SteadyTime deadline);
// The tables whose rows a row-level security policy would hide from the
// source's user (not a superuser, no BYPASSRLS, not the owner or FORCE):
// COPY would read fewer rows (pg.copy reads with row_security off, so it
// would fail instead).
Result<std::vector<std::string>> RowSecurityHides(PgConnection& src, SteadyTime deadline,
                                                  const std::vector<CopyTable>& tables);

// How a copy treats owners and grants: `said` (keep_owners given at all),
// `keep` (its value); `all`: the whole database, else only the tables.
struct OwnersChoice {
  bool said = false, keep = false, all = false;
};
// Refuses (naming the objects or roles, "nothing was done") a copy of
// `tables` that would drop owners and grants without being told to, that
// keeps them while the target lacks their roles, or whose rows a row-level
// security policy hides from the source's user.
Status RefuseLosses(PgConnection& src, PgConnection& dst, SteadyTime deadline,
                    const std::vector<CopyTable>& tables, const OwnersChoice& owners);

// "blue:5432/app started 2026-..." : equal only for the same database of the
// same running server, whatever host name each connection used.
Result<std::string> DatabaseFingerprint(PgConnection& conn, SteadyTime deadline);

}  // namespace runbook
