// pg.copy's data phase: `jobs` worker threads, each with its own pair of
// connections, take tables largest first. Every source connection imports
// one exported snapshot (REPEATABLE READ), so all tables are read as of the
// same instant; every table is written in one target transaction
// (BEGIN; TRUNCATE; COPY FROM STDIN; COMMIT), so a failure or a crash never
// leaves half a table and a re-run redoes it cleanly.
//
// The first failure stops the other workers (their current table is rolled
// back) and is returned.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bindings/postgres/pg_copy.h"
#include "bindings/postgres/pg_copy_catalog.h"

namespace runbook {

struct CopyJobsSpec {
  PgConnectOptions source, target;
  std::string snapshot;  // pg_export_snapshot() of a transaction kept open meanwhile
  int jobs = 2;
  SteadyTime deadline = SteadyTime::max();
  // Called from worker threads, one call at a time.
  std::function<void(const std::string& message)> log;
  // `so_far` counts every table, those done and those in flight: rows, and
  // bytes as a share of the tables' sizes on the source (CopyTable::bytes;
  // their sum when the last one is done); `seconds` since the copy began.
  // Called about once a second per table in flight, and after each table.
  std::function<void(const std::string& table, const CopyStats& so_far)> progress;
  // Called from worker threads, one call at a time, just before a table's
  // COMMIT with its transaction id (xmin of the rows it wrote, mod 2^32): the
  // run's own writes, which an undo guard must not count as someone else's.
  // A failure rolls the table back.
  std::function<Status(const std::string& xid)> before_commit;
};

// Copies `tables`; stats[i] belongs to tables[i].
Result<std::vector<CopyStats>> CopyTablesInParallel(const CopyJobsSpec& spec,
                                                    const std::vector<CopyTable>& tables);

// Disables `table`'s enabled user triggers on `dst` (inside the caller's
// transaction) and returns the statements that put each back as it was.
Result<std::vector<std::string>> DisableTriggers(PgConnection& dst, SteadyTime deadline,
                                                 const std::string& table);

// "12.3 MiB"
std::string HumanBytes(double bytes);

}  // namespace runbook
