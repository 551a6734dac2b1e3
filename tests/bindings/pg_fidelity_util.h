// The fidelity corpus (tests/fixtures/fidelity_corpus.sql: every kind of
// object pg_dump knows and applications use) and the full comparison
// (pg.compare) as test helpers: a clone is checked against its source the
// way PostgreSQL's upgrade test checks an upgraded cluster.
#pragma once

#include <string>

#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {

// The corpus's roles (cluster-wide): created on `server` if missing, so a
// copy that keeps owners finds them on a target cluster.
void CreateCorpusRoles(const PgServer& server);

// A database on a server.
struct PgDbRef {
  const PgServer& server;
  std::string name;
  PgDbRef(const PgTestDb& db) : server(db.server()), name(db.name()) {}  // NOLINT: implicit
  PgDbRef(const PgServer& s, std::string n) : server(s), name(std::move(n)) {}
};

// Loads the corpus into `db` with psql (the server's own major's client),
// failing the test on any error.
void LoadCorpus(const PgDbRef& db);

// Runs pg.compare between `source` and `target` (connections named "source"
// and "target" on a PgCase of its own) with pg_dump from `bin_dir`, and
// returns its result; on a difference the test fails with each one listed.
Value RequireSameDatabase(const PgDbRef& source, const PgDbRef& target, const std::string& bin_dir,
                          bool owners = true);

// pg.compare's result, differences allowed (for tests that plant them).
Result<Value> CompareDatabases(const PgDbRef& source, const PgDbRef& target,
                               const std::string& bin_dir, bool owners = true);

}  // namespace runbook::testing
