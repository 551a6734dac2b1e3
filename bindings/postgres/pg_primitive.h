// Pieces shared by the pg.* primitives (the rest is engine/core/primitive_kit.h).
#pragma once

#include <string>

#include "bindings/postgres/pg_client.h"
#include "engine/core/primitive_kit.h"
#include "engine/core/registry.h"

namespace runbook {

// A connection argument of type postgres ("conn", "source", "target").
ArgSpec PgConnArg(std::string name, std::string help);

// The `params` list as $n values (see ValueToPgParam).
PgParams ParamsArg(const Value& args);
// Plan text for a statement and its parameters: "SQL\n-- $1 = 'v', $2 = NULL".
std::string PlanSql(const std::string& sql, const PgParams& params);

// A publication/slot/subscription name of this step: "runbook_<run>_<step>",
// lowercase alphanumerics and '_', at most 63 bytes (NAMEDATALEN - 1).
std::string ReplicationObjectName(StepContext& ctx);

// Registration of each primitive family (one file each).
void AddPgQueryPrimitives(Registry* r);       // pg.query, pg.exec
void AddPgCountPrimitives(Registry* r);       // pg.counts, pg.compare_counts
void AddPgDatabasePrimitives(Registry* r);    // pg.create_database, pg.drop_database
void AddPgSessionPrimitives(Registry* r);     // pg.terminate_connections, pg.wait_ready
void AddPgCollationPrimitives(Registry* r);   // pg.collation_status, pg.refresh_collation
void AddPgSchemaPrimitives(Registry* r);      // pg.assert_schema, pg.schema_diff
void AddPgLintPrimitives(Registry* r);        // pg.lint
void AddPgDumpPrimitives(Registry* r);        // pg.dump
void AddPgRestorePrimitives(Registry* r);     // pg.restore
void AddPgCopyPrimitives(Registry* r);        // pg.copy
void AddPgComparePrimitives(Registry* r);     // pg.compare
void AddPgUnreplicatedPrimitives(Registry* r);  // pg.sync_unreplicated
void AddPgFallbackPrimitives(Registry* r);    // pg.fallback
void AddPgReplicatePrimitives(Registry* r);   // pg.replicate (+ the two below)
void AddPgCatchUpPrimitives(Registry* r);     // pg.wait_caught_up, pg.sync_sequences

}  // namespace runbook
