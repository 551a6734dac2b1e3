// What a rehearsal of CREATE DATABASE checks (it cannot run in a transaction,
// so the server cannot simply try it and roll back).
#pragma once

#include <string>
#include <vector>

#include "bindings/postgres/pg_session.h"

namespace runbook {

// Every precondition of CREATE DATABASE name [TEMPLATE t] [OWNER o] that would
// fail now, in one Status (kFailed, "precondition failed: ...; ..."):
// permission (superuser or CREATEDB), the name being free (unless
// if_not_exists), the template existing and being copyable by this role, its
// collation version matching the server's (seed 000), no other sessions on
// the template, and the owner role existing and being one this role may
// assign.
// `refreshed_earlier`: an earlier step of the rehearsal would have refreshed
// the template's collation version (its mismatch goes to *notes instead).
Status CheckCreateDatabase(PgLease& lease, const std::string& name, const std::string& templ,
                           const std::string& owner, bool if_not_exists, bool refreshed_earlier,
                           std::vector<std::string>* notes);

}  // namespace runbook
