// Exact row counts (and content digests) of many tables in one query.
//
// Every table is counted by one UNION ALL statement, so all counts of a
// database come from one snapshot and one round trip (after one catalog
// query that finds which tables exist and of what kind).
//
// A table's count is its own rows (FROM ONLY), as COPY and pg_dump carry
// them and as pg.compare counts: an inheritance parent without its
// children, which are counted as tables of their own. A partitioned table
// holds no rows of its own: it is counted with its partitions (and views,
// materialized views and foreign tables as they are).
//
// The checksum is an order-independent digest of each table's content: the
// sum over rows of hashtextextended(ROW(columns)::text, 0), a 64-bit hash,
// summed as numeric (no overflow, no modulus). The columns are listed by
// name, so the digest does not depend on physical column order; the
// session's TimeZone, extra_float_digits, bytea_output, IntervalStyle and
// DateStyle are pinned inside the counting transaction so both servers
// print values alike. (It was md5(to_jsonb(row)::text): 5.6 times slower,
// and the checksums run inside a cutover's write freeze.) Collisions: two
// different row multisets give the same sum only if their hash differences
// cancel exactly, about 2^-64 for accidental differences. Unlike XOR, a
// duplicated row is never invisible. It is not meant to resist deliberate
// forgery, and both servers must have hashtextextended (PostgreSQL 11+).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"

namespace runbook {

struct TableCount {
  std::string key;    // the table as the runbook named it
  TableName table;
  bool exists = true;
  int64_t rows = 0;
  std::string digest;  // checksum mode only
  std::string columns;  // checksum mode: "rb_t.a, rb_t.b", by name (CountTables fills it)
  bool only = false;    // an ordinary table: its own rows, FROM ONLY (CountTables fills it)
};

// Parses the runbook's table names (see ParseTableName).
Result<std::vector<TableCount>> TablesFromNames(const std::vector<std::string>& names,
                                                const std::string& schema);

// The ordinary and partitioned tables of `schema` (partitions are counted
// through their parent), sorted by name.
Result<std::vector<TableCount>> ListTables(PgConnection& conn, SteadyTime deadline,
                                           const std::string& schema);

// The SQL that counts `tables` (identifiers quoted with `quote`).
std::string CountSql(const std::vector<TableCount>& tables, bool checksum,
                     const std::function<std::string(const std::string&)>& quote);

// Counts the tables that exist; marks the others exists=false. A catalog
// query (which exist, which are ordinary tables), then one counting query.
Status CountTables(PgConnection& conn, SteadyTime deadline, std::vector<TableCount>* tables,
                   bool checksum);

// "public.t, public.u"
std::string JoinKeys(const std::vector<const TableCount*>& tables);

}  // namespace runbook
