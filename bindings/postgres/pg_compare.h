// The full comparison of two databases, after PostgreSQL's own upgrade test
// (it dumps the old and the new cluster and diffs them): the schema as
// pg_dump sees it, every relation's rows, large objects, sequences, and
// whether each materialized view is populated. A clone that misses anything
// a pg_dump of the source would carry cannot pass it.
//
// Each side is read inside one REPEATABLE READ READ ONLY transaction whose
// exported snapshot pg_dump also uses, so schema and data are one instant.
// Row-level security is off inside it (`row_security = off`): a policy that
// would hide rows makes the read fail rather than count fewer.
//
// Lua-free; the pg.compare primitive (pg_primitives_compare.cc) runs it for
// both sides at once.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"

namespace runbook {

struct CompareOptions {
  bool checksums = true;  // rows: count and content checksum (false: counts only)
  bool owners = true;     // owners and grants (schema, large objects)
};

// One relation's rows. Tables and partitions are read with ONLY (an
// inheritance parent's own rows); partitioned parents hold no rows of their
// own; an unpopulated materialized view cannot be read.
struct RelationImage {
  std::string kind;  // "table", "unlogged table", "materialized view", "partitioned table", ...
  bool populated = true;  // materialized views
  bool read = false;      // rows and digest below are meaningful
  int64_t rows = 0;
  std::string digest;  // sum of hashtextextended(row::text) (see pg_counts.h); "" in count mode
};

struct LargeObjectImage {
  std::string owner, acl;  // "" unless CompareOptions::owners
  int64_t size = 0;
  std::string md5;
};

// What one database holds, as the comparison sees it.
struct DatabaseImage {
  int server_version = 0;
  std::map<std::string, RelationImage> relations;         // "schema.name" (quoted where needed)
  std::map<int64_t, LargeObjectImage> large_objects;      // by oid
  std::map<std::string, std::string> sequences;           // name -> "last_value 7, is_called"
  std::multimap<std::string, std::string> schema;         // ParseSchemaDump of pg_dump's output
  std::vector<std::string> not_compared;                  // foreign tables: their rows live elsewhere
  // Each view's and materialized view's query as this server prints it
  // (pg_get_viewdef with search_path '', as pg_dump prints it), by
  // "VIEW schema.name" / "MATERIALIZED VIEW schema.name" (pg_dump's keys).
  std::map<std::string, std::string> view_queries;
};

// Opens the read transaction on `conn` and returns its exported snapshot
// (for pg_dump --snapshot); ReadData reads the rest inside it; EndRead rolls
// it back. `conn` must be idle.
Result<std::string> BeginRead(PgConnection& conn, SteadyTime deadline);
Status ReadData(PgConnection& conn, SteadyTime deadline, const CompareOptions& options,
                DatabaseImage* image);
void EndRead(PgConnection& conn, SteadyTime deadline);

// pg_dump --schema-only output as {object: definition}: one entry per
// archive entry ("TABLE public.t", "INDEX public.t_pkey", "ACL TABLE
// public.t"), keyed by its header's type, schema and name; the definition is
// the entry's SQL without pg_dump's comments, SET lines and \restrict keys
// (which differ between any two dumps).
std::multimap<std::string, std::string> ParseSchemaDump(const std::string& dump);

struct ImageDifference {
  std::string kind;    // schema, relation, rows, materialized view, large object, sequence
  std::string object;  // "TABLE public.t", "public.t", "large object 16402", ...
  std::string source, target;  // what each side has ("missing" when absent)
};

// Servers of different majors print the same schema differently. So that
// only real differences remain, both sides are brought to one way of
// printing (`target` is connected to the target's server, idle):
// - views and materialized views: each source query is parsed and printed
//   again by the target server (a temporary view in a transaction that is
//   rolled back; PostgreSQL 16 stopped qualifying columns, for one);
// - procedure arguments: PostgreSQL 14 prints the IN mode, 13 does not
//   (left out on both sides);
// - range types: pg_dump names the multirange type of 14+ servers only
//   (left out on both sides).
// A view the target cannot parse is left as it was (and reported).
Status PrintLikeTarget(PgConnection& target, SteadyTime deadline, DatabaseImage* source,
                       DatabaseImage* target_image);

// Everything that differs; empty when the target holds what the source does.
std::vector<ImageDifference> CompareImages(const DatabaseImage& source,
                                           const DatabaseImage& target);

// Materialized views whose rows differ only because the source's is stale:
// a logical copy can only refresh, so the target holds what the view's
// query returns on the source, and the source's own rows are older. Those
// differences are moved from `diffs` to `notes` (the source is asked for
// its query's rows, in a new read transaction); the others stay.
Status SettleStaleViews(PgConnection& source, SteadyTime deadline, const DatabaseImage& target,
                        std::vector<ImageDifference>* diffs, std::vector<std::string>* notes);

// The first line where two definitions differ, for a message:
// "line 3: 'a integer' vs 'a bigint'".
std::string FirstDifferentLine(const std::string& a, const std::string& b);

}  // namespace runbook
