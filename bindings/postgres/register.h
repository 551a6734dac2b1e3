// Registers the postgres binding: the "postgres" connection type and the
// pg.* primitives.
#pragma once

#include "engine/core/registry.h"

namespace runbook {

void RegisterPostgres(Registry* r);

}  // namespace runbook
