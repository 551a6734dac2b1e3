// Collation versions: what PostgreSQL recorded when a database or collation
// was created vs what the operating system's locale library reports now
// (seed 000: after an OS or glibc upgrade, CREATE DATABASE from a template
// with a stale version fails, and indexes on text may be silently corrupt).
#pragma once

#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"

namespace runbook {

extern const char* const kCollationNote;

struct DbCollation {
  std::string name, collate, ctype, provider;
  std::string recorded, actual;  // "" when none
  bool mismatch = false;         // a version is recorded and it is not the actual one
  bool versioned = false;        // its default collation has versions (not C / POSIX / C.UTF-8)
  bool allows_connections = true;
  bool is_template = false;
  bool may_alter = false;        // current_user owns it (or is superuser)
};

struct CollationObject {
  std::string database, schema, name, recorded, actual;
  int64_t oid = 0;
};

struct CollationIndex {
  std::string schema, table, index;
  bool may_reindex = false;  // current_user owns the table (or is superuser)
};

// Every database of the server (template0 and template1 included).
Result<std::vector<DbCollation>> ListDatabaseCollations(PgConnection& conn, SteadyTime deadline);

// Collation objects of the connected database whose recorded version is not
// the actual one.
Result<std::vector<CollationObject>> MismatchedCollations(PgConnection& conn, SteadyTime deadline);

// Indexes of the connected database (system catalogs excluded) with a key
// column using the database's default collation (when `default_affected`)
// or one of `collations` (oids). Partitioned parents are left out: their
// partitions' indexes are listed instead.
Result<std::vector<CollationIndex>> IndexesUsingCollations(PgConnection& conn, SteadyTime deadline,
                                                           bool default_affected,
                                                           const std::vector<int64_t>& collations);

Value ToValue(const DbCollation& d);
Value ToValue(const CollationObject& c);

}  // namespace runbook
