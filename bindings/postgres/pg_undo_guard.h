// What an undo would destroy that the run did not write (Primitive::CheckUndo
// of the postgres primitives whose undo drops tables or a database).
//
// A row's writer is told by its xmin, a transaction id of the server (raw,
// frozen or not): a row is the run's when it is older than where the step
// began (`since`), when its transaction is one the run noted as its own
// (StepContext::NoteOwnWrite, before the commit), or when it is older than a
// horizon a later step set for that database (the reverse cutover proved
// that the old side holds everything the database held: nothing older is
// lost). Tables another step of the run created and guards itself (pg.copy,
// pg.replicate) are left to that step.
//
// The notes live in the run's events, keyed by the server (its system
// identifier: every connection of the run to one server shares its
// transaction ids) and the database.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"
#include "bindings/postgres/pg_sql.h"
#include "engine/core/registry.h"

namespace runbook {

// "pg:<system identifier>:<timeline>" of the server `c` is connected to (a
// promoted physical copy shares the identifier and the ids, not the
// timeline); "" when it cannot be read (then no note is kept, and a guard
// counts every younger row as someone else's: a refusal, never a loss).
std::string ServerWriteKey(PgConnection& c, SteadyTime deadline);

// A transaction id assigned now (txid_current() of a transaction of its own:
// `c` must not be inside one), as text: every id assigned before is older,
// every one assigned later younger.
Result<std::string> NextXid(PgConnection& c, SteadyTime deadline);
// The oldest transaction id still running: every row with an older xmin was
// committed (or rolled back) before this call.
Result<std::string> OldestRunningXid(PgConnection& c, SteadyTime deadline);

// Notes for the database `c` is connected to.
// The transactions of an external tool (pg_restore) are the run's own:
// those younger than `first` (NextXid before it started) and older than
// `end` (NextXid after it ended; "" while it runs: an open range, which no
// guard trusts, so a crash inside it makes a refusal, never a loss).
Status NoteOwnXidRange(StepContext& ctx, PgConnection& c, SteadyTime deadline,
                       const std::string& first, const std::string& end);
// These tables' rows are guarded by the noting step's own undo check (they
// count as guarded only in a rollback that asks that step's check too).
Status NoteGuardedTables(StepContext& ctx, PgConnection& c, SteadyTime deadline,
                         const std::vector<std::string>& tables);
// Every row older than `xid` is held elsewhere too (a proven reverse cutover).
Status NoteHorizon(StepContext& ctx, PgConnection& c, SteadyTime deadline,
                   const std::string& xid);

// Whether a horizon was noted for the database `c` is connected to.
Result<bool> HasHorizon(StepContext& ctx, PgConnection& c, SteadyTime deadline);

struct ForeignRows {
  std::string table;    // schema.name, quoted where needed
  int64_t rows = 0;     // rows the run did not write
  int64_t missing = 0;  // rows the step left that are gone (deleted since)
};

// Rows of `tables` (nullptr: every user table of the database, less those
// another step guards) written after `since` by someone other than the run.
// A partitioned table stands for its partitions; a table that does not
// exist (any more) holds nothing. With `left` (rows each of `tables` held
// when the step ended, by Display()), also the tables that hold fewer of
// those rows and of the run's own than that: someone deleted rows (not
// checked past a horizon, where the other side has the deletes too).
Result<std::vector<ForeignRows>> FindForeignRows(
    StepContext& ctx, PgConnection& c, SteadyTime deadline, const std::string& since,
    const std::vector<TableName>* tables,
    const std::map<std::string, int64_t>* left = nullptr);

// "a.b (3 rows), c.d (1 row)", at most 10 named.
std::string DescribeForeignRows(const std::vector<ForeignRows>& rows);

}  // namespace runbook
