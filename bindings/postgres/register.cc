#include "bindings/postgres/register.h"

#include "bindings/postgres/pg_conninfo.h"
#include "bindings/postgres/pg_primitive.h"

namespace runbook {

void RegisterPostgres(Registry* r) {
  r->AddConnectionType(std::make_unique<PgConnectionType>());
  AddPgQueryPrimitives(r);
  AddPgCountPrimitives(r);
  AddPgDatabasePrimitives(r);
  AddPgSessionPrimitives(r);
  AddPgCollationPrimitives(r);
  AddPgSchemaPrimitives(r);
  AddPgLintPrimitives(r);
  AddPgDumpPrimitives(r);
  AddPgRestorePrimitives(r);
  AddPgCopyPrimitives(r);
  AddPgComparePrimitives(r);
  AddPgUnreplicatedPrimitives(r);
  AddPgFallbackPrimitives(r);
  AddPgReplicatePrimitives(r);
}

}  // namespace runbook
