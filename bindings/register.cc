#include "bindings/register.h"

#include "bindings/postgres/register.h"
#include "engine/builtins/builtins.h"

namespace runbook {

void RegisterAll(Registry* registry) {
  RegisterBuiltins(registry);
  RegisterPostgres(registry);
}

}  // namespace runbook
