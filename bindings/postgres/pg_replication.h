// What the replication primitives share: pg.replicate (blue to green, from
// the start of an upgrade), pg.fallback (green back to blue, from the switch
// until the decommission), the cutover's catch-up wait, sequences, and what
// logical replication does not carry.
#pragma once

#include <cstdint>
#include <string>

#include "bindings/postgres/pg_session.h"

namespace runbook {

// How far subscription `sub` (on dst) is behind its publisher (src).
struct CatchUp {
  int64_t tables = 0, ready = 0;
  int64_t lag_bytes = 0;     // pg_current_wal_lsn() - confirmed_flush_lsn, now
  int64_t behind_start = 0;  // start LSN - confirmed_flush_lsn (<= 0: passed it)
};
Result<CatchUp> MeasureCatchUp(PgLease& src, PgLease& dst, const std::string& sub,
                               const std::string& start_lsn);
// Waits until `sub` has copied every table and applied src's WAL up to where
// it was when the wait began (within max_lag bytes), or give_up.
// {lag_bytes, waited_ms, tables_ready, tables, caught_up}.
Result<Value> WaitCaughtUp(StepContext& ctx, PgLease& src, PgLease& dst, const std::string& sub,
                           int64_t max_lag, SteadyTime give_up);

// The sequences of `args` ({tables} or {all: true}) with both sides'
// values: [{sequence, source: {last_value, is_called}, target: {...}}].
Result<Value> SequenceValues(StepContext& ctx, const Value& args, PgLease& src, PgLease& dst);
Status SetSequence(PgLease& dst, const std::string& seq, const Value& v);

// Copies, from src's snapshot to dst, what logical replication does not
// carry: unlogged tables' rows, large objects, materialized view contents,
// CHECK constraints left NOT VALID. {unlogged_tables, rows, large_objects,
// materialized_views, constraints}.
Result<Value> CarryUnreplicated(StepContext& ctx, PgLease& src, PgLease& dst, bool keep_owners);

// How a subscriber's server reaches the publisher of `src`: its live
// connection's address and credentials, or `source_dsn` (key=value) over them.
std::string ReplicationConninfo(PgConnection& src, const std::string& source_dsn);
// Drops subscription `name` (detached from its slot) on connection
// `subscriber`, then publication `name` and its slots on `publisher`.
// Idempotent.
Status DropReplication(StepContext& ctx, const std::string& publisher,
                       const std::string& subscriber, const std::string& name);

// pg.compare's work (args as the primitive's), for primitives that must
// prove two databases equal (pg.fallback's undo).
Result<Value> RunCompare(StepContext& ctx, const Value& args);

}  // namespace runbook
