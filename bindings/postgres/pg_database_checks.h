// What a rehearsal of CREATE DATABASE checks (it cannot run in a transaction,
// so the server cannot simply try it and roll back).
#pragma once

#include <string>
#include <vector>

#include "bindings/postgres/pg_lint.h"
#include "bindings/postgres/pg_session.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {

// Every precondition of CREATE DATABASE name [TEMPLATE t] [OWNER o] that would
// fail now, in one Status (kFailed, "precondition failed: ...; ..."):
// permission (superuser or CREATEDB), the name being free (unless
// if_not_exists), the template existing and being copyable by this role, its
// collation version matching the server's (seed 000), no other sessions on
// the template, and the owner role existing and being one this role may
// assign.
// `plan` (null: none) is the rehearsal's: a template an earlier step drops
// is a failure (a real run would not find it); one an earlier step makes is
// not checked on what the server has now (a note says so); a collation
// version an earlier step refreshes is a note, not a failure.
// `options` (a CREATE DATABASE statement's, DatabaseStatement::options) are
// checked as the server would: names it knows at its version, each given
// once (but LOCATION and OID), LOCALE not with LC_COLLATE/LC_CTYPE before
// PostgreSQL 15, STRATEGY's value, an encoding
// it has as a server encoding, the same encoding and locales as the
// template unless it is template0, and an encoding the locales can have
// (as the server's catalog knows them; a locale it does not list, ICU and
// builtin options, and a template whose locale provider is not libc, are
// notes: not probed).
Status CheckCreateDatabase(PgLease& lease, const std::string& name, const std::string& templ,
                           const std::string& owner, bool if_not_exists, const RehearsalPlan* plan,
                           std::vector<std::string>* notes,
                           const std::vector<DatabaseOption>& options = {});

// In a rehearsal, DROP DATABASE `name` as a real run would meet it by then:
// the database there (or made by an earlier rehearsed step; not dropped by
// one), the right to drop it, not a template, the sessions on it (those with
// pids in `closed_first` are the run's own, which a real run closes first;
// those the role may not end with terminate). Notes it gone in the plan for
// the steps after. The result of pg.drop_database ({dropped, name,
// rehearsal, notes}).
Result<Value> RehearseDropDatabase(StepContext& ctx, PgLease& lease, const std::string& name,
                                   bool terminate, bool if_exists,
                                   const std::vector<int>& closed_first);

// The SQL condition that a pg_stat_activity row (`alias`, "" for none) is a
// client's session: a client backend, or another role's session, whose
// backend_type a role without pg_read_all_stats sees as NULL. The rehearsal
// and the real run of a DROP DATABASE count the same sessions with it.
std::string ClientSessionSql(const std::string& alias);

// "{1,2,3}": an int[] parameter.
std::string PgIntArray(const std::vector<int>& values);

}  // namespace runbook
