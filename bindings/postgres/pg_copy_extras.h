// What neither pg_dump --schema-only nor logical replication carries, for
// pg.copy and pg.sync_unreplicated:
//
// - large objects: data, not schema, and never replicated. Applications keep
//   their oids in tables, so each is recreated on the target under the same
//   oid, with its content and, when owners are kept, its owner and grants;
// - materialized view contents: pg_dump creates them empty and replication
//   sends no changes for them; each one populated on the source is refreshed
//   on the target, the views it reads (through other views too) first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"

namespace runbook {

struct LargeObjectStats {
  int64_t objects = 0;
  int64_t bytes = 0;
  int64_t removed = 0;  // on the target and not on the source (replace)
};

// Copies every large object `src` can see (its transaction's snapshot: call
// it inside pg.copy's exported-snapshot transaction) into `dst`, in one
// target transaction: all of them or none. Those the target already has
// under the same oid are replaced; with `remove_others` the target's large
// objects that the source does not have are removed too (the target becomes
// the source's image). `keep_owners`: ALTER LARGE OBJECT ... OWNER TO and the
// source's grants. Content travels in chunks of 1 MiB: memory stays bounded.
Status CopyLargeObjects(PgConnection& src, PgConnection& dst, SteadyTime deadline,
                        bool keep_owners, bool remove_others, LargeObjectStats* stats);

// How many large objects `conn` has and their total size, and a failure
// naming the first one the connected user may not read.
Status ProbeLargeObjects(PgConnection& conn, SteadyTime deadline, LargeObjectStats* stats);

// The source's materialized views (quoted, qualified), each after those it
// reads, and whether each is populated there.
struct MaterializedView {
  std::string name;
  bool populated = false;
};
Result<std::vector<MaterializedView>> MaterializedViews(PgConnection& src, SteadyTime deadline);

// Makes the target's materialized views populated as the source's are:
// REFRESH (dependencies first) those populated on the source, REFRESH ...
// WITH NO DATA those it has not populated; views the target lacks are left
// out. Returns how many were refreshed with data.
Result<int64_t> RefreshMaterializedViews(PgConnection& dst, SteadyTime deadline,
                                         const std::vector<MaterializedView>& views);

}  // namespace runbook
