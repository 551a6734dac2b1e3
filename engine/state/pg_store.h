// The PostgreSQL state store: the same contract as the SQLite one (store.h),
// in a database several engines share (operators' laptops, CI, Kubernetes
// Jobs), chosen by `--state postgresql://...` or RUNBOOK_STATE.
//
// Its tables live in a schema "runbook" of the database the URI names,
// created and migrated by the binary (versioned in runbook.meta; an older
// binary refuses a newer schema). A commit returns after the server made it
// durable (synchronous_commit as the server has it, on by default).
//
// Run locks are leases (runbook.leases): an owner (run id, host and pid), an
// expiry renewed while the run lives (every third of its length), and a
// fencing token from a sequence, so it only grows. The holder's process is
// named by boot id, pid namespace, pid and start time (ProcessLiveness), not
// by host name. A lease that expired (its
// engine was presumed dead) can be taken by another engine, with a new
// token; from then on every write of the old engine fails (each write
// renews its lease by token in the same transaction), so it stops at its
// next transition, before acting. A holder on the same machine (boot and
// pid namespace) whose process is gone is not waited for.
//
// A connection the server closed (it restarted, a failover) is opened
// again before the next read or transaction; a write whose COMMIT got no
// answer fails (its outcome is unknown), and the engine stops there.
//
// What it relies on: transactions and row locks only. No session state
// survives a transaction (SET LOCAL only; no session advisory locks, no
// prepared statements), so it works through a transaction pooler too; the
// schema migration takes a transaction-scoped advisory lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/state/store.h"

namespace runbook {

struct PgStoreOptions {
  // A lock's lease length; LeaseLength() ($RUNBOOK_LEASE_SECONDS) when
  // opened by StateStore::Open.
  int64_t lease_ms = 30000;
};

Result<std::unique_ptr<StateStore>> OpenPostgresStore(const std::string& uri,
                                                      const PgStoreOptions& options);
// With the options from the environment.
Result<std::unique_ptr<StateStore>> OpenPostgresStore(const std::string& uri);

// How a lease names its holder's process, to tell whether it is gone: this
// kernel boot's id, the pid namespace, the pid and its start time.
std::string ProcessLiveness(long pid);

// The password the URI holds, or "" (for the redactor).
std::string PostgresPassword(const std::string& uri);

// The URI as messages may show it: user, host, port, database and service,
// never a password. Empty when it cannot be parsed.
std::string ShownPostgresLocation(const std::string& uri);

}  // namespace runbook
