#include "bindings/register.h"

#include "engine/builtins/builtins.h"

namespace runbook {

void RegisterAll(Registry* registry) {
  RegisterBuiltins(registry);
}

}  // namespace runbook
