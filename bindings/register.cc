#include "bindings/register.h"

#include "bindings/kube/register.h"
#include "bindings/postgres/register.h"
#include "bindings/ssh/register.h"
#include "engine/builtins/builtins.h"

namespace runbook {

void RegisterAll(Registry* registry) {
  RegisterBuiltins(registry);
  RegisterPostgres(registry);
  RegisterKube(registry);
  RegisterSsh(registry);
}

}  // namespace runbook
